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
  const nlohmann::json none = nlohmann::json::object();
  const auto member = [&](const char* name) -> const nlohmann::json& {
    return r->data.is_object() && r->data.contains(name) &&
                   r->data[name].is_object()
               ? r->data[name]
               : none;
  };
  const nlohmann::json& settings = member("settings");
  const nlohmann::json& about = member("about");
  const std::string only = vm.count("key") ? vm["key"].as<std::string>() : "";
  std::string text;
  for (const auto& [key, value] : settings.items()) {
    if (!only.empty() && only != key) continue;
    const auto what = about.find(key);
    text += fmt::format("{} = {}    # {}\n", key, value.dump(),
                        what != about.end() && what->is_string()
                            ? what->get<std::string>()
                            : std::string());
  }
  if (text.empty()) {
    return Fail(
        r, InvalidArgument(only.empty()
                               ? std::string("cvmd sent no settings")
                               : fmt::format("unknown setting '{}'", only)));
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
  const bool shown = r->data.is_object() && r->data.contains("settings") &&
                     r->data["settings"].is_object() &&
                     r->data["settings"].contains(key);
  r->text = fmt::format("{} = {}", key,
                        shown ? r->data["settings"][key].dump() : value);
  return 0;
}

Shell::Registrar get_action(
    {{"config", "get"}, "Show the cluster's settings", &GetGetArguments, &Get});
Shell::Registrar set_action(
    {{"config", "set"}, "Change a cluster setting", &GetSetArguments, &Set});

}  // namespace cvm::adm::config
