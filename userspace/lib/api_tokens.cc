#include "api_tokens.h"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <array>

#include "hex.h"
#include "json_fields.h"
#include "node_identity.h"

namespace cvm {
namespace {

using json = nlohmann::json;

constexpr std::string_view kTokenPrefix = "cvmtok:";
constexpr size_t kIdDigits = 16;
constexpr size_t kSecretDigits = 64;
constexpr size_t kMaxNameBytes = 128;

// The ops a reader token may run: they read the store, the kernel or the
// cluster's presence and change nothing. Everything else needs admin.
constexpr std::array<std::string_view, 19> kReadOnlyOps = {
    "cluster.df",  "config.get", "device.get",      "device.list",
    "metrics",     "host.get",   "host.list",       "map.epoch",
    "map.history", "map.show",   "map.wait",        "ops",
    "pool.get",    "pool.list",  "recovery.status", "snapshot.list",
    "status",      "volume.get", "volume.list",
};

}  // namespace

std::string_view TokenRoleName(TokenRole role) {
  return role == TokenRole::kAdmin ? "admin" : "reader";
}

Result<TokenRole> ParseTokenRole(std::string_view name) {
  if (name == "admin") return TokenRole::kAdmin;
  if (name == "reader") return TokenRole::kReader;
  return InvalidArgument(
      fmt::format("role '{}' is not one of admin, reader", name));
}

bool ApiOpReadOnly(std::string_view op) {
  return std::find(kReadOnlyOps.begin(), kReadOnlyOps.end(), op) !=
         kReadOnlyOps.end();
}

json ToJson(const ApiToken& t) {
  return {{"id", t.id},
          {"name", t.name},
          {"role", TokenRoleName(t.role)},
          {"created", t.created},
          {"expires", t.expires}};
}

std::string EncodeApiToken(const ApiToken& t) {
  json j = ToJson(t);
  j["secret_sha256"] = t.secret_sha256;
  return j.dump();
}

Result<ApiToken> DecodeApiToken(std::string_view value) {
  json j = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Corruption("api token record is not JSON");
  JsonFields f(j, "api token field", Code::kCorruption);
  f.Expect({"id", "name", "role", "created", "expires", "secret_sha256"});
  ApiToken t;
  t.id = f.String("id");
  t.name = f.String("name");
  const std::string role = f.String("role");
  t.created = f.I64("created");
  t.expires = f.I64("expires");
  t.secret_sha256 = f.String("secret_sha256");
  if (!f.ok()) return f.status();
  auto parsed = ParseTokenRole(role);
  if (!parsed.ok()) return Corruption(parsed.status().message());
  t.role = *parsed;
  if (!IsLowerHex(t.id, kIdDigits) || !IsLowerHex(t.secret_sha256, 64))
    return Corruption(fmt::format("api token record '{}' is malformed", t.id));
  return t;
}

Result<TokenAuthority::Created> TokenAuthority::Create(TokenRole role,
                                                       std::string_view name,
                                                       int64_t ttl_seconds,
                                                       int64_t now) {
  if (name.size() > kMaxNameBytes ||
      std::any_of(name.begin(), name.end(),
                  [](unsigned char c) { return c < 0x20 || c == 0x7f; })) {
    return InvalidArgument(fmt::format(
        "token name must be at most {} printable bytes", kMaxNameBytes));
  }
  if (ttl_seconds < 0 || ttl_seconds > 10LL * 366 * 86400)
    return InvalidArgument(
        "token lifetime must be 0 (never expires) to 10 years");
  CVM_ASSIGN_OR_RETURN(std::string id_source, RandomSecret());
  CVM_ASSIGN_OR_RETURN(std::string secret, RandomSecret());
  Created c;
  c.record.id = id_source.substr(0, kIdDigits);
  c.record.name = std::string(name);
  c.record.role = role;
  c.record.created = now;
  c.record.expires = ttl_seconds == 0 ? 0 : now + ttl_seconds;
  c.record.secret_sha256 = Sha256Hex(secret);
  CVM_RETURN_IF_ERROR(
      store_.CreateApiToken(c.record.id, EncodeApiToken(c.record)));
  c.token = fmt::format("{}{}:{}", kTokenPrefix, c.record.id, secret);
  return c;
}

Result<std::vector<ApiToken>> TokenAuthority::List() {
  CVM_ASSIGN_OR_RETURN(auto raw, store_.ListApiTokens());
  std::vector<ApiToken> tokens;
  for (const std::string& value : raw) {
    auto t = DecodeApiToken(value);
    if (!t.ok()) return t.status();
    tokens.push_back(std::move(*t));
  }
  std::sort(
      tokens.begin(), tokens.end(), [](const ApiToken& a, const ApiToken& b) {
        return a.created != b.created ? a.created < b.created : a.id < b.id;
      });
  return tokens;
}

Status TokenAuthority::Revoke(std::string_view id) {
  if (!IsLowerHex(id, kIdDigits))
    return InvalidArgument(
        fmt::format("token id '{}' is not {} hex digits", id, kIdDigits));
  return store_.DeleteApiToken(id);
}

Result<ApiToken> TokenAuthority::Verify(std::string_view token, int64_t now) {
  // One answer for every refusal but expiry: an outsider learns nothing of
  // which ids exist.
  const Status refused = PermissionDenied(
      "unknown or revoked token (give 'Authorization: Bearer "
      "cvmtok:ID:SECRET')");
  if (!token.starts_with(kTokenPrefix)) return refused;
  token.remove_prefix(kTokenPrefix.size());
  const std::string_view id = token.substr(0, token.find(':'));
  if (id.size() == token.size()) return refused;
  const std::string_view secret = token.substr(id.size() + 1);
  if (!IsLowerHex(id, kIdDigits) || !IsLowerHex(secret, kSecretDigits))
    return refused;
  CVM_ASSIGN_OR_RETURN(auto raw, store_.GetApiToken(id));
  if (!raw) return refused;
  CVM_ASSIGN_OR_RETURN(ApiToken t, DecodeApiToken(*raw));
  const std::string digest = Sha256Hex(secret);
  if (digest.size() != t.secret_sha256.size() ||
      CRYPTO_memcmp(digest.data(), t.secret_sha256.data(), digest.size()) != 0)
    return refused;
  if (t.expires != 0 && now >= t.expires)
    return PermissionDenied(fmt::format("token {} expired", t.id));
  return t;
}

}  // namespace cvm
