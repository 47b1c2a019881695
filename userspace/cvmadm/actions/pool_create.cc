// cvmadm pool create <name> --policy replicated:N|ec:K,M [--pg-num N]
//                           [--failure-domain host|rack|row] [--device-class C]
//                           [--min-size N]
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::pool_create {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "pool name");
  options->add_options()(
      "policy", po::value<std::string>()->required()->value_name("P"),
      "replicated:N (N = 1..5) or ec:K,M (K = 2..8, M = 1..4)")(
      "pg-num", po::value<std::string>()->default_value("64")->value_name("N"),
      "placement groups, a power of two")(
      "failure-domain",
      po::value<std::string>()->default_value("host")->value_name("D"),
      "host, rack or row: copies go to distinct ones")(
      "device-class",
      po::value<std::string>()->default_value("")->value_name("C"),
      "only use devices of this class (default: any)")(
      "min-size", po::value<std::string>()->value_name("N"),
      "copies (EC: shards) a write must reach to be acknowledged (default: "
      "a majority of replicas; EC k+1 when m >= 2, else k)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto pg_num = IdOption(vm, "pg-num");
  if (!pg_num.ok()) return Fail(r, pg_num.status());
  nlohmann::json args = {
      {"name", vm["name"].as<std::string>()},
      {"policy", vm["policy"].as<std::string>()},
      {"pg_num", *pg_num},
      {"failure_domain", vm["failure-domain"].as<std::string>()}};
  const std::string device_class = vm["device-class"].as<std::string>();
  if (!device_class.empty()) args["device_class"] = device_class;
  if (vm.count("min-size")) {
    auto min_size = IdOption(vm, "min-size");
    if (!min_size.ok()) return Fail(r, min_size.status());
    args["min_size"] = *min_size;
  }
  if (int err = CallDaemon(ctx, "pool.create", args, r)) return err;
  r->text =
      fmt::format("pool '{}' created (id {}, {}, pg_num {}, min_size {})",
                  Str(r->data, "name"), Str(r->data, "id"),
                  PolicyText(r->data.value("policy", nlohmann::json())),
                  Str(r->data, "pg_num"), Str(r->data, "effective_min_size"));
  if (r->data.contains("warning")) {
    r->text += "\nwarning: " + r->data["warning"].get<std::string>();
  }
  return 0;
}

Shell::Registrar action(
    {{"pool", "create"}, "Create a pool", &GetArguments, &Execute});

}  // namespace cvm::adm::pool_create
