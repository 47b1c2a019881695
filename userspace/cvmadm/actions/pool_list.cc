// cvmadm pool list [--json]
#include "format.h"
#include "shell.h"

namespace cvm::adm::pool_list {

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "pool.list", nlohmann::json::object(), r))
    return err;
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : r->data) {
    const std::string device_class = p.value("device_class", "");
    rows.push_back({Str(p, "id"), Str(p, "name"),
                    PolicyText(p.value("policy", nlohmann::json())),
                    Str(p, "pg_num"), Str(p, "failure_domain"),
                    device_class.empty() ? "any" : device_class,
                    Str(p, "effective_min_size")});
  }
  r->text = RenderTable(
      {"ID", "NAME", "POLICY", "PG_NUM", "DOMAIN", "CLASS", "MIN_SIZE"}, rows);
  return 0;
}

Shell::Registrar action(
    {{"pool", "list"}, "List pools", &GetArguments, &Execute});

}  // namespace cvm::adm::pool_list
