// cvmadm host remove <name>
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::host_remove {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "host name");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const std::string name = vm["name"].as<std::string>();
  if (int err = CallDaemon(ctx, "host.remove", {{"name", name}}, r)) return err;
  r->text = fmt::format("host '{}' removed", name);
  return 0;
}

Shell::Registrar action({{"host", "remove"},
                         "Remove a host (its devices must be removed first)",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::host_remove
