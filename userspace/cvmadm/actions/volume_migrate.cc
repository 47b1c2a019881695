// cvmadm volume migrate <name> --to HOST [--force]
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_migrate {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
  options->add_options()(
      "to", po::value<std::string>()->required()->value_name("HOST"),
      "the host to move it to")(
      "force", po::bool_switch(),
      "move it even while its device is open on the old host, or that host "
      "is down (the old host's I/O is then refused)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"name", vm["name"].as<std::string>()},
                               {"to", vm["to"].as<std::string>()},
                               {"force", vm["force"].as<bool>()}};
  if (int err = CallDaemon(ctx, "volume.migrate", args, r)) return err;
  r->text = fmt::format(
      "volume '{}' moved from host '{}' to host '{}' (attach epoch {}) in "
      "{:.0f} ms",
      Str(r->data, "name"), Str(r->data, "from"), Str(r->data, "attached_host"),
      Str(r->data, "attach_epoch"), r->data.value("total_ms", 0.0));
  return 0;
}

Shell::Registrar action({{"volume", "migrate"},
                         "Move an attached volume to another host",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::volume_migrate
