// cvmadm volume show <name> [--json]
#include "format.h"
#include "shell.h"

namespace cvm::adm::volume_show {

void GetArguments(po::options_description* positional,
                  po::options_description*) {
  positional->add_options()("name", po::value<std::string>()->required(),
                            "volume name");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  const std::string name = vm["name"].as<std::string>();
  if (int err = CallDaemon(ctx, "volume.get", {{"name", name}}, r)) return err;
  const auto& v = r->data;
  r->text = RenderFields(
      {{"name", Str(v, "name")},
       {"id", Str(v, "id")},
       {"pool", Str(v, "pool")},
       {"size", SizeText(v, "size") + " (" + Str(v, "size") + " bytes)"},
       {"object size", SizeText(v, "object_size")},
       {"stripe unit", SizeText(v, "stripe_unit")},
       {"provisioning", Str(v, "provisioning")},
       {"snapshot seq", Str(v, "snap_seq")},
       {"snapshots", Str(v, "snapshots")},
       {"created", TimeText(v, "created")}});
  return 0;
}

Shell::Registrar action(
    {{"volume", "show"}, "Show one volume", &GetArguments, &Execute});

}  // namespace cvm::adm::volume_show
