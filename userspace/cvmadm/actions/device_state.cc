// cvmadm device out <id> | device in <id> | device drain <id> [--timeout S]
//
// Out: placement stops giving the device PGs; the PGs it holds stay pinned
// to it (their data is there) until backfill has copied them to their new
// rows, then they move off in one new map epoch and its copies are removed.
// In: it is up and takes PGs again (a device the leader marked down and
// out after down_out_interval comes back this way). Drain: out, then
// wait until the map places nothing on it, after which 'target device
// remove' and 'device remove' succeed.
#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "shell.h"

namespace cvm::adm::device_state {

void GetIdArgument(po::options_description* positional,
                   po::options_description*) {
  positional->add_options()("id", po::value<std::string>()->required(),
                            "device id (see 'device list')");
}

void GetDrainArguments(po::options_description* positional,
                       po::options_description* options) {
  GetIdArgument(positional, options);
  options->add_options()(
      "timeout", po::value<uint64_t>()->value_name("S")->default_value(600),
      "seconds to wait for the data to move off (0: do not wait)");
}

int SetIn(const po::variables_map& vm, Context& ctx, CliResult* r, bool in) {
  auto id = IdArgument(vm, "id");
  if (!id.ok()) return Fail(r, id.status());
  // In also marks it up: a device brought back is reachable again.
  nlohmann::json args = {{"id", *id}, {"in", in}};
  if (in) args["up"] = true;
  if (int err = CallDaemon(ctx, "device.set_state", args, r)) return err;
  r->text = in ? fmt::format("device {} in: it takes PGs again", *id)
               : fmt::format(
                     "device {} out: its PGs move off once backfill has "
                     "copied them ('device drain {}' waits for it)",
                     *id, *id);
  return 0;
}

int Out(const po::variables_map& vm, Context& ctx, CliResult* r) {
  return SetIn(vm, ctx, r, false);
}
int In(const po::variables_map& vm, Context& ctx, CliResult* r) {
  return SetIn(vm, ctx, r, true);
}

// PGs (pinned ones included) the current map places on device `id`.
Result<uint64_t> PgsOn(Context& ctx, uint64_t id) {
  CliResult shown;
  if (CallDaemon(ctx, "map.show", nlohmann::json::object(), &shown)) {
    return Unavailable(shown.error);
  }
  uint64_t n = 0;
  for (const auto& p : shown.data.value("pools", nlohmann::json::array())) {
    const nlohmann::json per = p.value("pgs_per_device", nlohmann::json());
    n += per.value(std::to_string(id), uint64_t{0});
  }
  return n;
}

int Drain(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto id = IdArgument(vm, "id");
  if (!id.ok()) return Fail(r, id.status());
  if (int err = CallDaemon(ctx, "device.set_state",
                           {{"id", *id}, {"in", false}}, r)) {
    return err;
  }
  const auto timeout = std::chrono::seconds(vm["timeout"].as<uint64_t>());
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto n = PgsOn(ctx, *id);
    if (!n.ok()) return Fail(r, n.status());
    const auto waited = std::chrono::steady_clock::now() - start;
    if (*n == 0) {
      r->data = {{"id", *id},
                 {"drained", true},
                 {"waited_ms",
                  std::chrono::duration_cast<std::chrono::milliseconds>(waited)
                      .count()}};
      r->text = fmt::format(
          "device {} drained: the map places nothing on it; 'target device "
          "remove {}' and 'device remove {}' take it away",
          *id, *id, *id);
      return 0;
    }
    if (waited >= timeout) {
      return Fail(r, Unavailable(fmt::format(
                         "device {} still holds {} PGs after {} s; its data "
                         "moves as backfill copies it (an attached EC "
                         "volume's only once it is detached)",
                         *id, *n, timeout.count())));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

Shell::Registrar out_action({{"device", "out"},
                             "Take a device out of placement (its data moves "
                             "off)",
                             &GetIdArgument,
                             &Out});
Shell::Registrar in_action({{"device", "in"},
                            "Let a device take placement groups again",
                            &GetIdArgument,
                            &In});
Shell::Registrar drain_action({{"device", "drain"},
                               "Take a device out and wait until its data "
                               "has moved off",
                               &GetDrainArguments,
                               &Drain});

}  // namespace cvm::adm::device_state
