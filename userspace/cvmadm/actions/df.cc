// cvmadm df [--json]: raw capacity, what volumes promise, per-device fill.
#include <fmt/format.h>

#include "format.h"
#include "shell.h"
#include "units.h"

namespace cvm::adm::df {
namespace {

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  return fmt::format(
      "{}%", static_cast<unsigned>(static_cast<unsigned __int128>(part) * 100 /
                                   whole));
}

}  // namespace

void GetArguments(po::options_description*, po::options_description*) {}

int Execute(const po::variables_map&, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "cluster.df", nlohmann::json::object(), r))
    return err;
  const auto& raw = r->data["raw"];
  const uint64_t capacity = raw.value("capacity", uint64_t{0});
  const uint64_t used = raw.value("used", uint64_t{0});
  std::string text = "RAW STORAGE\n";
  text += RenderTable(
      {"CAPACITY", "USED", "THICK RESERVED", "AVAILABLE", "REPORTING"},
      {{SizeText(raw, "capacity"),
        fmt::format("{} ({})", FormatSize(used), Percent(used, capacity)),
        SizeText(raw, "thick_reserved"), SizeText(raw, "available"),
        fmt::format("{} of {} devices", Str(raw, "devices_reporting"),
                    Str(raw, "devices"))}});
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : r->data["pools"]) {
    rows.push_back({Str(p, "name"), Str(p, "policy"), Str(p, "volumes"),
                    SizeText(p, "provisioned"), SizeText(p, "thick_reserved"),
                    SizeText(p, "max_avail")});
  }
  text += "\nPOOLS\n";
  text += RenderTable({"NAME", "POLICY", "VOLUMES", "PROVISIONED",
                       "THICK RESERVED", "MAX AVAIL"},
                      rows);
  rows.clear();
  std::string warnings;
  for (const auto& d : r->data["devices"]) {
    const bool known = d.contains("used") && d["used"].is_number_unsigned();
    const uint64_t cap = d.value("capacity", uint64_t{0});
    rows.push_back({Str(d, "id"), Str(d, "host"), SizeText(d, "capacity"),
                    known ? SizeText(d, "used") : "-",
                    known ? Percent(d["used"].get<uint64_t>(), cap) : "-",
                    d.value("in", false) ? "in" : "out"});
    if (d.value("full", false)) {
      warnings += fmt::format(
          "WARNING: device {} is full: writes reaching it get NO_SPACE\n",
          Str(d, "id"));
    } else if (d.value("nearfull", false)) {
      warnings += fmt::format(
          "WARNING: device {} is nearfull: backfill places no data there\n",
          Str(d, "id"));
    }
  }
  text += "\nDEVICES (used: as their targets on this node report it)\n";
  text += RenderTable({"ID", "HOST", "CAPACITY", "USED", "FILL", "IN"}, rows);
  r->text = text + (warnings.empty() ? "" : "\n" + warnings);
  if (!r->text.empty() && r->text.back() == '\n') r->text.pop_back();
  return 0;
}

Shell::Registrar action({{"df"},
                         "Show raw capacity, pool promises and device fill",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::df
