// cvmadm token revoke <id>: the token is refused from now on, by every cvmd.
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::token_revoke {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("id", po::value<std::string>()->required(),
                            "token id (token list)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"id", vm["id"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "token.revoke", args, r)) return err;
  r->text = fmt::format("token {} revoked", r->data.value("id", ""));
  return 0;
}

Shell::Registrar action({{"token", "revoke"},
                         "Revoke an HTTPS API token",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::token_revoke
