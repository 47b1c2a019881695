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
  r->text = fmt::format("host '{}' added (id {})", r->data.value("name", ""),
                        r->data.value("id", 0));
  return 0;
}

Shell::Registrar action(
    {{"host", "add"}, "Add a storage host", &GetArguments, &Execute});

}  // namespace cvm::adm::host_add
