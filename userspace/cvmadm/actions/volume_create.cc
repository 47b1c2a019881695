// cvmadm volume create <name> --pool P --size SIZE [--object-size SIZE]
//                             [--stripe-unit SIZE] [--provisioning thin|thick]
#include <fmt/format.h>

#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_create {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
  options->add_options()(
      "pool", po::value<std::string>()->required()->value_name("NAME"),
      "pool to create the volume in")(
      "size", po::value<std::string>()->required()->value_name("SIZE"),
      "volume size, e.g. 10G, 512M (a multiple of 512 bytes)")(
      "object-size",
      po::value<std::string>()->default_value("4M")->value_name("SIZE"),
      "object size, a power of two from 64K to 64M")(
      "stripe-unit", po::value<std::string>()->value_name("SIZE"),
      "stripe unit of an erasure-coded pool (default 4K; replicated "
      "pools: the object size)")(
      "provisioning",
      po::value<std::string>()->default_value("thin")->value_name("P"),
      "thin or thick");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto size = SizeOption(vm, "size");
  if (!size.ok()) return Fail(r, size.status());
  auto object_size = SizeOption(vm, "object-size");
  if (!object_size.ok()) return Fail(r, object_size.status());
  nlohmann::json args = {
      {"name", vm["name"].as<std::string>()},
      {"pool", vm["pool"].as<std::string>()},
      {"size", *size},
      {"object_size", *object_size},
      {"provisioning", vm["provisioning"].as<std::string>()}};
  if (vm.count("stripe-unit")) {
    auto stripe_unit = SizeOption(vm, "stripe-unit");
    if (!stripe_unit.ok()) return Fail(r, stripe_unit.status());
    args["stripe_unit"] = *stripe_unit;
  }
  if (int err = CallDaemon(ctx, "volume.create", args, r)) return err;
  r->text = fmt::format("volume '{}' created (id {}, {} in pool '{}')",
                        Str(r->data, "name"), Str(r->data, "id"),
                        SizeText(r->data, "size"), Str(r->data, "pool"));
  return 0;
}

Shell::Registrar action(
    {{"volume", "create"}, "Create a volume", &GetArguments, &Execute});

}  // namespace cvm::adm::volume_create
