// cvmadm target device add <device-id> [--format] [--force]
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::target_device_add {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("device-id", po::value<std::string>()->required(),
                            "device id (device list); its path comes from "
                            "cvmd's records");
  options->add_options()("format", po::bool_switch(),
                         "write a new, empty object store first")(
      "force", po::bool_switch(),
      "with --format: even over an existing CVM store (destroys its data)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto id = IdArgument(vm, "device-id");
  if (!id.ok()) return Fail(r, id.status());
  const bool format = vm["format"].as<bool>();
  const bool force = vm["force"].as<bool>();
  if (force && !format) {
    return Fail(r, InvalidArgument("--force only goes with --format"));
  }
  const nlohmann::json args = {
      {"id", *id}, {"format", format}, {"force", force}};
  if (int err = CallDaemon(ctx, "target.device.add", args, r)) return err;
  r->text = fmt::format("target serves device {} ({}){}", Str(r->data, "id"),
                        Str(r->data, "path"), format ? ", formatted" : "");
  return 0;
}

Shell::Registrar action({{"target", "device", "add"},
                         "Serve a device from this node's cvm_target",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::target_device_add
