// cvmadm target listen --address IP:PORT
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::target_listen {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()(
      "address", po::value<std::string>()->required()->value_name("IP:PORT"),
      "one of a host's addresses (host add --address), e.g. 10.0.0.1:7800");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"address", vm["address"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "target.listen", args, r)) return err;
  r->text = fmt::format(
      "target listening on {} ({}) for host '{}'{}", Str(r->data, "address"),
      Str(r->data, "transport"), Str(r->data, "host"),
      r->data.value("already", false) ? " (already was)" : "");
  return 0;
}

Shell::Registrar action({{"target", "listen"},
                         "Make this node's cvm_target listen on an address",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::target_listen
