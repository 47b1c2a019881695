// cvmadm host list [--json]
#include "format.h"
#include "shell.h"

namespace cvm::adm::host_list {

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "host.list", nlohmann::json::object(), r))
    return err;
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : r->data) {
    rows.push_back({Str(h, "id"), Str(h, "name"), Str(h, "transport"),
                    LocationText(h), Str(h, "addresses")});
  }
  r->text =
      RenderTable({"ID", "NAME", "TRANSPORT", "ROW/RACK", "ADDRESSES"}, rows);
  return 0;
}

Shell::Registrar action(
    {{"host", "list"}, "List hosts", &GetArguments, &Execute});

}  // namespace cvm::adm::host_list
