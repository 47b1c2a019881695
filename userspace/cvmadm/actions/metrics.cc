// cvmadm metrics: the Prometheus text of GET /metrics (for a textfile
// collector, or a look without a token on this node).
#include "shell.h"

namespace cvm::adm::metrics {

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "metrics", nlohmann::json::object(), r))
    return err;
  r->text = r->data.value("text", "");
  return 0;
}

Shell::Registrar action({{"metrics"},
                         "Print this node's Prometheus metrics",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::metrics
