// cvmadm pool set <name> --min-size N|default
#include <fmt/format.h>

#include <charconv>

#include "format.h"
#include "shell.h"

namespace cvm::adm::pool_set {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "pool name");
  options->add_options()(
      "min-size", po::value<std::string>()->required()->value_name("N"),
      "copies (EC: shards) a write must reach to be acknowledged, or "
      "'default' (a majority of replicas; EC k+1 when m >= 2, else k)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const std::string text = vm["min-size"].as<std::string>();
  uint64_t min_size = 0;
  if (text != "default") {
    auto n = IdOption(vm, "min-size");
    if (!n.ok()) return Fail(r, n.status());
    min_size = *n;
  }
  nlohmann::json args = {{"name", vm["name"].as<std::string>()},
                         {"min_size", min_size}};
  if (int err = CallDaemon(ctx, "pool.set", args, r)) return err;
  r->text = fmt::format("pool '{}': min_size {}{}", Str(r->data, "name"),
                        Str(r->data, "effective_min_size"),
                        min_size ? "" : " (the policy's default)");
  return 0;
}

Shell::Registrar action(
    {{"pool", "set"},
     "Change a pool's min_size (a new map epoch: initiators apply it at once)",
     &GetArguments,
     &Execute});

}  // namespace cvm::adm::pool_set
