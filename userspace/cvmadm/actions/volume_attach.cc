// cvmadm volume attach <name>: prints the block device, /dev/cvmN.
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_attach {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"name", vm["name"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "volume.attach", args, r)) return err;
  r->text = Str(r->data, "device");
  return 0;
}

Shell::Registrar action({{"volume", "attach"},
                         "Attach a volume to this host as /dev/cvmN",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::volume_attach
