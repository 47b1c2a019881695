#include "format.h"

#include <fmt/format.h>

#include <algorithm>

#include "json_fields.h"
#include "units.h"

namespace cvm::adm {

using nlohmann::json;

std::string Str(const json& record, const char* key) {
  if (!record.is_object() || !record.contains(key)) return "-";
  const json& v = record[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& item : v) {
      out += (out.empty() ? "" : ",") +
             (item.is_string() ? item.get<std::string>() : DumpJson(item));
    }
    return out.empty() ? "-" : out;
  }
  return DumpJson(v);
}

std::string SizeText(const json& record, const char* key) {
  if (!record.is_object() || !record.contains(key) ||
      !record[key].is_number_unsigned()) {
    return "-";
  }
  return FormatSize(record[key].get<uint64_t>());
}

std::string PolicyText(const json& policy) {
  if (!policy.is_object()) return "-";
  const std::string type = Str(policy, "type");
  if (type == "replicated") return "replicated:" + Str(policy, "replicas");
  if (type == "ec") return "ec:" + Str(policy, "k") + "," + Str(policy, "m");
  return type;
}

std::string DeviceStateText(const json& device) {
  const bool up = device.value("up", false);
  const bool in = device.value("in", false);
  const char* fill = device.value("full", false)       ? ",full"
                     : device.value("nearfull", false) ? ",nearfull"
                                                       : "";
  return fmt::format("{},{}{}", up ? "up" : "down", in ? "in" : "out", fill);
}

std::string LocationText(const json& host) {
  const std::string row = host.value("row", "");
  const std::string rack = host.value("rack", "");
  if (row.empty() && rack.empty()) return "-";
  return fmt::format("{}/{}", row.empty() ? "-" : row,
                     rack.empty() ? "-" : rack);
}

std::string TimeText(const json& record, const char* key) {
  if (!record.is_object() || !record.contains(key) ||
      !record[key].is_number_integer()) {
    return "-";
  }
  return FormatTime(record[key].get<int64_t>());
}

std::string PathText(const json& path, int64_t now) {
  if (!path.is_object()) return "-";
  // Several initiators: which ones see it down, if any.
  const json initiators = path.value("initiators", json::object());
  if (initiators.is_object() && initiators.size() > 1) {
    std::string down;
    for (const auto& [host, i] : initiators.items()) {
      if (i.is_object() && i.value("state", "") == "down")
        down += (down.empty() ? "" : ",") + host;
    }
    return down.empty()
               ? fmt::format("up ({} initiators)", initiators.size())
               : fmt::format("down on {} of {}: {}",
                             std::count(down.begin(), down.end(), ',') + 1,
                             initiators.size(), down);
  }
  const std::string state = path.value("state", "");
  if (state == "up") return "up";
  if (state != "down") return "-";
  const json* since = path.contains("since") ? &path["since"] : nullptr;
  const std::string age = since && since->is_number_integer()
                              ? FormatDuration(now - since->get<int64_t>())
                              : "?";
  return fmt::format("down {}, {} stale", age, Str(path, "stale_objects"));
}

std::string RecoveryLine(const nlohmann::json& d) {
  const uint64_t moving = d.value("moving_pgs", uint64_t{0});
  const uint64_t degraded = d.value("degraded_pgs", uint64_t{0});
  const uint64_t misplaced = d.value("misplaced_pgs", uint64_t{0});
  if (moving == 0 && degraded == 0) return "idle";
  std::string line =
      fmt::format("{} PGs degraded, {} misplaced", degraded, misplaced);
  if (moving == 0) {
    return line +
           " (a device is down: it is marked out after "
           "down_out_interval, then its data is rebuilt)";
  }
  const nlohmann::json p = d.value("progress", nlohmann::json::object());
  if (p.empty()) return line + fmt::format(", {} moving", moving);
  line += fmt::format("; {} of {} PGs moved in {} s", Str(p, "pgs_done"),
                      Str(p, "pgs_total"), Str(p, "elapsed_s"));
  const double rate = p.value("pgs_per_s", 0.0);
  if (rate > 0) line += fmt::format(" ({:.1f} PGs/min)", rate * 60);
  line += p.contains("eta_s") && p["eta_s"].is_number()
              ? fmt::format(", ETA {} s", Str(p, "eta_s"))
              : std::string(", ETA unknown");
  const uint64_t bytes = p.value("bytes_copied_by_cvmd", uint64_t{0});
  if (bytes) {
    line += fmt::format("; cvmd copied {:.1f} MiB ({:.1f} MiB/s)",
                        static_cast<double>(bytes) / (1 << 20),
                        p.value("bytes_per_s_by_cvmd", 0.0) / (1 << 20));
  }
  if (p.value("shards_rebuilt", uint64_t{0})) {
    line += fmt::format(", {} shards rebuilt", Str(p, "shards_rebuilt"));
  }
  if (p.value("stalled", false)) line += "; STALLED (see cvmd's log)";
  return line;
}

}  // namespace cvm::adm
