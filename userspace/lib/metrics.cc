#include "metrics.h"

#include <fmt/format.h>
#include <linux/cvm.h>

#include <cmath>
#include <fstream>
#include <sstream>

namespace cvm {
namespace {

using json = nlohmann::json;

std::string Escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Writes families: each metric's HELP and TYPE once, then its samples.
class Writer {
 public:
  void Family(std::string_view name, std::string_view type,
              std::string_view help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  template <typename T>
  void Sample(std::string_view name, const std::string& labels, T value) {
    out_ += fmt::format("{}{}{}{} {}\n", name, labels.empty() ? "" : "{",
                        labels, labels.empty() ? "" : "}", value);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string Labels(
    std::initializer_list<std::pair<std::string_view, std::string>> labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ",";
    out += fmt::format("{}=\"{}\"", k, Escape(v));
  }
  return out;
}

uint64_t U64(const json& j, std::string_view key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("cannot read {}", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<std::pair<LatencyHistogram, LatencyHistogram>> ParseLatency(
    const std::string& text) {
  std::istringstream in(text);
  std::pair<LatencyHistogram, LatencyHistogram> out;
  for (const char* want : {"read", "write"}) {
    std::string line, name;
    if (!std::getline(in, line)) return Corruption("latency: a line missing");
    std::istringstream fields(line);
    LatencyHistogram& h =
        std::string_view(want) == "read" ? out.first : out.second;
    if (!(fields >> name >> h.count >> h.sum_ns) || name != want)
      return Corruption(fmt::format("latency: bad line '{}'", line));
    uint64_t v, total = 0;
    while (fields >> v) {
      h.buckets.push_back(v);
      total += v;
    }
    if (h.buckets.size() != CVM_LATENCY_BUCKETS || !fields.eof() ||
        total != h.count)
      return Corruption(fmt::format("latency: bad line '{}'", line));
  }
  return out;
}

Result<VolumeIoStats> ReadVolumeIoStats(const std::string& sys_block,
                                        const std::string& name,
                                        uint32_t minor) {
  const std::string dir = fmt::format("{}/cvm{}", sys_block, minor);
  VolumeIoStats s;
  s.name = name;
  s.minor = minor;
  CVM_ASSIGN_OR_RETURN(std::string stat, ReadFile(dir + "/stat"));
  std::istringstream in(stat);
  uint64_t f[11] = {};
  for (uint64_t& v : f) {
    if (!(in >> v)) return Corruption(dir + "/stat: too few fields");
  }
  // Documentation/block/stat.rst: sectors are 512 bytes whatever the
  // device's block size.
  s.reads = f[0];
  s.read_bytes = f[2] * 512;
  s.read_ms = f[3];
  s.writes = f[4];
  s.written_bytes = f[6] * 512;
  s.write_ms = f[7];
  s.in_flight = f[8];
  if (auto text = ReadFile(dir + "/cvm/latency"); text.ok()) {
    CVM_ASSIGN_OR_RETURN(auto hist, ParseLatency(*text));
    s.read_latency = std::move(hist.first);
    s.write_latency = std::move(hist.second);
    s.has_latency = true;
  }
  return s;
}

std::string RenderMetrics(const MetricsInput& in) {
  Writer w;
  w.Family("cvm_map_epoch", "gauge", "The store's current map epoch.");
  w.Sample("cvm_map_epoch", "", in.map_epoch);

  // Volumes attached on this node.
  struct Counter {
    const char* name;
    const char* type;
    const char* help;
    uint64_t VolumeIoStats::*field;
  };
  static const Counter kCounters[] = {
      {"cvm_volume_reads_total", "counter", "Read requests completed.",
       &VolumeIoStats::reads},
      {"cvm_volume_read_bytes_total", "counter", "Bytes read.",
       &VolumeIoStats::read_bytes},
      {"cvm_volume_writes_total", "counter", "Write requests completed.",
       &VolumeIoStats::writes},
      {"cvm_volume_written_bytes_total", "counter", "Bytes written.",
       &VolumeIoStats::written_bytes},
      {"cvm_volume_in_flight", "gauge", "Requests in flight.",
       &VolumeIoStats::in_flight},
  };
  for (const Counter& c : kCounters) {
    w.Family(c.name, c.type,
             fmt::format("{} (volumes attached on this node, from the block "
                         "layer)",
                         c.help));
    for (const VolumeIoStats& v : in.volumes)
      w.Sample(c.name,
               Labels({{"volume", v.name},
                       {"device", fmt::format("cvm{}", v.minor)}}),
               v.*c.field);
  }
  constexpr std::string_view kLatency = "cvm_volume_request_duration_seconds";
  w.Family(kLatency, "histogram",
           "Request latency from cvm.ko taking a request to its end (volumes "
           "attached on this node).");
  for (const VolumeIoStats& v : in.volumes) {
    if (!v.has_latency) continue;
    for (const auto& [op, h] : {std::pair<const char*, const LatencyHistogram*>{
                                    "read", &v.read_latency},
                                {"write", &v.write_latency}}) {
      const std::string base = Labels({{"volume", v.name}, {"op", op}});
      uint64_t cumulative = 0;
      for (size_t i = 0; i < h->buckets.size(); ++i) {
        cumulative += h->buckets[i];
        // The last bucket also holds everything longer: it is +Inf only.
        if (i + 1 == h->buckets.size()) break;
        w.Sample(std::string(kLatency) + "_bucket",
                 base + fmt::format(",le=\"{}\"",
                                    std::ldexp(1.0, static_cast<int>(i)) / 1e6),
                 cumulative);
      }
      w.Sample(std::string(kLatency) + "_bucket", base + ",le=\"+Inf\"",
               h->count);
      w.Sample(std::string(kLatency) + "_sum", base,
               fmt::format("{:.9f}", h->sum_ns / 1e9));
      w.Sample(std::string(kLatency) + "_count", base, h->count);
    }
  }

  // Devices, as the store records them.
  std::map<uint64_t, const PathState*> path_of;
  for (const PathState& p : in.paths) path_of[p.device_id] = &p;
  const auto dev_labels = [&](const Device& d) {
    const auto h = in.host_names.find(d.host_id);
    return Labels({{"device", std::to_string(d.id)},
                   {"host", h != in.host_names.end() ? h->second : "?"}});
  };
  w.Family("cvm_device_up", "gauge", "1 when the map has the device up.");
  for (const Device& d : in.devices)
    w.Sample("cvm_device_up", dev_labels(d), d.up ? 1 : 0);
  w.Family("cvm_device_in", "gauge",
           "1 when the device takes placement (in), 0 when out.");
  for (const Device& d : in.devices)
    w.Sample("cvm_device_in", dev_labels(d), d.in ? 1 : 0);
  w.Family("cvm_device_full", "gauge",
           "1 past full_ratio (writes reaching it are refused), 0 else.");
  for (const Device& d : in.devices)
    w.Sample("cvm_device_full", dev_labels(d), d.full ? 1 : 0);
  w.Family("cvm_device_capacity_bytes", "gauge", "The device's capacity.");
  for (const Device& d : in.devices)
    w.Sample("cvm_device_capacity_bytes", dev_labels(d), d.capacity);
  w.Family("cvm_device_used_bytes", "gauge",
           "Bytes allocated, as this node's target reports its own devices.");
  for (const Device& d : in.devices) {
    if (auto u = in.device_used.find(d.id); u != in.device_used.end())
      w.Sample("cvm_device_used_bytes", dev_labels(d), u->second);
  }
  const auto per_initiator = [&](std::string_view name, auto value_of) {
    for (const Device& d : in.devices) {
      const auto p = path_of.find(d.id);
      if (p == path_of.end()) continue;
      for (const auto& [initiator, ip] : p->second->initiators)
        w.Sample(name, dev_labels(d) + "," + Labels({{"initiator", initiator}}),
                 value_of(ip));
    }
  };
  w.Family("cvm_device_path_up", "gauge",
           "1 when an initiator's cvm.ko last reported its path to the "
           "device up.");
  per_initiator("cvm_device_path_up",
                [](const InitiatorPath& ip) { return ip.up ? 1 : 0; });
  w.Family("cvm_device_stale_objects", "gauge",
           "Objects an initiator recorded stale on the device at its last "
           "path event (missed while down, left to resync when up).");
  per_initiator("cvm_device_stale_objects",
                [](const InitiatorPath& ip) { return ip.stale_objects; });

  const json raw = in.df.value("raw", json::object());
  w.Family("cvm_raw_capacity_bytes", "gauge",
           "Capacity of the devices in the map.");
  w.Sample("cvm_raw_capacity_bytes", "", U64(raw, "capacity"));
  w.Family("cvm_raw_used_bytes", "gauge",
           "Bytes allocated on the devices that report it.");
  w.Sample("cvm_raw_used_bytes", "", U64(raw, "used"));
  const json pools = in.df.value("pools", json::array());
  w.Family("cvm_pool_provisioned_bytes", "gauge",
           "Sum of the sizes of the pool's volumes.");
  for (const json& p : pools)
    w.Sample("cvm_pool_provisioned_bytes",
             Labels({{"pool", p.value("name", "")}}), U64(p, "provisioned"));
  w.Family("cvm_pool_max_avail_bytes", "gauge",
           "Bytes the pool's volumes could still write.");
  for (const json& p : pools)
    w.Sample("cvm_pool_max_avail_bytes",
             Labels({{"pool", p.value("name", "")}}), U64(p, "max_avail"));

  const json& r = in.recovery;
  w.Family("cvm_recovery_pgs", "gauge", "Placement groups in the map.");
  w.Sample("cvm_recovery_pgs", "", U64(r, "pgs"));
  w.Family("cvm_recovery_moving_pgs", "gauge",
           "PGs whose data is being copied to where placement wants it.");
  w.Sample("cvm_recovery_moving_pgs", "", U64(r, "moving_pgs"));
  w.Family("cvm_recovery_degraded_pgs", "gauge",
           "PGs with fewer copies than their policy.");
  w.Sample("cvm_recovery_degraded_pgs", "", U64(r, "degraded_pgs"));
  w.Family("cvm_recovery_misplaced_pgs", "gauge",
           "PGs with data off their up row.");
  w.Sample("cvm_recovery_misplaced_pgs", "", U64(r, "misplaced_pgs"));
  const json progress = r.value("progress", json::object());
  w.Family("cvm_recovery_pgs_done", "gauge",
           "PGs this recovery has moved (0 when nothing moves).");
  w.Sample("cvm_recovery_pgs_done", "", U64(progress, "pgs_done"));
  w.Family("cvm_recovery_bytes_copied_by_cvmd", "gauge",
           "Bytes the leader's cvmd copied in this recovery.");
  w.Sample("cvm_recovery_bytes_copied_by_cvmd", "",
           U64(progress, "bytes_copied_by_cvmd"));
  return w.Take();
}

}  // namespace cvm
