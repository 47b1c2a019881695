// cvmadm volume delete <name>
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::volume_delete {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const std::string name = vm["name"].as<std::string>();
  if (int err = CallDaemon(ctx, "volume.delete", {{"name", name}}, r))
    return err;
  r->text = fmt::format("volume '{}' deleted", name);
  return 0;
}

Shell::Registrar action(
    {{"volume", "delete"},
     "Delete a volume (its snapshots must be deleted first)",
     &GetArguments,
     &Execute});

}  // namespace cvm::adm::volume_delete
