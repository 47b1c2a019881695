// cvmadm volume list [--pool P] [--json]
#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_list {

void GetArguments(po::options_description*, po::options_description* options) {
  options->add_options()("pool", po::value<std::string>()->value_name("NAME"),
                         "only this pool's volumes");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  nlohmann::json args = nlohmann::json::object();
  if (vm.count("pool")) args["pool"] = vm["pool"].as<std::string>();
  if (int err = CallDaemon(ctx, "volume.list", args, r)) return err;
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : r->data) {
    rows.push_back({Str(v, "id"), Str(v, "name"), Str(v, "pool"),
                    SizeText(v, "size"), SizeText(v, "object_size"),
                    Str(v, "provisioning")});
  }
  r->text = RenderTable(
      {"ID", "NAME", "POOL", "SIZE", "OBJECT", "PROVISIONING"}, rows);
  return 0;
}

Shell::Registrar action(
    {{"volume", "list"}, "List volumes", &GetArguments, &Execute});

}  // namespace cvm::adm::volume_list
