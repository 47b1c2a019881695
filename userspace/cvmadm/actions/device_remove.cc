// cvmadm device remove <id> [--force]
//
// Refused while the device still holds data no other device has yet
// (drain it first) or while its target serves it. --force takes a dead
// device (down, or unreachable from every initiator) away anyway: its
// copies are given up and rebuilt from the others.
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::device_remove {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("id", po::value<std::string>()->required(),
                            "device id (see 'device list')");
  options->add_options()("force", po::bool_switch(),
                         "remove a dead device that still holds data (its "
                         "copies are rebuilt from the others)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto parsed = IdArgument(vm, "id");
  if (!parsed.ok()) return Fail(r, parsed.status());
  const uint64_t id = *parsed;
  const bool force = vm["force"].as<bool>();
  if (int err =
          CallDaemon(ctx, "device.remove", {{"id", id}, {"force", force}}, r)) {
    return err;
  }
  r->text = force ? fmt::format(
                        "device {} removed; what it held is rebuilt from the "
                        "other copies ('recovery status' follows it)",
                        id)
                  : fmt::format("device {} removed", id);
  return 0;
}

Shell::Registrar action(
    {{"device", "remove"}, "Remove a device", &GetArguments, &Execute});

}  // namespace cvm::adm::device_remove
