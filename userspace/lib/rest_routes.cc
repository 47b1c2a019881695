#include "rest_routes.h"

#include <algorithm>

#include "api_tokens.h"
#include "json_fields.h"

namespace cvm {

std::string RestPathOf(std::string_view op) {
  std::string path(kRestPrefix);
  path += op;
  std::replace(path.begin() + kRestPrefix.size(), path.end(), '.', '/');
  return path;
}

std::optional<std::string> RestOpOf(std::string_view path) {
  if (!path.starts_with(kRestPrefix)) return std::nullopt;
  std::string op(path.substr(kRestPrefix.size()));
  if (op.empty() || op.size() > 64) return std::nullopt;
  for (char& c : op) {
    if (c == '/') {
      c = '.';
    } else if (!((c >= 'a' && c <= 'z') || c == '_')) {
      return std::nullopt;
    }
  }
  return op;
}

std::string_view RestMethodOf(std::string_view op) {
  return ApiOpReadOnly(op) ? "GET" : "POST";
}

int HttpStatusOf(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
    case Code::kBadRequest:
      return 400;
    case Code::kPermissionDenied:
      return 403;
    case Code::kNotFound:
    case Code::kUnknownOp:
      return 404;
    case Code::kAlreadyExists:
    case Code::kInUse:
    case Code::kConflict:
      return 409;
    case Code::kNoSpace:
      return 507;
    case Code::kUnavailable:
      return 503;
    case Code::kTimeout:
      return 504;
    case Code::kCorruption:
    case Code::kIoError:
    case Code::kInternal:
      return 500;
  }
  return 500;
}

nlohmann::json RestQueryValue(const std::string& text) {
  // Scalars only: no op that reads takes an array or object, and nothing
  // nested reaches the parser.
  if (text.empty() || text.front() == '[' || text.front() == '{') return text;
  nlohmann::json v = nlohmann::json::parse(text, nullptr,
                                           /*allow_exceptions=*/false);
  if (v.is_discarded()) return text;
  return v;
}

std::string RestQueryText(const nlohmann::json& value) {
  return DumpJson(value);
}

}  // namespace cvm
