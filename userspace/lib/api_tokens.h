#pragma once

// Bearer tokens for the remote (HTTPS) API. `cvmadm token create --role
// admin|reader` makes one and prints it once: "cvmtok:ID:SECRET", ID 16 hex
// digits, SECRET 64. The store keeps only the SHA-256 of the secret with the
// token's id, name, role and expiry (api_tokens), so a reader of the store
// (etcd) cannot use a token it finds there; every cvmd of a cluster checks
// any token. Revoking deletes the record: the token is unknown from then on.
//
// Roles: an admin token may run every op; a reader token only the ops that
// change nothing (ApiOpReadOnly) and /metrics. The local socket is root's
// and runs every op.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "metadata_store.h"
#include "status.h"

namespace cvm {

enum class TokenRole { kReader, kAdmin };
std::string_view TokenRoleName(TokenRole role);
Result<TokenRole> ParseTokenRole(std::string_view name);

struct ApiToken {
  std::string id;  // 16 hex digits
  std::string name;
  TokenRole role = TokenRole::kReader;
  int64_t created = 0;  // unix seconds
  int64_t expires = 0;  // unix seconds; 0: never
  std::string secret_sha256;
};
nlohmann::json ToJson(const ApiToken& t);  // without the digest
std::string EncodeApiToken(const ApiToken& t);
Result<ApiToken> DecodeApiToken(std::string_view value);

// Whether `op` changes nothing: a reader token may run it.
bool ApiOpReadOnly(std::string_view op);

class TokenAuthority {
 public:
  explicit TokenAuthority(MetadataStore& store) : store_(store) {}

  // A new token; returns its record and the text to give the user (shown
  // once: only its digest is kept). `ttl_seconds` 0: never expires.
  struct Created {
    ApiToken record;
    std::string token;
  };
  Result<Created> Create(TokenRole role, std::string_view name,
                         int64_t ttl_seconds, int64_t now);
  Result<std::vector<ApiToken>> List();
  Status Revoke(std::string_view id);

  // The token behind an "Authorization: Bearer ..." value, if it is known,
  // matches and has not expired at `now`; kPermissionDenied with why not.
  Result<ApiToken> Verify(std::string_view token, int64_t now);

 private:
  MetadataStore& store_;
};

}  // namespace cvm
