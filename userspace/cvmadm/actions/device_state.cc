// cvmadm device out <id> | device in <id> | device drain <id> [--timeout S]
// cvmadm host out <name> | host in <name> | host drain <name> [--timeout S]
//
// Out: placement stops giving the device PGs; the PGs it holds stay pinned
// to it (their data is there) until backfill has copied them to their new
// rows, then they move off in one new map epoch and its copies are removed.
// In: it is up and takes PGs again (a device the leader marked down and
// out after down_out_interval comes back this way). Drain: out, then
// wait until the map places nothing on it, after which 'target device
// remove' and 'device remove' succeed. The host forms do the same to every
// device of a host at once, in one map epoch.
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

void GetNameArgument(po::options_description* positional,
                     po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "host name (see 'host list')");
}

void AddTimeout(po::options_description* options) {
  options->add_options()(
      "timeout", po::value<uint64_t>()->value_name("S")->default_value(600),
      "seconds to wait for the data to move off (0: do not wait)");
}

void GetDrainArguments(po::options_description* positional,
                       po::options_description* options) {
  GetIdArgument(positional, options);
  AddTimeout(options);
}

void GetHostDrainArguments(po::options_description* positional,
                           po::options_description* options) {
  GetNameArgument(positional, options);
  AddTimeout(options);
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

// PGs (pinned ones included) the current map places on devices `ids`.
Result<uint64_t> PgsOn(Context& ctx, const std::vector<uint64_t>& ids) {
  CliResult shown;
  if (CallDaemon(ctx, "map.show", nlohmann::json::object(), &shown)) {
    return Unavailable(shown.error);
  }
  uint64_t n = 0;
  for (const auto& p : shown.data.value("pools", nlohmann::json::array())) {
    const nlohmann::json per = p.value("pgs_per_device", nlohmann::json());
    for (uint64_t id : ids) n += per.value(std::to_string(id), uint64_t{0});
  }
  return n;
}

// Waits until the map places nothing on `ids`; `what` names them.
int WaitDrained(const po::variables_map& vm, Context& ctx, CliResult* r,
                const std::vector<uint64_t>& ids, const std::string& what,
                const std::string& then) {
  const auto timeout = std::chrono::seconds(vm["timeout"].as<uint64_t>());
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto n = PgsOn(ctx, ids);
    if (!n.ok()) return Fail(r, n.status());
    const auto waited = std::chrono::steady_clock::now() - start;
    if (*n == 0) {
      r->data["drained"] = true;
      r->data["waited_ms"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(waited).count();
      r->text = fmt::format("{} drained: the map places nothing on it; {}",
                            what, then);
      return 0;
    }
    if (waited >= timeout) {
      return Fail(r, Unavailable(fmt::format(
                         "{} still holds {} PGs after {} s; its data moves as "
                         "backfill copies it (an attached EC volume's only "
                         "once it is detached)",
                         what, *n, timeout.count())));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

int Drain(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto id = IdArgument(vm, "id");
  if (!id.ok()) return Fail(r, id.status());
  if (int err = CallDaemon(ctx, "device.set_state",
                           {{"id", *id}, {"in", false}}, r)) {
    return err;
  }
  r->data = {{"id", *id}};
  return WaitDrained(
      vm, ctx, r, {*id}, fmt::format("device {}", *id),
      fmt::format("'target device remove {}' and 'device remove {}' take it "
                  "away",
                  *id, *id));
}

int HostSetIn(const po::variables_map& vm, Context& ctx, CliResult* r,
              bool in) {
  const std::string name = vm["name"].as<std::string>();
  if (int err =
          CallDaemon(ctx, "host.set_in", {{"name", name}, {"in", in}}, r)) {
    return err;
  }
  r->text = in ? fmt::format("host '{}' in: its devices take PGs again", name)
               : fmt::format(
                     "host '{}' out: its PGs move off once backfill has "
                     "copied them ('host drain {}' waits for it)",
                     name, name);
  return 0;
}

int HostOut(const po::variables_map& vm, Context& ctx, CliResult* r) {
  return HostSetIn(vm, ctx, r, false);
}
int HostIn(const po::variables_map& vm, Context& ctx, CliResult* r) {
  return HostSetIn(vm, ctx, r, true);
}

int HostDrain(const po::variables_map& vm, Context& ctx, CliResult* r) {
  if (int err = HostSetIn(vm, ctx, r, false)) return err;
  std::vector<uint64_t> ids;
  for (const auto& id : r->data.value("devices", nlohmann::json::array())) {
    ids.push_back(id.get<uint64_t>());
  }
  const std::string name = vm["name"].as<std::string>();
  return WaitDrained(vm, ctx, r, ids, fmt::format("host '{}'", name),
                     "'target device remove' of each of its devices, "
                     "'device remove' and 'host remove' take it away");
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
Shell::Registrar host_out_action({{"host", "out"},
                                  "Take every device of a host out of "
                                  "placement (one map epoch)",
                                  &GetNameArgument,
                                  &HostOut});
Shell::Registrar host_in_action({{"host", "in"},
                                 "Let every device of a host take placement "
                                 "groups again",
                                 &GetNameArgument,
                                 &HostIn});
Shell::Registrar host_drain_action({{"host", "drain"},
                                    "Take a host's devices out and wait until "
                                    "their data has moved off",
                                    &GetHostDrainArguments,
                                    &HostDrain});

}  // namespace cvm::adm::device_state
