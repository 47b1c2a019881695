// cvmadm host add <name> --address ADDR [--address ADDR...] [--transport
// tcp|rdma]
//                        [--row ROW] [--rack RACK]
#include <fmt/format.h>

#include "shell.h"

namespace cvm::adm::host_add {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "host name");
  options->add_options()(
      "address",
      po::value<std::vector<std::string>>()->required()->value_name("ADDR"),
      "storage address, host:port (repeat for several)")(
      "transport",
      po::value<std::string>()->default_value("tcp")->value_name("T"),
      "tcp or rdma")("row", po::value<std::string>()->default_value(""),
                     "failure-domain row")(
      "rack", po::value<std::string>()->default_value(""),
      "failure-domain rack");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const nlohmann::json args = {
      {"name", vm["name"].as<std::string>()},
      {"addresses", vm["address"].as<std::vector<std::string>>()},
      {"transport", vm["transport"].as<std::string>()},
      {"row", vm["row"].as<std::string>()},
      {"rack", vm["rack"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "host.add", args, r)) return err;
  const std::string name = r->data.value("name", "");
  r->text =
      fmt::format("host '{}' added (id {})", name, r->data.value("id", 0));
  // In a cluster the new host's cvmd joins with a one-time token.
  if (r->data.contains("join_token")) {
    r->text += fmt::format(
        "\non host '{}', with its cvmd running (--host {}), join it with:\n"
        "  cvmadm join {}",
        name, name, r->data.value("join_token", ""));
  } else if (r->data.value("joined", false)) {
    r->text += "; this node joined as it";
  }
  return 0;
}

Shell::Registrar action(
    {{"host", "add"}, "Add a storage host", &GetArguments, &Execute});

}  // namespace cvm::adm::host_add
