// cvmadm map show [--epoch N] [--json]
//
// The cluster map of an epoch as the kernel will see it: whether it can be
// served (or why not) and, per pool, how kernel/common's placement spreads
// the placement groups over the devices.
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::map_show {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()("epoch", po::value<uint64_t>()->value_name("N"),
                         "epoch to show (default: the current one)");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  nlohmann::json args = nlohmann::json::object();
  if (vm.count("epoch")) args["epoch"] = vm["epoch"].as<uint64_t>();
  if (int err = CallDaemon(ctx, "map.show", args, r)) return err;
  const auto& m = r->data;
  const bool servable = m.value("servable", false);
  std::string text = RenderFields(
      {{"epoch", Str(m, "epoch")},
       {"created", TimeText(m, "created")},
       {"cut by", Str(m, "reason")},
       {"servable", servable ? "yes" : "no: " + Str(m, "problem")},
       {"sealed map",
        servable ? fmt::format("{} bytes, crc32c {:08x}", Str(m, "map_size"),
                               m.value("map_crc", 0u))
                 : "none"}});
  for (const auto& why : m.value("left_out", nlohmann::json::array())) {
    text += "left out:   " + why.get<std::string>() + "\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : m.value("pools", nlohmann::json::array())) {
    rows.push_back({p.value("name", "?"), Str(p, "pg_num"), Str(p, "width"),
                    Str(p, "devices_used"), Str(p, "min_pgs"),
                    fmt::format("{:.1f}", p.value("mean_pgs", 0.0)),
                    Str(p, "max_pgs"), Str(p, "unplaced"), Str(p, "pinned"),
                    Str(p, "overrides"),
                    fmt::format("{:08x}", p.value("table_crc", 0u))});
  }
  if (!rows.empty()) {
    text += "\n" + RenderTable({"POOL", "PG_NUM", "WIDTH", "DEVICES", "MIN_PGS",
                                "MEAN_PGS", "MAX_PGS", "UNPLACED", "PINNED",
                                "BALANCED", "TABLE_CRC"},
                               rows);
  }
  r->text = std::move(text);
  return 0;
}

Shell::Registrar action({{"map", "show"},
                         "Show a map epoch and its placement",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::map_show
