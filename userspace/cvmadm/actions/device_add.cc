// cvmadm device add <host> <path> --capacity SIZE [--weight W] [--class C]
#include <fmt/format.h>

#include <cmath>

#include "format.h"
#include "shell.h"

namespace cvm::adm::device_add {

void GetArguments(po::options_description* positional,
                  po::options_description* options) {
  positional->add_options()("host", po::value<std::string>()->required(),
                            "host the device is on")(
      "path", po::value<std::string>()->required(),
      "backing block device, e.g. /dev/nvme0n1");
  options->add_options()(
      "capacity", po::value<std::string>()->required()->value_name("SIZE"),
      "usable bytes, e.g. 1T, 800G")(
      "weight", po::value<double>()->default_value(1.0, "1")->value_name("W"),
      "relative share of data")(
      "class", po::value<std::string>()->default_value("nvme")->value_name("C"),
      "device class pools can select");
}

int Execute(const po::variables_map& vm, Context& ctx, CliResult* r) {
  auto capacity = SizeOption(vm, "capacity");
  if (!capacity.ok()) return Fail(r, capacity.status());
  const double weight = vm["weight"].as<double>();
  if (!std::isfinite(weight)) {
    return Fail(r, InvalidArgument(fmt::format(
                       "--weight {}: must be a finite number", weight)));
  }
  const nlohmann::json args = {{"host", vm["host"].as<std::string>()},
                               {"path", vm["path"].as<std::string>()},
                               {"capacity", *capacity},
                               {"weight", weight},
                               {"class", vm["class"].as<std::string>()}};
  if (int err = CallDaemon(ctx, "device.add", args, r)) return err;
  r->text = fmt::format("device {} added: {}:{} ({})", Str(r->data, "id"),
                        Str(r->data, "host"), Str(r->data, "path"),
                        SizeText(r->data, "capacity"));
  return 0;
}

Shell::Registrar action({{"device", "add"},
                         "Add a storage device to a host",
                         &GetArguments,
                         &Execute});

}  // namespace cvm::adm::device_add
