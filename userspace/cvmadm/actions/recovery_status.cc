// cvmadm recovery status [--watch S] [--json]
//
// What backfill has left to do: PGs still pinned to the devices of their
// data (moving), per pool, with the volumes each pool waits for and who
// copies them (their host's cvm.ko, or cvmd); PGs degraded (a copy on a
// down device, or none) and misplaced; progress since the recovery started
// (PGs moved, rate and ETA in PGs, the bytes cvmd's own copies wrote); and
// PGs whose old copies are not removed yet.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "format.h"
#include "shell.h"

namespace cvm::adm::recovery_status {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()(
      "watch", po::value<uint64_t>()->value_name("S"),
      "print it again every S seconds until nothing is moving");
}

std::string Render(const nlohmann::json& d) {
  const uint64_t moving = d.value("moving_pgs", uint64_t{0});
  const uint64_t pgs = d.value("pgs", uint64_t{0});
  const uint64_t sweep = d.value("sweep_pending_pgs", uint64_t{0});
  std::string text = fmt::format(
      "map epoch {}: {} of {} PGs moving{}\n", Str(d, "map_epoch"), moving, pgs,
      sweep ? fmt::format(", old copies of {} PGs to remove", sweep) : "");
  if (moving || d.value("degraded_pgs", uint64_t{0})) {
    text += RecoveryLine(d) + "\n";
  }
  if (pgs && isatty(STDOUT_FILENO)) {
    const uint64_t done = (pgs - moving) * 40 / pgs;
    text += "[" + std::string(done, '#') + std::string(40 - done, '.') + "]\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : d.value("pools", nlohmann::json::array())) {
    if (p.value("moving_pgs", 0u) == 0) continue;
    std::string waits;
    for (const auto& v : p.value("volumes", nlohmann::json::array())) {
      if (v.value("copied", false)) continue;
      if (!waits.empty()) waits += ", ";
      waits += fmt::format("{} (by {})", Str(v, "name"), Str(v, "copied_by"));
    }
    rows.push_back({Str(p, "name"), Str(p, "moving_pgs"),
                    Str(p, "degraded_pgs"), Str(p, "pg_num"),
                    waits.empty() ? "-" : waits});
  }
  if (!rows.empty()) {
    text +=
        RenderTable({"POOL", "MOVING", "DEGRADED", "PG_NUM", "COPYING"}, rows);
  }
  return text;
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  for (;;) {
    if (int err =
            CallDaemon(ctx, "recovery.status", nlohmann::json::object(), r)) {
      return err;
    }
    r->text = Render(r->data);
    const bool idle = r->data.value("moving_pgs", uint64_t{0}) == 0 &&
                      r->data.value("sweep_pending_pgs", uint64_t{0}) == 0;
    if (!vm.count("watch") || idle || ctx.json) return 0;
    std::cout << r->text << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(
        std::max<uint64_t>(1, vm["watch"].as<uint64_t>())));
  }
}

Shell::Registrar action({{"recovery", "status"},
                         "Show the data still moving to where placement wants "
                         "it",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::recovery_status
