// cvmadm device list [--host H] [--json]
#include <fmt/format.h>

#include <ctime>

#include "format.h"
#include "shell.h"
#include "units.h"

namespace cvm::adm::device_list {
namespace {

// "1.0 GiB (3%)" of the object space the target serving the device reports;
// "-" when no target of this node serves it.
std::string UsedText(const nlohmann::json& usage) {
  if (!usage.is_object()) return "-";
  const uint64_t used = usage.value("used", uint64_t{0});
  const uint64_t capacity = usage.value("capacity", uint64_t{0});
  if (capacity == 0) return FormatSize(used);
  return fmt::format("{} ({}%)", FormatSize(used), used * 100 / capacity);
}

}  // namespace

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
    rows.push_back(
        {Str(d, "id"), Str(d, "host"), Str(d, "path"), Str(d, "class"),
         SizeText(d, "capacity"), UsedText(d.value("usage", nlohmann::json())),
         fmt::format("{:g}", d.value("weight", 0.0)), DeviceStateText(d),
         PathText(d.value("path_state", nlohmann::json()), now)});
  }
  r->text = RenderTable({"ID", "HOST", "PATH", "CLASS", "CAPACITY", "USED",
                         "WEIGHT", "STATE", "PATH STATE"},
                        rows);
  return 0;
}

Shell::Registrar action(
    {{"device", "list"}, "List devices", &GetArguments, &Execute});

}  // namespace cvm::adm::device_list
