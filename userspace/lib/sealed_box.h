#pragma once

// Sealing a secret from one node to another through the store, so that a
// reader of etcd (any other cvmd) learns nothing of it: X25519 between the
// sender's and the recipient's static keys, HKDF-SHA256 over the shared
// secret with both public keys (sender first) in its info, AES-256-GCM
// with the caller's associated data (what the box is for, so a box cannot
// be moved to another row). Either party can open it: the sender to see
// whether its row is current, the recipient to use it. Each node's X25519
// private key lives in its host secret file (host_keys.h); the public keys
// are in the store (seal_keys).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "status.h"
#include "wire_client.h"

namespace cvm {

using SealPublic = std::array<uint8_t, 32>;

Result<SealPublic> SealPublicKey(const wire::Key& private_key);

// A box from `my_private` to `recipient`: nonce (12) || ciphertext || tag
// (16).
Result<std::string> Seal(const wire::Key& my_private,
                         const SealPublic& recipient, std::string_view aad,
                         std::string_view plaintext);

// Opens a box between `sender` and `recipient`, one of which is
// `my_private`'s public key; kPermissionDenied when it was not sealed
// between them (or was altered, or `aad` differs).
Result<std::string> Open(const wire::Key& my_private, const SealPublic& sender,
                         const SealPublic& recipient, std::string_view aad,
                         std::string_view box);

}  // namespace cvm
