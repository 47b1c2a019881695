// cvmadm device list [--host H] [--json]
#include <fmt/format.h>

#include <ctime>

#include "format.h"
#include "shell.h"

namespace cvm::adm::device_list {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()("host", po::value<std::string>()->value_name("NAME"),
                         "only this host's devices");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  nlohmann::json args = nlohmann::json::object();
  if (vm.count("host")) args["host"] = vm["host"].as<std::string>();
  if (int err = CallDaemon(ctx, "device.list", args, r)) return err;
  const int64_t now = std::time(nullptr);
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : r->data) {
    rows.push_back({Str(d, "id"), Str(d, "host"), Str(d, "path"),
                    Str(d, "class"), SizeText(d, "capacity"),
                    fmt::format("{:g}", d.value("weight", 0.0)),
                    DeviceStateText(d),
                    PathText(d.value("path_state", nlohmann::json()), now)});
  }
  r->text = RenderTable({"ID", "HOST", "PATH", "CLASS", "CAPACITY", "WEIGHT",
                         "STATE", "PATH STATE"},
                        rows);
  return 0;
}

Shell::Registrar action(
    {{"device", "list"}, "List devices", &GetArguments, &Execute});

}  // namespace cvm::adm::device_list
