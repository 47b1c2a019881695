#include "wire_client.h"

#include <fmt/core.h>
#include <linux/cvm_wire.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "hash.h"

namespace cvm::wire {

void PutLe(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t GetLe(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

namespace {

bool Ranged(uint8_t op) {
  return op == CVM_WIRE_OP_READ || op == CVM_WIRE_OP_WRITE ||
         op == CVM_WIRE_OP_WRITE_ZEROES || op == CVM_WIRE_OP_DISCARD ||
         op == CVM_WIRE_OP_PREALLOC;
}

uint16_t RequestFlags(uint8_t op) {
  switch (op) {
    case CVM_WIRE_OP_HELLO:
      return CVM_WIRE_F_DATA_CRC;
    case CVM_WIRE_OP_WRITE:
      return CVM_WIRE_F_DATA_CRC | CVM_WIRE_F_FUA | CVM_WIRE_F_VERSIONED;
    case CVM_WIRE_OP_LIST:
      return CVM_WIRE_F_INTENT;
    case CVM_WIRE_OP_WRITE_ZEROES:
      return CVM_WIRE_F_FUA | CVM_WIRE_F_NOUNMAP;
    case CVM_WIRE_OP_DISCARD:
    case CVM_WIRE_OP_REMOVE:
    case CVM_WIRE_OP_ROLLBACK:
    case CVM_WIRE_OP_PREALLOC:
      return CVM_WIRE_F_FUA;
    default:
      return 0;
  }
}

// May @shard_version be non-zero in this message?
bool HasShardVersion(const Header& h, bool is_reply) {
  switch (h.opcode) {
    case CVM_WIRE_OP_WRITE:
      return !is_reply && (h.flags & CVM_WIRE_F_VERSIONED);
    case CVM_WIRE_OP_SET_VERSION:
      return true;
    case CVM_WIRE_OP_BUMP:
      return is_reply;
    default:
      return false;
  }
}

uint32_t PayloadLen(const Header& h) {
  if (h.flags & CVM_WIRE_F_REPLY) return h.length;
  if (h.opcode == CVM_WIRE_OP_HELLO || h.opcode == CVM_WIRE_OP_AUTH ||
      h.opcode == CVM_WIRE_OP_WRITE)
    return h.length;
  return 0;
}

std::optional<std::string> CheckRequestLength(uint8_t op, uint32_t len) {
  switch (op) {
    case CVM_WIRE_OP_HELLO:
    case CVM_WIRE_OP_AUTH:
      if (len != kHelloLen)
        return "HELLO or AUTH length is not the hello payload size";
      return std::nullopt;
    case CVM_WIRE_OP_READ:
    case CVM_WIRE_OP_WRITE:
      if (len == 0 || len > CVM_WIRE_MAX_DATA_LEN)
        return "length is zero or above CVM_WIRE_MAX_DATA_LEN";
      return std::nullopt;
    case CVM_WIRE_OP_WRITE_ZEROES:
    case CVM_WIRE_OP_DISCARD:
    case CVM_WIRE_OP_PREALLOC:
      if (len == 0) return "length is zero";
      return std::nullopt;
    case CVM_WIRE_OP_LIST:
      if (len == 0 || len > CVM_WIRE_MAX_DATA_LEN ||
          len % sizeof(cvm_wire_list_ent))
        return "LIST length is not a valid entry array size";
      return std::nullopt;
    default:
      if (len) return "length must be zero for this opcode";
      return std::nullopt;
  }
}

Status Errno(std::string_view what) {
  return IoError(fmt::format("{}: {}", what, std::strerror(errno)));
}

}  // namespace

uint32_t Crc32c(std::span<const uint8_t> data) {
  return cvm_crc32c(~0U, data.data(), data.size()) ^ ~0U;
}

Header MakeRequest(uint8_t opcode) {
  Header h;
  h.magic = CVM_WIRE_MAGIC;
  h.version = CVM_WIRE_VERSION;
  h.opcode = opcode;
  return h;
}

HeaderBytes Encode(const Header& h, bool seal) {
  HeaderBytes b{};
  uint8_t* p = b.data();
  PutLe(p + 0, h.magic, 4);
  p[4] = h.version;
  p[5] = h.opcode;
  PutLe(p + 6, h.flags, 2);
  PutLe(p + 8, h.tag, 8);
  PutLe(p + 16, h.volume_id, 8);
  PutLe(p + 24, h.object_no, 8);
  PutLe(p + 32, h.offset, 8);
  PutLe(p + 40, h.snap_seq, 8);
  PutLe(p + 48, h.snap_id, 8);
  PutLe(p + 56, h.map_epoch, 8);
  PutLe(p + 64, h.attach_epoch, 8);
  PutLe(p + 72, h.length, 4);
  PutLe(p + 76, h.shard, 2);
  PutLe(p + 78, h.status, 2);
  PutLe(p + 80, h.data_crc, 4);
  PutLe(p + 84, h.shard_version, 4);
  PutLe(p + 88, h.reserved1, 4);
  uint32_t crc = seal ? Crc32c(std::span(b.data(), kHeaderLen - 4)) : h.hdr_crc;
  PutLe(p + 92, crc, 4);
  return b;
}

Header DecodeRaw(std::span<const uint8_t, kHeaderLen> b) {
  const uint8_t* p = b.data();
  Header h;
  h.magic = GetLe(p, 4);
  h.version = p[4];
  h.opcode = p[5];
  h.flags = GetLe(p + 6, 2);
  h.tag = GetLe(p + 8, 8);
  h.volume_id = GetLe(p + 16, 8);
  h.object_no = GetLe(p + 24, 8);
  h.offset = GetLe(p + 32, 8);
  h.snap_seq = GetLe(p + 40, 8);
  h.snap_id = GetLe(p + 48, 8);
  h.map_epoch = GetLe(p + 56, 8);
  h.attach_epoch = GetLe(p + 64, 8);
  h.length = GetLe(p + 72, 4);
  h.shard = GetLe(p + 76, 2);
  h.status = GetLe(p + 78, 2);
  h.data_crc = GetLe(p + 80, 4);
  h.shard_version = GetLe(p + 84, 4);
  h.reserved1 = GetLe(p + 88, 4);
  h.hdr_crc = GetLe(p + 92, 4);
  return h;
}

std::optional<std::string> Check(const Header& h, bool is_reply) {
  if (h.magic != CVM_WIRE_MAGIC) return "bad magic";
  if (h.version != CVM_WIRE_VERSION) return "bad version";
  HeaderBytes b = Encode(h, true);
  if (DecodeRaw(b).hdr_crc != h.hdr_crc) return "header CRC mismatch";
  if (h.opcode < 1 || h.opcode > CVM_WIRE_OP_MAX) return "unknown opcode";
  if (h.flags & ~CVM_WIRE_F_ALL) return "unknown flag bits";
  if (((h.flags & CVM_WIRE_F_REPLY) != 0) != is_reply)
    return is_reply ? "request where a reply was expected"
                    : "reply flag set on a request";
  uint16_t allowed = is_reply ? (CVM_WIRE_F_REPLY | CVM_WIRE_F_DATA_CRC)
                              : RequestFlags(h.opcode);
  if (h.flags & ~allowed) return "flag not allowed for this opcode";
  if (h.reserved1) return "reserved field is not zero";
  if (h.shard_version && !HasShardVersion(h, is_reply))
    return "shard_version is not zero for this opcode";
  if (!is_reply && h.status) return "status is not zero in a request";
  if (is_reply && h.status > CVM_WIRE_STATUS_MAX) return "unknown status";
  if (is_reply) {
    if (h.length > CVM_WIRE_MAX_DATA_LEN)
      return "reply length above CVM_WIRE_MAX_DATA_LEN";
  } else if (auto why = CheckRequestLength(h.opcode, h.length)) {
    return why;
  }
  if (!PayloadLen(h) && (h.flags & CVM_WIRE_F_DATA_CRC))
    return "data CRC flag on a message without payload";
  if (!(h.flags & CVM_WIRE_F_DATA_CRC) && h.data_crc)
    return "data_crc is not zero without the data CRC flag";
  if (h.shard >= CVM_WIRE_MAX_SHARDS) return "shard out of range";
  if (Ranged(h.opcode)) {
    if (h.offset % CVM_WIRE_SECTOR_SIZE ||
        (!is_reply && h.length % CVM_WIRE_SECTOR_SIZE))
      return "offset or length not sector aligned";
    if (h.offset > CVM_WIRE_MAX_OBJECT_SIZE ||
        (!is_reply && h.offset + h.length > CVM_WIRE_MAX_OBJECT_SIZE))
      return "range beyond CVM_WIRE_MAX_OBJECT_SIZE";
  } else if (h.offset) {
    return "offset must be zero for this opcode";
  }
  if (is_reply) return std::nullopt;
  bool seq = h.opcode == CVM_WIRE_OP_WRITE ||
             h.opcode == CVM_WIRE_OP_WRITE_ZEROES ||
             h.opcode == CVM_WIRE_OP_DISCARD ||
             h.opcode == CVM_WIRE_OP_REMOVE || h.opcode == CVM_WIRE_OP_PREALLOC;
  if (!seq && h.snap_seq) return "snap_seq must be zero for this opcode";
  bool id = h.opcode == CVM_WIRE_OP_READ || h.opcode == CVM_WIRE_OP_ROLLBACK;
  if (!id && h.snap_id) return "snap_id must be zero for this opcode";
  if ((h.opcode == CVM_WIRE_OP_HELLO || h.opcode == CVM_WIRE_OP_AUTH) &&
      (h.volume_id || h.object_no || h.shard || h.map_epoch || h.attach_epoch))
    return "HELLO or AUTH with nonzero object or epoch fields";
  if (h.opcode == CVM_WIRE_OP_FLUSH && (h.volume_id || h.object_no || h.shard))
    return "FLUSH with nonzero object fields";
  return std::nullopt;
}

Result<Header> Decode(std::span<const uint8_t, kHeaderLen> bytes,
                      bool is_reply) {
  Header h = DecodeRaw(bytes);
  if (auto why = Check(h, is_reply))
    return Corruption(fmt::format("malformed header: {}", *why));
  return h;
}

std::string_view OpName(uint8_t op) {
  static constexpr std::string_view kNames[] = {
      "?",     "HELLO",       "READ",  "WRITE", "WRITE_ZEROES", "DISCARD",
      "FLUSH", "REMOVE",      "LIST",  "STAT",  "ROLLBACK",     "PREALLOC",
      "BUMP",  "SET_VERSION", "CLEAN", "AUTH"};
  static_assert(std::size(kNames) == CVM_WIRE_OP_MAX + 1);
  return op <= CVM_WIRE_OP_MAX ? kNames[op] : "?";
}

std::string_view StatusName(uint16_t status) {
  static constexpr std::string_view kNames[] = {
      "OK",           "INVALID",   "NOT_FOUND",     "VERSION",  "AUTH",
      "STALE_ATTACH", "STALE_MAP", "NO_SPACE",      "IO_ERROR", "DATA_CRC",
      "UNSUPPORTED",  "BUSY",      "STALE_VERSION", "DENIED"};
  static_assert(std::size(kNames) == CVM_WIRE_STATUS_MAX + 1);
  return status <= CVM_WIRE_STATUS_MAX ? kNames[status] : "?";
}

std::array<uint8_t, kHelloLen> EncodeHello(const Hello& h) {
  std::array<uint8_t, kHelloLen> b{};
  PutLe(b.data(), h.cluster_id, 8);
  PutLe(b.data() + 8, h.host_id, 8);
  PutLe(b.data() + 20, h.device_id, 4);
  PutLe(b.data() + 24, h.max_inflight, 2);
  PutLe(b.data() + 28, h.max_data, 4);
  std::memcpy(b.data() + 32, h.nonce.data(), kNonceLen);
  PutLe(b.data() + 64, h.instance, 8);
  PutLe(b.data() + 72, h.key_id, 4);
  std::memcpy(b.data() + 80, h.proof.data(), kProofLen);
  return b;
}

Hello DecodeHello(std::span<const uint8_t, kHelloLen> b) {
  Hello h;
  h.cluster_id = GetLe(b.data(), 8);
  h.host_id = GetLe(b.data() + 8, 8);
  h.device_id = GetLe(b.data() + 20, 4);
  h.max_inflight = GetLe(b.data() + 24, 2);
  h.max_data = GetLe(b.data() + 28, 4);
  std::memcpy(h.nonce.data(), b.data() + 32, kNonceLen);
  h.instance = GetLe(b.data() + 64, 8);
  h.key_id = GetLe(b.data() + 72, 4);
  std::memcpy(h.proof.data(), b.data() + 80, kProofLen);
  return h;
}

namespace {

// OpenSSL failing here is out of memory: no key or proof is made up.
Key Hmac(const Key& key, std::span<const std::span<const uint8_t>> parts) {
  Key out{};
  HMAC_CTX* ctx = HMAC_CTX_new();
  unsigned int len = 0;
  bool ok =
      ctx && HMAC_Init_ex(ctx, key.data(), key.size(), EVP_sha256(), nullptr);
  for (auto p : parts) ok = ok && HMAC_Update(ctx, p.data(), p.size());
  ok = ok && HMAC_Final(ctx, out.data(), &len) && len == out.size();
  HMAC_CTX_free(ctx);
  if (!ok) throw std::bad_alloc();
  return out;
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

Key DeriveKey(const Key& secret, uint64_t cluster_id, uint64_t host_id,
              uint32_t device_id) {
  uint8_t ids[20];
  PutLe(ids, cluster_id, 8);
  PutLe(ids + 8, host_id, 8);
  PutLe(ids + 16, device_id, 4);
  const std::span<const uint8_t> parts[] = {Bytes("cvm-host-key"), ids};
  return Hmac(secret, parts);
}

Key Proof(const Key& key, std::string_view label, const Hello& ids,
          const Key& host_nonce, const Key& target_nonce) {
  uint8_t t[24];
  PutLe(t, ids.cluster_id, 8);
  PutLe(t + 8, ids.host_id, 8);
  PutLe(t + 16, ids.device_id, 4);
  PutLe(t + 20, ids.key_id, 4);
  const std::span<const uint8_t> parts[] = {Bytes(label), t, host_nonce,
                                            target_nonce};
  return Hmac(key, parts);
}

Key RandomNonce() {
  Key n{};
  while (std::all_of(n.begin(), n.end(), [](uint8_t b) { return !b; })) {
    if (RAND_bytes(n.data(), n.size()) != 1) throw std::bad_alloc();
  }
  return n;
}

Result<Client> Client::ConnectRaw(const std::string& host, uint16_t port,
                                  int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc)
    return InvalidArgument(
        fmt::format("cannot resolve {}: {}", host, gai_strerror(rc)));
  Status last = Unavailable("no address");
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                         ai->ai_protocol));
    if (!fd.valid()) {
      last = Errno("socket");
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      freeaddrinfo(res);
      return Client(std::move(fd));
    }
    last = Unavailable(
        fmt::format("connect to {}:{}: {}", host, port, std::strerror(errno)));
  }
  freeaddrinfo(res);
  return last;
}

Result<Client> Client::Connect(const std::string& host, uint16_t port,
                               const Hello& hello, const Key& secret,
                               int timeout_ms) {
  CVM_ASSIGN_OR_RETURN(Client c, ConnectRaw(host, port, timeout_ms));
  CVM_RETURN_IF_ERROR(c.Hello_(hello, secret));
  return c;
}

Result<Reply> Client::Handshake(uint8_t op, const Hello& payload) {
  Header h = MakeRequest(op);
  h.length = kHelloLen;
  HeaderBytes hb = Encode(h);
  CVM_RETURN_IF_ERROR(SendAll(hb));
  CVM_RETURN_IF_ERROR(SendAll(EncodeHello(payload)));
  CVM_ASSIGN_OR_RETURN(auto rb, RecvExact(kHeaderLen));
  Reply r;
  CVM_ASSIGN_OR_RETURN(r.header, Decode(std::span<const uint8_t, kHeaderLen>(
                                            rb.data(), kHeaderLen),
                                        true));
  if (r.header.opcode != op)
    return Corruption(fmt::format("reply to {} is a {}", OpName(op),
                                  OpName(r.header.opcode)));
  if (r.header.length) {
    if (r.header.length != kHelloLen)
      return Corruption(fmt::format("{} reply length", OpName(op)));
    CVM_ASSIGN_OR_RETURN(r.data, RecvExact(r.header.length));
  }
  return r;
}

static Status Refused(std::string_view what, uint16_t status) {
  return Status(status == CVM_WIRE_STATUS_NOT_FOUND ? Code::kNotFound
                : status == CVM_WIRE_STATUS_AUTH    ? Code::kPermissionDenied
                                                    : Code::kUnavailable,
                fmt::format("{} refused: {}", what, StatusName(status)));
}

Status Client::Hello_(const Hello& hello, const Key& secret) {
  Hello asked = hello;
  asked.nonce = RandomNonce();
  asked.proof = {};
  const Key key =
      DeriveKey(secret, asked.cluster_id, asked.host_id, asked.device_id);
  CVM_ASSIGN_OR_RETURN(Reply r, Handshake(CVM_WIRE_OP_HELLO, asked));
  if (r.header.status != CVM_WIRE_STATUS_OK)
    return Refused("HELLO", r.header.status);
  if (r.data.size() != kHelloLen) return Corruption("HELLO reply length");
  Hello got = DecodeHello(
      std::span<const uint8_t, kHelloLen>(r.data.data(), kHelloLen));
  // The target proves it holds our key before we prove anything.
  const Key want = Proof(key, "cvm-target", asked, asked.nonce, got.nonce);
  if (CRYPTO_memcmp(want.data(), got.proof.data(), want.size()))
    return PermissionDenied(
        "the target failed to prove it holds this host's key");
  Hello auth;
  auth.proof = Proof(key, "cvm-host", asked, asked.nonce, got.nonce);
  CVM_ASSIGN_OR_RETURN(r, Handshake(CVM_WIRE_OP_AUTH, auth));
  if (r.header.status != CVM_WIRE_STATUS_OK)
    return Refused("AUTH", r.header.status);
  return Status::Ok();
}

Status Client::SendAll(std::span<const uint8_t> bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n =
        ::send(fd_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("send");
    }
    off += n;
  }
  return Status::Ok();
}

Result<std::vector<uint8_t>> Client::RecvExact(size_t n) {
  std::vector<uint8_t> buf(n);
  size_t off = 0;
  while (off < n) {
    ssize_t r = ::recv(fd_.get(), buf.data() + off, n - off, 0);
    if (r == 0) return Unavailable("connection closed by the target");
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return Status(Code::kTimeout, "no reply in time");
      return Errno("recv");
    }
    off += r;
  }
  return buf;
}

bool Client::WaitClosed(int timeout_ms) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return false;
  uint8_t b;
  ssize_t r = ::recv(fd_.get(), &b, 1, MSG_DONTWAIT);
  return r == 0 || (r < 0 && errno == ECONNRESET);
}

Result<Reply> Client::Call(Header req, std::span<const uint8_t> payload) {
  req.magic = CVM_WIRE_MAGIC;
  req.version = CVM_WIRE_VERSION;
  req.tag = next_tag_++;
  if (!payload.empty()) {
    req.flags |= CVM_WIRE_F_DATA_CRC;
    req.data_crc = Crc32c(payload);
  }
  HeaderBytes hb = Encode(req);
  CVM_RETURN_IF_ERROR(SendAll(hb));
  if (!payload.empty()) CVM_RETURN_IF_ERROR(SendAll(payload));
  CVM_ASSIGN_OR_RETURN(auto rb, RecvExact(kHeaderLen));
  Reply reply;
  CVM_ASSIGN_OR_RETURN(
      reply.header,
      Decode(std::span<const uint8_t, kHeaderLen>(rb.data(), kHeaderLen),
             true));
  const Header& r = reply.header;
  if (r.tag != req.tag || r.opcode != req.opcode)
    return Corruption("reply does not match the request");
  if (r.length) {
    CVM_ASSIGN_OR_RETURN(reply.data, RecvExact(r.length));
    if ((r.flags & CVM_WIRE_F_DATA_CRC) && Crc32c(reply.data) != r.data_crc)
      return Corruption("reply payload CRC mismatch");
  }
  return reply;
}

namespace {

// A request about one object shard, for the attachment `k` speaks for.
Header ShardRequest(uint8_t op, const ObjectKey& k) {
  Header h = MakeRequest(op);
  h.volume_id = k.volume_id;
  h.object_no = k.object_no;
  h.shard = k.shard;
  h.attach_epoch = k.attach_epoch;
  return h;
}

}  // namespace

Result<Reply> Client::Read(const ObjectKey& k, uint64_t offset,
                           uint32_t length) {
  Header h = ShardRequest(CVM_WIRE_OP_READ, k);
  h.offset = offset;
  h.length = length;
  return Call(h);
}

Result<Reply> Client::Write(const ObjectKey& k, uint64_t offset,
                            std::span<const uint8_t> data, bool fua) {
  Header h = ShardRequest(CVM_WIRE_OP_WRITE, k);
  h.offset = offset;
  h.length = data.size();
  if (fua) h.flags |= CVM_WIRE_F_FUA;
  return Call(h, data);
}

Result<Reply> Client::WriteVersioned(const ObjectKey& k, uint64_t offset,
                                     std::span<const uint8_t> data,
                                     uint32_t version) {
  Header h = ShardRequest(CVM_WIRE_OP_WRITE, k);
  h.offset = offset;
  h.length = data.size();
  h.flags = CVM_WIRE_F_VERSIONED | CVM_WIRE_F_FUA;
  h.shard_version = version;
  return Call(h, data);
}

Result<Reply> Client::Remove(const ObjectKey& k, bool fua) {
  Header h = ShardRequest(CVM_WIRE_OP_REMOVE, k);
  if (fua) h.flags |= CVM_WIRE_F_FUA;
  return Call(h);
}

Result<Reply> Client::Stat(const ObjectKey& k) {
  return Call(ShardRequest(CVM_WIRE_OP_STAT, k));
}

Result<Reply> Client::VersionOp(uint8_t op, const ObjectKey& k,
                                uint32_t version) {
  Header h = ShardRequest(op, k);
  h.shard_version = version;
  return Call(h);
}

Result<Reply> Client::Flush() { return Call(MakeRequest(CVM_WIRE_OP_FLUSH)); }

}  // namespace cvm::wire
