// cvmadm status [--json]: the daemon's state, the path state of each device
// as cvmd recorded cvm.ko's path events and, over generic netlink, the
// kernel modules' (when loaded).
#include <fmt/format.h>
#include <linux/cvm.h>

#include <ctime>

#include "format.h"
#include "netlink_client.h"
#include "shell.h"

namespace cvm::adm::status {

void GetArguments(po::options_description*, po::options_description*) {}

std::string ModuleLine(const nlohmann::json& m) {
  if (m.contains("error")) return "unknown (" + Str(m, "error") + ")";
  if (!m.value("loaded", false)) return "not loaded";
  std::string line = fmt::format(
      "loaded, version {}, map epoch {}, {} {}", Str(m, "module_version"),
      Str(m, "map_epoch"), Str(m, "objects"),
      Str(m, "role") == "target" ? "devices" : "volumes");
  if (m.contains("stale_objects") && !m["stale_objects"].is_null()) {
    line += fmt::format(", {} stale objects", Str(m, "stale_objects"));
  }
  return line;
}

// One "device N path" line per device cvm.ko reported a path event for.
void AddPathFields(const nlohmann::json& daemon,
                   std::vector<std::pair<std::string, std::string>>* fields) {
  fields->push_back({"path events", Str(daemon, "path_events")});
  const nlohmann::json paths =
      daemon.value("path_states", nlohmann::json::array());
  if (!paths.is_array() || paths.empty()) {
    fields->push_back({"device paths", "none reported"});
    return;
  }
  const int64_t now = std::time(nullptr);
  for (const auto& p : paths) {
    fields->push_back(
        {fmt::format("device {} path", Str(p, "device_id")),
         fmt::format("{}, target {}", PathText(p, now), Str(p, "address"))});
  }
}

// The leader, the cvmds that are up and, over etcd, each member's health.
void AddClusterFields(
    const nlohmann::json& c,
    std::vector<std::pair<std::string, std::string>>* fields) {
  if (c.empty()) return;
  const std::string leader = c.value("leader", "");
  fields->push_back(
      {"leader",
       leader.empty()
           ? "none"
           : leader + (c.value("is_leader", false) ? " (this cvmd)" : "")});
  std::string up;
  const nlohmann::json nodes = c.value("nodes", nlohmann::json::object());
  for (const auto& [host, info] : nodes.items()) {
    up += (up.empty() ? "" : ", ") + host;
  }
  fields->push_back({"cvmds up", up.empty() ? "none" : up});
  for (const auto& m : c.value("etcd_members", nlohmann::json::array())) {
    std::string text;
    if (m.value("healthy", false)) {
      text = fmt::format("healthy, etcd {}, {} KiB{}", Str(m, "version"),
                         m.value("db_size", int64_t{0}) / 1024,
                         m.value("is_leader", false) ? ", raft leader" : "");
    } else {
      text = "unreachable: " + Str(m, "error");
    }
    fields->push_back({"etcd " + Str(m, "endpoint"), text});
  }
}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  nlohmann::json modules = nlohmann::json::object();
  for (const char* family : {CVM_GENL_NAME, CVM_TARGET_GENL_NAME}) {
    auto status = QueryModuleStatus(family);
    modules[family] =
        status.ok() ? ToJson(*status)
                    : nlohmann::json{{"family", family},
                                     {"error", status.status().message()}};
  }
  std::string text;
  CliResult daemon;
  const int err = CallDaemon(ctx, "status", nlohmann::json::object(), &daemon);
  // Only a failed connection means cvmd is not there; an answer, even an
  // error, comes from a running cvmd.
  const bool reachable = err == 0 || !daemon.transport_error;
  std::vector<std::pair<std::string, std::string>> fields;
  if (err == 0) {
    const auto& d = daemon.data;
    fields.push_back({"cvmd", fmt::format("running, version {}, pid {}",
                                          Str(d, "version"), Str(d, "pid"))});
    fields.push_back({"socket", ctx.socket_path});
    fields.push_back({"store", Str(d, "db")});
    AddClusterFields(d.value("cluster", nlohmann::json::object()), &fields);
    if (d.contains("store_error")) {
      fields.push_back({"store error", Str(d["store_error"], "message")});
      daemon.err = -EIO;
      daemon.code = Str(d["store_error"], "code");
      daemon.error = "cvmd's store fails: " + Str(d["store_error"], "message");
    } else {
      const auto& c = d.value("counts", nlohmann::json::object());
      fields.push_back({"map epoch", Str(d, "map_epoch")});
      fields.push_back(
          {"objects",
           fmt::format("{} hosts, {} devices, {} pools, {} volumes, {} "
                       "snapshots",
                       Str(c, "hosts"), Str(c, "devices"), Str(c, "pools"),
                       Str(c, "volumes"), Str(c, "snapshots"))});
      AddPathFields(d, &fields);
      CliResult devices;
      if (CallDaemon(ctx, "device.list", nlohmann::json::object(), &devices) ==
              0 &&
          devices.data.is_array()) {
        std::string fill;
        for (const auto& dev : devices.data) {
          const char* what = dev.value("full", false)       ? "full"
                             : dev.value("nearfull", false) ? "nearfull"
                                                            : nullptr;
          if (!what) continue;
          fill += fmt::format("{}device {} {}", fill.empty() ? "" : ", ",
                              Str(dev, "id"), what);
        }
        if (!fill.empty()) fields.push_back({"WARNING fullness", fill});
      }
      CliResult recovery;
      if (CallDaemon(ctx, "recovery.status", nlohmann::json::object(),
                     &recovery) == 0) {
        fields.push_back({"recovery", RecoveryLine(recovery.data)});
        daemon.data["recovery"] = recovery.data;
      }
    }
  } else if (reachable) {
    fields.push_back(
        {"cvmd", "running, but its status failed: " + daemon.error});
  } else {
    fields.push_back({"cvmd", "not reachable at " + ctx.socket_path});
  }
  fields.push_back({"cvm module", ModuleLine(modules[CVM_GENL_NAME])});
  fields.push_back(
      {"cvm_target module", ModuleLine(modules[CVM_TARGET_GENL_NAME])});
  text = RenderFields(fields);
  r->data = {{"daemon",
              err == 0 ? daemon.data : nlohmann::json{{"error", daemon.error}}},
             {"modules", modules}};
  r->data["daemon"]["running"] = reachable;
  r->text = std::move(text);
  r->err = daemon.err;
  r->error = daemon.error;
  r->code = daemon.code;
  return daemon.err;
}

Shell::Registrar action({{"status"},
                         "Show daemon and kernel module status",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::status
