// cvmadm target unlisten --address IP:PORT
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::target_unlisten {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()(
      "address", po::value<std::string>()->required()->value_name("IP:PORT"),
      "the address given to 'target listen'");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"address", vm["address"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "target.unlisten", args, r)) return err;
  r->text =
      fmt::format("target no longer listens on {}", Str(r->data, "address"));
  return 0;
}

Shell::Registrar action({{"target", "unlisten"},
                         "Stop a cvm_target listener",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::target_unlisten
