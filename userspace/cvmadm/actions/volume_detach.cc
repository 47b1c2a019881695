// cvmadm volume detach <name> [--force]
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_detach {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
  options->add_options()(
      "force", po::bool_switch(),
      "detach even while the device is open (its users' I/O then fails)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {{"name", vm["name"].as<std::string>()},
                               {"force", vm["force"].as<bool>()}};
  if (int err = CallDaemon(ctx, "volume.detach", args, r)) return err;
  const auto& dev = r->data["device"];
  r->text = fmt::format(
      "volume '{}' detached{}", Str(r->data, "detached"),
      dev.is_string() ? " from " + dev.get<std::string>()
      : r->data.contains("host")
          ? fmt::format(" from host '{}' (its cvmd lets go of the device "
                        "once it is closed)",
                        Str(r->data, "host"))
          : std::string());
  return 0;
}

Shell::Registrar action({{"volume", "detach"},
                         "Detach a volume from this host",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::volume_detach
