#pragma once

// How the API's ops appear over HTTPS (https_server.h): op "noun.verb" is
// /v1/noun/verb ("target.device.add" is /v1/target/device/add); an op that
// changes nothing (ApiOpReadOnly) is a GET taking its arguments in the
// query string, any other a POST taking them as a JSON object in the body.
// Every answer is the local API's envelope, {"ok": true, "data": ...} or
// {"ok": false, "error": {"code", "message"}}, with the HTTP status of its
// code (HttpStatusOf). userspace/lib/openapi.json describes each endpoint.

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "status.h"

namespace cvm {

inline constexpr std::string_view kRestPrefix = "/v1/";

std::string RestPathOf(std::string_view op);
// The op a path names, if it is one of the API's form (not whether it
// exists).
std::optional<std::string> RestOpOf(std::string_view path);
// "GET" or "POST".
std::string_view RestMethodOf(std::string_view op);
int HttpStatusOf(Code code);

// A query string's value: a JSON scalar when it parses as one (numbers,
// true, "quoted strings"), else the text itself, so ?name=vol1 works by
// hand and clients that send JSON values are never misread.
nlohmann::json RestQueryValue(const std::string& text);
// The query value a client sends for `value`: its JSON text.
std::string RestQueryText(const nlohmann::json& value);

}  // namespace cvm
