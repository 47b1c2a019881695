// cvmadm target device remove <device-id>
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::target_device_remove {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("device-id", po::value<std::string>()->required(),
                            "device id (device list)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto id = IdArgument(vm, "device-id");
  if (!id.ok()) return Fail(r, id.status());
  if (int err = CallDaemon(ctx, "target.device.remove", {{"id", *id}}, r)) {
    return err;
  }
  r->text = fmt::format("target no longer serves device {} ({})",
                        Str(r->data, "id"), Str(r->data, "path"));
  return 0;
}

Shell::Registrar action({{"target", "device", "remove"},
                         "Stop serving a device from cvm_target",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::target_device_remove
