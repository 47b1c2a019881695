// cvmadm host list [--json]
#include "format.h"
#include "shell.h"

namespace cvm::adm::host_list {

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "host.list", nlohmann::json::object(), r))
    return err;
  // UP: the host's cvmd holds its lease (see cvmadm status); "leader"
  // marks the one doing the cluster-wide work.
  std::vector<std::vector<std::string>> rows;
  for (const auto& h : r->data) {
    std::string up = "-";
    if (h.contains("up")) {
      up = h.value("up", false) ? "up" : "down";
      if (h.value("leader", false)) up += " (leader)";
    }
    rows.push_back({Str(h, "id"), Str(h, "name"), up, Str(h, "transport"),
                    LocationText(h), Str(h, "addresses")});
  }
  r->text = RenderTable(
      {"ID", "NAME", "CVMD", "TRANSPORT", "ROW/RACK", "ADDRESSES"}, rows);
  return 0;
}

Shell::Registrar action(
    {{"host", "list"}, "List hosts", &GetArguments, &Execute});

}  // namespace cvm::adm::host_list
