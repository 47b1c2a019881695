#pragma once

// Human renderings of the daemon's JSON records, shared by the verbs of one
// noun (list and show print the same fields the same way).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace cvm::adm {

std::string Str(const nlohmann::json& record, const char* key);
std::string SizeText(const nlohmann::json& record, const char* key);
std::string PolicyText(const nlohmann::json& policy);
std::string DeviceStateText(const nlohmann::json& device);
std::string LocationText(const nlohmann::json& host);
std::string TimeText(const nlohmann::json& record, const char* key);
// A device's "path_state" (cvmd's record of cvm.ko's path events) at unix time
// `now`: "up", "down 12s, 7 stale", or "-" when never reported.
std::string PathText(const nlohmann::json& path, int64_t now);
// One line of a recovery.status answer: "idle", or what moves, how fast
// and for how long still.
std::string RecoveryLine(const nlohmann::json& recovery);

}  // namespace cvm::adm
