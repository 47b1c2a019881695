#pragma once

// Human renderings of the daemon's JSON records, shared by the verbs of one
// noun (list and show print the same fields the same way).

#include <nlohmann/json.hpp>
#include <string>

namespace cvm::adm {

std::string Str(const nlohmann::json& record, const char* key);
std::string SizeText(const nlohmann::json& record, const char* key);
std::string PolicyText(const nlohmann::json& policy);
std::string DeviceStateText(const nlohmann::json& device);
std::string LocationText(const nlohmann::json& host);
std::string TimeText(const nlohmann::json& record, const char* key);

}  // namespace cvm::adm
