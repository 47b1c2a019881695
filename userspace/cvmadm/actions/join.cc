// cvmadm join <token>: this node's cvmd joins the cluster as its host.
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::join {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()(
      "token", po::value<std::string>()->required(),
      "the join token 'cvmadm host add' (or 'host token') printed");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"token", vm["token"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "node.join", args, r)) return err;
  r->text =
      fmt::format("joined the cluster as host '{}' (node key {})",
                  r->data.value("host", ""), r->data.value("node_key", ""));
  return 0;
}

Shell::Registrar action({{"join"},
                         "Join this node's cvmd to the cluster with a token",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::join
