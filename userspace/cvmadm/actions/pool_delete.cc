// cvmadm pool delete <name>
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::pool_delete {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "pool name");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const std::string name = vm["name"].as<std::string>();
  if (int err = CallDaemon(ctx, "pool.delete", {{"name", name}}, r)) return err;
  r->text = fmt::format("pool '{}' deleted", name);
  return 0;
}

Shell::Registrar action({{"pool", "delete"},
                         "Delete a pool (its volumes must be deleted first)",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::pool_delete
