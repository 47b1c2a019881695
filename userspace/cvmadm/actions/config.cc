// cvmadm config get [KEY] | config set KEY VALUE
//
// Cluster-wide settings, kept in the store (every node reads the same):
// down_out_interval, the seconds a device's path may stay down before the
// leader marks it out and its data is rebuilt elsewhere (0: never).
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::config {

void GetGetArguments(po::options_description* positional,
                     po::options_description*) {
  positional->add_options()("key", po::value<std::string>(),
                            "one setting (default: all)");
}

void GetSetArguments(po::options_description* positional,
                     po::options_description*) {
  positional->add_options()("key", po::value<std::string>()->required(),
                            "setting name (see 'config get')")(
      "value", po::value<std::string>()->required(), "its new value");
}

int Get(const po::variables_map& vm, Context& ctx, CliResult* r) {
  if (int err = CallDaemon(ctx, "config.get", nlohmann::json::object(), r)) {
    return err;
  }
  const nlohmann::json settings = r->data.value("settings", nlohmann::json());
  const nlohmann::json about = r->data.value("about", nlohmann::json());
  std::string text;
  for (const auto& [key, value] : settings.items()) {
    if (vm.count("key") && vm["key"].as<std::string>() != key) continue;
    text += fmt::format("{} = {}    # {}\n", key, value.dump(),
                        about.value(key, std::string()));
  }
  if (text.empty()) {
    return Fail(r, InvalidArgument(fmt::format("unknown setting '{}'",
                                               vm["key"].as<std::string>())));
  }
  text.pop_back();
  r->text = std::move(text);
  return 0;
}

int Set(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const std::string key = vm["key"].as<std::string>();
  const std::string value = vm["value"].as<std::string>();
  if (int err =
          CallDaemon(ctx, "config.set", {{"key", key}, {"value", value}}, r)) {
    return err;
  }
  r->text = fmt::format("{} = {}", key,
                        r->data.value("settings", nlohmann::json())
                            .value(key, nlohmann::json())
                            .dump());
  return 0;
}

Shell::Registrar get_action(
    {{"config", "get"}, "Show the cluster's settings", &GetGetArguments, &Get});
Shell::Registrar set_action(
    {{"config", "set"}, "Change a cluster setting", &GetSetArguments, &Set});

}  // namespace cvm::adm::config
