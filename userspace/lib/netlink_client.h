#pragma once

// Generic-netlink client for the kernel modules' families "cvm" (initiator)
// and "cvm_target" (storage node), per include/uapi/linux/cvm.h. Today it
// asks CVM_CMD_STATUS_GET; map and volume pushes come later on the same
// socket plumbing.

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "status.h"

struct nlmsghdr;

namespace cvm {

struct ModuleStatus {
  std::string family;
  bool loaded = false;  // false: the family is not registered (module absent)
  uint32_t role = 0;    // enum cvm_role
  std::string module_version;
  uint32_t genl_version = 0;
  uint32_t wire_version = 0;
  uint64_t map_epoch = 0;  // 0 = no map installed
  uint32_t objects = 0;    // volumes attached / devices served
};

nlohmann::json ToJson(const ModuleStatus& s);
// "initiator", "target" or "unknown".
std::string_view RoleName(uint32_t role);

// Asks `family` for its status. A missing family is not an error: the result
// has loaded == false. Errors are a failed socket, a refused request (not
// root) or a reply that breaks the contract.
Result<ModuleStatus> QueryModuleStatus(
    std::string_view family,
    std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Validates and decodes one CVM_CMD_STATUS_GET reply from `family`. Separate
// from the query so tests can feed it hand-built messages.
Result<ModuleStatus> ParseStatusReply(const nlmsghdr* nlh,
                                      std::string_view family);

}  // namespace cvm
