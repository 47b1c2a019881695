#pragma once

// Userspace client of the CVM wire protocol (include/uapi/linux/cvm_wire.h)
// over TCP: header encode/decode with the same validation as the kernel's
// transports, and a blocking connection that says HELLO and runs one
// request at a time. Used by cvm-wire (tests) and by cvmd's recovery agents.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"
#include "unique_fd.h"

namespace cvm::wire {

inline constexpr size_t kHeaderLen = 96;
inline constexpr size_t kHelloLen = 112;
inline constexpr size_t kStatLen = 32;
inline constexpr size_t kNonceLen = 32;
inline constexpr size_t kProofLen = 32;
inline constexpr size_t kKeyLen = 32;
using Key = std::array<uint8_t, kKeyLen>;

// Little-endian field access, as the wire wants it: @n bytes of @v at @p.
void PutLe(uint8_t* p, uint64_t v, int n);
uint64_t GetLe(const uint8_t* p, int n);

// Host-order view of struct cvm_wire_hdr.
struct Header {
  uint32_t magic = 0;
  uint8_t version = 0;
  uint8_t opcode = 0;
  uint16_t flags = 0;
  uint64_t tag = 0;
  uint64_t volume_id = 0;
  uint64_t object_no = 0;
  uint64_t offset = 0;
  uint64_t snap_seq = 0;
  uint64_t snap_id = 0;
  uint64_t map_epoch = 0;
  uint64_t attach_epoch = 0;
  uint32_t length = 0;
  uint16_t shard = 0;
  uint16_t status = 0;
  uint32_t data_crc = 0;
  uint32_t shard_version = 0;
  uint32_t reserved1 = 0;
  uint32_t hdr_crc = 0;

  bool operator==(const Header&) const = default;
};

using HeaderBytes = std::array<uint8_t, kHeaderLen>;

// CRC32C as the wire uses it (seed ~0, final xor ~0).
uint32_t Crc32c(std::span<const uint8_t> data);

// A request header with magic and version set.
Header MakeRequest(uint8_t opcode);

// Little-endian bytes of `h`. With `seal`, hdr_crc is computed; without, the
// given hdr_crc is kept (to build malformed headers on purpose).
HeaderBytes Encode(const Header& h, bool seal = true);
Header DecodeRaw(std::span<const uint8_t, kHeaderLen> bytes);

// The receiver's checks, in cvm_wire.h's order. nullopt if well-formed,
// else the reason.
std::optional<std::string> Check(const Header& h, bool is_reply);

// DecodeRaw + Check.
Result<Header> Decode(std::span<const uint8_t, kHeaderLen> bytes,
                      bool is_reply);

std::string_view OpName(uint8_t opcode);
std::string_view StatusName(uint16_t status);

struct Hello {
  uint64_t cluster_id = 0;
  uint64_t host_id = 0;
  uint32_t device_id = 0;
  // Version 2: limits asked for (0: the target's maximum) or granted.
  uint16_t max_inflight = 0;
  uint32_t max_data = 0;
  // Version 5: the challenge (HELLO: ours; reply: the target's).
  std::array<uint8_t, kNonceLen> nonce{};
  // Version 3: the reply's device instance (request: 0).
  uint64_t instance = 0;
  // Version 5: the generation of the host's secret, and a proof.
  uint32_t key_id = 0;
  std::array<uint8_t, kProofLen> proof{};
};

std::array<uint8_t, kHelloLen> EncodeHello(const Hello& h);
Hello DecodeHello(std::span<const uint8_t, kHelloLen> b);

// Authentication (cvm_wire.h): a host's key for a device, from its secret;
// a proof, HMAC(key, label || T) over `ids` (cluster, host, device, key
// id) and both challenges; a fresh non-zero challenge.
Key DeriveKey(const Key& secret, uint64_t cluster_id, uint64_t host_id,
              uint32_t device_id);
Key Proof(const Key& key, std::string_view label, const Hello& ids,
          const Key& host_nonce, const Key& target_nonce);
Key RandomNonce();

struct Reply {
  Header header;
  std::vector<uint8_t> data;
};

struct ObjectKey {
  uint64_t volume_id = 0;
  uint64_t object_no = 0;
  uint16_t shard = 0;
  // The attachment the request speaks for; 0 names none (tools: a fenced
  // volume may be read, never changed).
  uint64_t attach_epoch = 0;
};

// Who a connection speaks for: a host and its secret (cvm_wire.h,
// "Authentication").
struct Credentials {
  uint64_t cluster_id = 0;
  uint64_t host_id = 0;
  uint32_t key_id = 0;
  Key secret{};
};

class Client {
 public:
  // Connects to host:port (numeric or name), says HELLO with a fresh
  // challenge, checks the target's proof and sends AUTH with ours, made
  // with the device's key from the host's `secret`. A refusal is an error
  // naming the target's status (PermissionDenied for AUTH).
  static Result<Client> Connect(const std::string& host, uint16_t port,
                                const Hello& hello, const Key& secret,
                                int timeout_ms = 10000);
  // Connects without HELLO (fuzzing).
  static Result<Client> ConnectRaw(const std::string& host, uint16_t port,
                                   int timeout_ms = 10000);

  // Sends one request (tag, magic, version, data CRC and header CRC are
  // filled in) and waits for its reply, which is validated.
  Result<Reply> Call(Header req, std::span<const uint8_t> payload = {});

  Result<Reply> Read(const ObjectKey& k, uint64_t offset, uint32_t length);
  Result<Reply> Write(const ObjectKey& k, uint64_t offset,
                      std::span<const uint8_t> data, bool fua = false);
  // A resync's or backfill's copy: WRITE with CVM_WIRE_F_VERSIONED at
  // `version` (refused over a newer shard), FUA.
  Result<Reply> WriteVersioned(const ObjectKey& k, uint64_t offset,
                               std::span<const uint8_t> data, uint32_t version);
  Result<Reply> Remove(const ObjectKey& k, bool fua = false);
  Result<Reply> Stat(const ObjectKey& k);
  // BUMP, SET_VERSION (@version) or CLEAN of an object shard.
  Result<Reply> VersionOp(uint8_t op, const ObjectKey& k, uint32_t version = 0);
  Result<Reply> Flush();

  // Raw access for fuzzing.
  // Sends HELLO or AUTH with `payload` and returns the reply (its payload,
  // if any, in data), whatever its status.
  Result<Reply> Handshake(uint8_t op, const Hello& payload);
  Status SendAll(std::span<const uint8_t> bytes);
  // Reads exactly `n` bytes; Unavailable("closed") on EOF.
  Result<std::vector<uint8_t>> RecvExact(size_t n);
  // True if the peer closes the connection within `timeout_ms` without
  // sending anything; false if bytes arrive or the time runs out.
  bool WaitClosed(int timeout_ms);

 private:
  explicit Client(UniqueFd fd) : fd_(std::move(fd)) {}
  Status Hello_(const Hello& hello, const Key& secret);

  UniqueFd fd_;
  uint64_t next_tag_ = 1;
};

}  // namespace cvm::wire
