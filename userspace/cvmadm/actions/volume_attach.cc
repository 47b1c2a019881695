// cvmadm volume attach <name>: prints the block device, /dev/cvmN.
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_attach {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
  options->add_options()(
      "host", po::value<std::string>()->value_name("NAME"),
      "attach on that host (its cvmd attaches it; default: this host)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  nlohmann::json args = {{"name", vm["name"].as<std::string>()}};
  if (vm.count("host")) args["host"] = vm["host"].as<std::string>();
  if (int err = CallDaemon(ctx, "volume.attach", args, r)) return err;
  r->text = r->data["device"].is_null()
                ? fmt::format(
                      "volume '{}' attached to host '{}' (attach "
                      "epoch {}); its cvmd brings up the device",
                      Str(r->data, "name"), Str(r->data, "attached_host"),
                      Str(r->data, "attach_epoch"))
                : Str(r->data, "device");
  return 0;
}

Shell::Registrar action({{"volume", "attach"},
                         "Attach a volume to this host as /dev/cvmN",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::volume_attach
