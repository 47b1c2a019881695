// cvmadm host token <name>: a new one-time join token for a host (a
// reinstalled node); the key it joined with before is void.
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::host_token {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "host name");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"name", vm["name"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "host.token", args, r)) return err;
  r->text =
      fmt::format("host '{}' must join again; on it run:\n  cvmadm join {}",
                  r->data.value("host", ""), r->data.value("join_token", ""));
  return 0;
}

Shell::Registrar action({{"host", "token"},
                         "Issue a new join token for a host (voids its key)",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::host_token
