// cvmadm status [--json]: the daemon's state and, over generic netlink, the
// kernel modules' (when loaded).
#include <fmt/format.h>
#include <linux/cvm.h>

#include "format.h"
#include "netlink_client.h"
#include "shell.h"

namespace cvm::adm::status {

void GetArguments(po::options_description*, po::options_description*) {}

std::string ModuleLine(const nlohmann::json& m) {
  if (m.contains("error")) return "unknown (" + Str(m, "error") + ")";
  if (!m.value("loaded", false)) return "not loaded";
  return fmt::format("loaded, version {}, map epoch {}, {} {}",
                     Str(m, "module_version"), Str(m, "map_epoch"),
                     Str(m, "objects"),
                     Str(m, "role") == "target" ? "devices" : "volumes");
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
    text = RenderFields(
        {{"cvmd", fmt::format("running, version {}, pid {}", Str(d, "version"),
                              Str(d, "pid"))},
         {"socket", ctx.socket_path},
         {"database", Str(d, "db")},
         {"map epoch", Str(d, "map_epoch")},
         {"objects",
          fmt::format(
              "{} hosts, {} devices, {} pools, {} volumes, {} snapshots",
              Str(c, "hosts"), Str(c, "devices"), Str(c, "pools"),
              Str(c, "volumes"), Str(c, "snapshots"))},
         {"cvm module", ModuleLine(modules[CVM_GENL_NAME])},
         {"cvm_target module", ModuleLine(modules[CVM_TARGET_GENL_NAME])}});
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
