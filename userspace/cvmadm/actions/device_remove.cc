// cvmadm device remove <id>
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::device_remove {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("id", po::value<std::string>()->required(),
                            "device id (see 'device list')");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto parsed = IdArgument(vm, "id");
  if (!parsed.ok()) return Fail(r, parsed.status());
  const uint64_t id = *parsed;
  if (int err = CallDaemon(ctx, "device.remove", {{"id", id}}, r)) return err;
  r->text = fmt::format("device {} removed", id);
  return 0;
}

Shell::Registrar action(
    {{"device", "remove"}, "Remove a device", &GetArguments, &Execute});

}  // namespace cvm::adm::device_remove
