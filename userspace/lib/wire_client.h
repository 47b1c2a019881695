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
inline constexpr size_t kHelloLen = 72;
inline constexpr size_t kStatLen = 32;
inline constexpr size_t kTokenLen = 32;

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
  std::array<uint8_t, kTokenLen> token{};
  // Version 3: the reply's device instance (request: 0).
  uint64_t instance = 0;
};

std::array<uint8_t, kHelloLen> EncodeHello(const Hello& h);
Hello DecodeHello(std::span<const uint8_t, kHelloLen> b);

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

class Client {
 public:
  // Connects to host:port (numeric or name) and says HELLO. A refused HELLO
  // is an error naming the target's status.
  static Result<Client> Connect(const std::string& host, uint16_t port,
                                const Hello& hello, int timeout_ms = 10000);
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
  Status SendAll(std::span<const uint8_t> bytes);
  // Reads exactly `n` bytes; Unavailable("closed") on EOF.
  Result<std::vector<uint8_t>> RecvExact(size_t n);
  // True if the peer closes the connection within `timeout_ms` without
  // sending anything; false if bytes arrive or the time runs out.
  bool WaitClosed(int timeout_ms);

 private:
  explicit Client(UniqueFd fd) : fd_(std::move(fd)) {}
  Status Hello_(const Hello& hello);

  UniqueFd fd_;
  uint64_t next_tag_ = 1;
};

}  // namespace cvm::wire
