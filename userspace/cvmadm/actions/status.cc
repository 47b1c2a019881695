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
  if (err == 0) {
    const auto& d = daemon.data;
    const auto& c = d.value("counts", nlohmann::json::object());
    std::vector<std::pair<std::string, std::string>> fields = {
        {"cvmd", fmt::format("running, version {}, pid {}", Str(d, "version"),
                             Str(d, "pid"))},
        {"socket", ctx.socket_path},
        {"database", Str(d, "db")},
        {"map epoch", Str(d, "map_epoch")},
        {"objects",
         fmt::format("{} hosts, {} devices, {} pools, {} volumes, {} snapshots",
                     Str(c, "hosts"), Str(c, "devices"), Str(c, "pools"),
                     Str(c, "volumes"), Str(c, "snapshots"))}};
    AddPathFields(d, &fields);
    fields.push_back({"cvm module", ModuleLine(modules[CVM_GENL_NAME])});
    fields.push_back(
        {"cvm_target module", ModuleLine(modules[CVM_TARGET_GENL_NAME])});
    text = RenderFields(fields);
  } else {
    text = RenderFields(
        {{"cvmd", "not reachable at " + ctx.socket_path},
         {"cvm module", ModuleLine(modules[CVM_GENL_NAME])},
         {"cvm_target module", ModuleLine(modules[CVM_TARGET_GENL_NAME])}});
  }
  r->data = {{"daemon", err == 0 ? daemon.data
                                 : nlohmann::json{{"running", false},
                                                  {"error", daemon.error}}},
             {"modules", modules}};
  if (err == 0) r->data["daemon"]["running"] = true;
  r->text = std::move(text);
  r->err = daemon.err;
  r->error = daemon.error;
  return err;
}

Shell::Registrar action({{"status"},
                         "Show daemon and kernel module status",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::status
