// cvmadm host rotate-key: this host's secret for the data path is replaced
// without downtime: the new keys reach the targets first, then cvm.ko
// uses the new secret (live connections stay up), then the old one is
// retired.
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::host_rotate_key {

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "host.rotate_key", nlohmann::json::object(), r))
    return err;
  r->text = fmt::format("host '{}' now uses key id {}",
                        r->data.value("host", ""), r->data.value("key_id", 0u));
  return 0;
}

Shell::Registrar action({{"host", "rotate-key"},
                         "Replace this host's data-path secret (no downtime)",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::host_rotate_key
