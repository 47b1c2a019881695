#include "netlink_client.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>

#include "json_fields.h"
#include "log.h"

namespace cvm {
namespace {

using NlSock = std::unique_ptr<nl_sock, decltype(&nl_socket_free)>;
using NlMsg = std::unique_ptr<nl_msg, decltype(&nlmsg_free)>;

// A connected generic netlink socket; reads on it give up after
// `rcv_timeout` unless that is zero (never wait on the kernel forever).
Result<NlSock> ConnectGenl(std::chrono::milliseconds rcv_timeout) {
  NlSock sock(nl_socket_alloc(), &nl_socket_free);
  if (!sock) return Internal("nl_socket_alloc failed");
  int err = genl_connect(sock.get());
  if (err < 0) {
    return Unavailable(fmt::format("cannot open a generic netlink socket: {}",
                                   nl_geterror(err)));
  }
  if (rcv_timeout.count() > 0) {
    timeval tv{static_cast<time_t>(rcv_timeout.count() / 1000),
               static_cast<suseconds_t>((rcv_timeout.count() % 1000) * 1000)};
    setsockopt(nl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVTIMEO, &tv,
               sizeof(tv));
  }
  return sock;
}

// libnl checks types and minimum lengths against these; exact lengths of the
// fixed-size attributes are checked in ParseStatusReply.
std::array<nla_policy, CVM_ATTR_MAX + 1> TopPolicy() {
  std::array<nla_policy, CVM_ATTR_MAX + 1> p{};
  p[CVM_ATTR_STATUS].type = NLA_NESTED;
  return p;
}

std::array<nla_policy, CVM_STATUS_ATTR_MAX + 1> StatusPolicy() {
  std::array<nla_policy, CVM_STATUS_ATTR_MAX + 1> p{};
  p[CVM_STATUS_ATTR_ROLE].type = NLA_U32;
  p[CVM_STATUS_ATTR_MODULE_VERSION].type = NLA_STRING;
  p[CVM_STATUS_ATTR_MODULE_VERSION].maxlen = CVM_VERSION_LEN + 1;  // + NUL
  p[CVM_STATUS_ATTR_GENL_VERSION].type = NLA_U32;
  p[CVM_STATUS_ATTR_WIRE_VERSION].type = NLA_U32;
  p[CVM_STATUS_ATTR_MAP_EPOCH].type = NLA_U64;
  p[CVM_STATUS_ATTR_OBJECTS].type = NLA_U32;
  p[CVM_STATUS_ATTR_STALE_OBJECTS].type = NLA_U64;
  return p;
}

struct StatusAttr {
  int type;
  const char* name;
  int len;  // exact payload length; 0 for strings
};

constexpr StatusAttr kRequired[] = {
    {CVM_STATUS_ATTR_ROLE, "ROLE", 4},
    {CVM_STATUS_ATTR_MODULE_VERSION, "MODULE_VERSION", 0},
    {CVM_STATUS_ATTR_GENL_VERSION, "GENL_VERSION", 4},
    {CVM_STATUS_ATTR_WIRE_VERSION, "WIRE_VERSION", 4},
    {CVM_STATUS_ATTR_MAP_EPOCH, "MAP_EPOCH", 8},
    {CVM_STATUS_ATTR_OBJECTS, "OBJECTS", 4},
};

Status BadReply(std::string_view family, std::string message) {
  return Status(Code::kBadRequest,
                fmt::format("'{}' status reply: {}", family, message));
}

struct ReplyContext {
  std::string family;
  Result<ModuleStatus> result = Status(Code::kInternal, "no reply");
  bool got_reply = false;
};

int OnValid(nl_msg* msg, void* arg) {
  auto* ctx = static_cast<ReplyContext*>(arg);
  ctx->result = ParseStatusReply(nlmsg_hdr(msg), ctx->family);
  ctx->got_reply = true;
  return NL_STOP;
}

}  // namespace

std::string_view RoleName(uint32_t role) {
  switch (role) {
    case CVM_ROLE_INITIATOR:
      return "initiator";
    case CVM_ROLE_TARGET:
      return "target";
  }
  return "unknown";
}

nlohmann::json ToJson(const ModuleStatus& s) {
  if (!s.loaded) return {{"family", s.family}, {"loaded", false}};
  return {{"family", s.family},
          {"loaded", true},
          {"role", RoleName(s.role)},
          {"module_version", s.module_version},
          {"genl_version", s.genl_version},
          {"wire_version", s.wire_version},
          {"map_epoch", s.map_epoch},
          {"objects", s.objects},
          {"stale_objects", s.stale_objects ? nlohmann::json(*s.stale_objects)
                                            : nlohmann::json(nullptr)}};
}

Result<ModuleStatus> ParseStatusReply(const nlmsghdr* nlh,
                                      std::string_view family) {
  if (nlh == nullptr) return BadReply(family, "empty message");
  static auto top_policy = TopPolicy();
  static auto status_policy = StatusPolicy();
  nlattr* top[CVM_ATTR_MAX + 1] = {};
  // libnl's prototypes are not const-correct.
  auto* hdr = const_cast<nlmsghdr*>(nlh);
  if (!genlmsg_valid_hdr(hdr, 0))
    return BadReply(family, "truncated genetlink header");
  const genlmsghdr* g = static_cast<const genlmsghdr*>(nlmsg_data(hdr));
  if (g->cmd != CVM_CMD_STATUS_GET) {
    return BadReply(family, fmt::format("unexpected command {}", g->cmd));
  }
  int err = genlmsg_parse(hdr, 0, top, CVM_ATTR_MAX, top_policy.data());
  if (err < 0)
    return BadReply(family,
                    fmt::format("bad attributes: {}", nl_geterror(err)));
  if (top[CVM_ATTR_STATUS] == nullptr)
    return BadReply(family, "no CVM_ATTR_STATUS");
  nlattr* attrs[CVM_STATUS_ATTR_MAX + 1] = {};
  err = nla_parse_nested(attrs, CVM_STATUS_ATTR_MAX, top[CVM_ATTR_STATUS],
                         status_policy.data());
  if (err < 0) {
    return BadReply(family,
                    fmt::format("bad CVM_ATTR_STATUS: {}", nl_geterror(err)));
  }
  for (const auto& a : kRequired) {
    if (attrs[a.type] == nullptr) {
      return BadReply(family,
                      fmt::format("missing CVM_STATUS_ATTR_{}", a.name));
    }
    if (a.len != 0 && nla_len(attrs[a.type]) != a.len) {
      return BadReply(
          family, fmt::format("CVM_STATUS_ATTR_{} has {} bytes, expected {}",
                              a.name, nla_len(attrs[a.type]), a.len));
    }
  }
  ModuleStatus s;
  s.family = std::string(family);
  s.loaded = true;
  s.role = nla_get_u32(attrs[CVM_STATUS_ATTR_ROLE]);
  // The policy guaranteed a NUL within CVM_VERSION_LEN + 1 bytes.
  s.module_version = nla_get_string(attrs[CVM_STATUS_ATTR_MODULE_VERSION]);
  s.genl_version = nla_get_u32(attrs[CVM_STATUS_ATTR_GENL_VERSION]);
  s.wire_version = nla_get_u32(attrs[CVM_STATUS_ATTR_WIRE_VERSION]);
  s.map_epoch = nla_get_u64(attrs[CVM_STATUS_ATTR_MAP_EPOCH]);
  s.objects = nla_get_u32(attrs[CVM_STATUS_ATTR_OBJECTS]);
  // Optional: older modules and the target do not send it.
  if (const nlattr* stale = attrs[CVM_STATUS_ATTR_STALE_OBJECTS]) {
    if (nla_len(stale) != 8) {
      return BadReply(family,
                      fmt::format("CVM_STATUS_ATTR_STALE_OBJECTS has {} bytes, "
                                  "expected 8",
                                  nla_len(stale)));
    }
    s.stale_objects = nla_get_u64(const_cast<nlattr*>(stale));
  }
  const uint32_t expected_role =
      family == CVM_TARGET_GENL_NAME ? CVM_ROLE_TARGET : CVM_ROLE_INITIATOR;
  if (s.role != expected_role) {
    return BadReply(family, fmt::format("role {} ({}) from the wrong module",
                                        s.role, RoleName(s.role)));
  }
  if (s.module_version.empty() || s.module_version.size() > CVM_VERSION_LEN) {
    return BadReply(family, "module version must be 1 to 32 characters");
  }
  s.module_version = Printable(s.module_version, CVM_VERSION_LEN);
  return s;
}

Result<ModuleStatus> QueryModuleStatus(std::string_view family,
                                       std::chrono::milliseconds timeout) {
  const std::string name(family);
  CVM_ASSIGN_OR_RETURN(NlSock sock, ConnectGenl(timeout));

  const int family_id = genl_ctrl_resolve(sock.get(), name.c_str());
  if (family_id == -NLE_OBJ_NOTFOUND) {
    ModuleStatus s;
    s.family = name;
    return s;
  }
  if (family_id < 0) {
    return Unavailable(
        fmt::format("cannot resolve generic netlink family '{}': {}", name,
                    nl_geterror(family_id)));
  }

  NlMsg msg(nlmsg_alloc(), &nlmsg_free);
  if (!msg) return Internal("nlmsg_alloc failed");
  if (genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family_id, 0,
                  NLM_F_REQUEST, CVM_CMD_STATUS_GET,
                  CVM_GENL_VERSION) == nullptr) {
    return Internal("genlmsg_put failed");
  }
  ReplyContext ctx;
  ctx.family = name;
  nl_socket_modify_cb(sock.get(), NL_CB_VALID, NL_CB_CUSTOM, &OnValid, &ctx);
  int err = nl_send_auto(sock.get(), msg.get());
  if (err < 0) {
    return Unavailable(
        fmt::format("sending to '{}' failed: {}", name, nl_geterror(err)));
  }
  err = nl_recvmsgs_default(sock.get());
  if (ctx.got_reply) return std::move(ctx.result);
  if (err == -NLE_PERM) {
    return Unavailable(
        fmt::format("'{}' refused the status query: permission denied (needs "
                    "CAP_NET_ADMIN)",
                    name));
  }
  if (err == -NLE_AGAIN) {
    return Status(
        Code::kTimeout,
        fmt::format("'{}' did not answer within {} ms", name, timeout.count()));
  }
  return Unavailable(fmt::format("'{}' status query failed: {}", name,
                                 err < 0 ? nl_geterror(err) : "no reply"));
}

}  // namespace cvm

// ---- requests beyond STATUS_GET ----

namespace cvm {
namespace {

std::string ModuleName(std::string_view family) {
  return family == CVM_TARGET_GENL_NAME ? "cvm_target" : "cvm";
}

// One generic netlink socket bound to one family, with extended acks on.
// Requests that belong together (the chunks of one map upload) must share it.
class GenlConn {
 public:
  static Result<GenlConn> Open(std::string_view family,
                               std::chrono::milliseconds timeout) {
    GenlConn c;
    c.family_ = std::string(family);
    CVM_ASSIGN_OR_RETURN(c.sock_, ConnectGenl(timeout));
    const int fd = nl_socket_get_fd(c.sock_.get());
    const int one = 1;
    // Refusals carry the kernel's reason; errors do not echo the request
    // (a map chunk is 64 KiB).
    setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    nl_socket_set_buffer_size(c.sock_.get(), 1 << 20, 1 << 20);
    nl_socket_enable_msg_peek(c.sock_.get());
    c.family_id_ = genl_ctrl_resolve(c.sock_.get(), c.family_.c_str());
    if (c.family_id_ == -NLE_OBJ_NOTFOUND) {
      return Unavailable(
          fmt::format("{} module not loaded", ModuleName(family)));
    }
    if (c.family_id_ < 0) {
      return Unavailable(
          fmt::format("cannot resolve generic netlink family '{}': {}",
                      c.family_, nl_geterror(c.family_id_)));
    }
    return c;
  }

  // A request message with room for `payload` bytes of attributes.
  Result<NlMsg> NewMsg(uint8_t cmd, int flags, size_t payload = 0) {
    NlMsg msg(nlmsg_alloc_size(payload + 4096), &nlmsg_free);
    if (!msg) return Internal("nlmsg_alloc failed");
    if (genlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, family_id_, 0,
                    NLM_F_REQUEST | flags, cmd, CVM_GENL_VERSION) == nullptr) {
      return Internal("genlmsg_put failed");
    }
    return msg;
  }

  // Sends `msg` and reads until its ack, error or (dumps) NLMSG_DONE.
  // `on_reply` sees every reply message; its first failure is returned.
  Status Transact(nl_msg* msg, std::string_view what,
                  const std::function<Status(nlmsghdr*)>& on_reply = {}) {
    Tx tx;
    tx.on_reply = &on_reply;
    nl_sock* s = sock_.get();
    nl_socket_modify_cb(s, NL_CB_VALID, NL_CB_CUSTOM, &Tx::OnValid, &tx);
    nl_socket_modify_cb(s, NL_CB_ACK, NL_CB_CUSTOM, &Tx::OnDone, &tx);
    nl_socket_modify_cb(s, NL_CB_FINISH, NL_CB_CUSTOM, &Tx::OnDone, &tx);
    nl_socket_modify_err_cb(s, NL_CB_CUSTOM, &Tx::OnError, &tx);
    int err = nl_send_auto(s, msg);
    if (err < 0) {
      return Unavailable(
          fmt::format("{}: sending failed: {}", what, nl_geterror(err)));
    }
    while (!tx.done) {
      err = nl_recvmsgs_default(s);
      if (err == -NLE_AGAIN) {
        return Status(Code::kTimeout,
                      fmt::format("{}: {} module did not answer", what,
                                  ModuleName(family_)));
      }
      if (err < 0 && !tx.done) {
        return Unavailable(
            fmt::format("{}: receiving failed: {}", what, nl_geterror(err)));
      }
    }
    if (tx.error != 0) {
      std::string m = fmt::format("{} refused by {}: {}", what,
                                  ModuleName(family_), std::strerror(tx.error));
      if (!tx.extack.empty()) m += ": " + tx.extack;
      if (tx.error == EPERM) m += " (needs CAP_NET_ADMIN)";
      return Status(CodeFromErrno(tx.error), m);
    }
    return tx.reply_status;
  }

 private:
  struct Tx {
    const std::function<Status(nlmsghdr*)>* on_reply = nullptr;
    Status reply_status;
    bool done = false;
    int error = 0;
    std::string extack;

    static int OnValid(nl_msg* msg, void* arg) {
      auto* tx = static_cast<Tx*>(arg);
      if (tx->on_reply != nullptr && *tx->on_reply) {
        Status s = (*tx->on_reply)(nlmsg_hdr(msg));
        if (!s.ok() && tx->reply_status.ok()) tx->reply_status = s;
      }
      return NL_OK;
    }
    static int OnDone(nl_msg*, void* arg) {
      static_cast<Tx*>(arg)->done = true;
      return NL_STOP;
    }
    static int OnError(sockaddr_nl*, nlmsgerr* e, void* arg) {
      auto* tx = static_cast<Tx*>(arg);
      tx->done = true;
      tx->error = -e->error;
      // The error is the payload of its NLMSG_ERROR message.
      tx->extack = ExtackMessage(reinterpret_cast<const nlmsghdr*>(
          reinterpret_cast<const char*>(e) - NLMSG_HDRLEN));
      return NL_STOP;
    }
  };

  GenlConn() : sock_(nullptr, &nl_socket_free) {}

  NlSock sock_;
  std::string family_;
  int family_id_ = -1;
};

Status PutFailed(std::string_view what) {
  return Internal(fmt::format("{}: message too small", what));
}

Status CheckAddr(std::string_view what, const std::string& addr) {
  in6_addr buf;
  if (addr.size() + 1 > CVM_PATH_ADDR_LEN ||
      (inet_pton(AF_INET, addr.c_str(), &buf) != 1 &&
       inet_pton(AF_INET6, addr.c_str(), &buf) != 1)) {
    return InvalidArgument(fmt::format(
        "{}: '{}' is not a numeric IPv4 or IPv6 address", what, addr));
  }
  return {};
}

Result<TargetDeviceUsage> ParseTargetDevice(nlmsghdr* nlh) {
  nlattr* top[CVM_ATTR_MAX + 1] = {};
  if (genlmsg_parse(nlh, 0, top, CVM_ATTR_MAX, nullptr) < 0 ||
      top[CVM_ATTR_TARGET_DEVICE] == nullptr) {
    return Status(Code::kBadRequest,
                  "device list reply without CVM_ATTR_TARGET_DEVICE");
  }
  nlattr* a[CVM_TARGET_DEVICE_ATTR_MAX + 1] = {};
  if (nla_parse_nested(a, CVM_TARGET_DEVICE_ATTR_MAX,
                       top[CVM_ATTR_TARGET_DEVICE], nullptr) < 0) {
    return Status(Code::kBadRequest, "malformed CVM_ATTR_TARGET_DEVICE");
  }
  constexpr std::pair<int, int> kLens[] = {
      {CVM_TARGET_DEVICE_ATTR_ID, 4},
      {CVM_TARGET_DEVICE_ATTR_CAPACITY, 8},
      {CVM_TARGET_DEVICE_ATTR_USED, 8},
      {CVM_TARGET_DEVICE_ATTR_OBJECTS, 8},
      {CVM_TARGET_DEVICE_ATTR_INTENTS, 8},
      {CVM_TARGET_DEVICE_ATTR_IO_ERRORS, 8},
  };
  for (auto [type, len] : kLens) {
    if (a[type] == nullptr || nla_len(a[type]) != len) {
      return Status(Code::kBadRequest,
                    fmt::format("device list reply: attribute {} missing or "
                                "not {} bytes",
                                type, len));
    }
  }
  TargetDeviceUsage u;
  u.id = nla_get_u32(a[CVM_TARGET_DEVICE_ATTR_ID]);
  u.capacity = nla_get_u64(a[CVM_TARGET_DEVICE_ATTR_CAPACITY]);
  u.used = nla_get_u64(a[CVM_TARGET_DEVICE_ATTR_USED]);
  u.objects = nla_get_u64(a[CVM_TARGET_DEVICE_ATTR_OBJECTS]);
  u.intents = nla_get_u64(a[CVM_TARGET_DEVICE_ATTR_INTENTS]);
  u.io_errors = nla_get_u64(a[CVM_TARGET_DEVICE_ATTR_IO_ERRORS]);
  // Appended later: a module that does not send it reports 0.
  if (const nlattr* c = a[CVM_TARGET_DEVICE_ATTR_COPIED]) {
    if (nla_len(c) != 8) {
      return Status(Code::kBadRequest,
                    "device list reply: COPIED is not 8 bytes");
    }
    u.copied = nla_get_u64(c);
  }
  if (const nlattr* p = a[CVM_TARGET_DEVICE_ATTR_PATH]) {
    const char* c = static_cast<const char*>(nla_data(p));
    u.path = Printable(std::string_view(c, strnlen(c, nla_len(p))),
                       CVM_TARGET_PATH_LEN);
  }
  return u;
}

Result<KernelVolume> ParseVolume(nlmsghdr* nlh) {
  nlattr* top[CVM_ATTR_MAX + 1] = {};
  if (genlmsg_parse(nlh, 0, top, CVM_ATTR_MAX, nullptr) < 0 ||
      top[CVM_ATTR_VOLUME] == nullptr) {
    return Status(Code::kBadRequest, "volume reply without CVM_ATTR_VOLUME");
  }
  nlattr* a[CVM_VOLUME_ATTR_MAX + 1] = {};
  if (nla_parse_nested(a, CVM_VOLUME_ATTR_MAX, top[CVM_ATTR_VOLUME], nullptr) <
      0) {
    return Status(Code::kBadRequest, "malformed CVM_ATTR_VOLUME");
  }
  constexpr std::pair<int, int> kLens[] = {
      {CVM_VOLUME_ATTR_ID, 8},           {CVM_VOLUME_ATTR_POOL_ID, 4},
      {CVM_VOLUME_ATTR_SIZE, 8},         {CVM_VOLUME_ATTR_OBJECT_SIZE, 4},
      {CVM_VOLUME_ATTR_ATTACH_EPOCH, 8}, {CVM_VOLUME_ATTR_MINOR, 4}};
  for (auto [type, len] : kLens) {
    if (a[type] == nullptr || nla_len(a[type]) != len) {
      return Status(Code::kBadRequest,
                    fmt::format("volume reply: attribute {} missing or not {} "
                                "bytes",
                                type, len));
    }
  }
  KernelVolume v;
  v.id = nla_get_u64(a[CVM_VOLUME_ATTR_ID]);
  v.pool_id = nla_get_u32(a[CVM_VOLUME_ATTR_POOL_ID]);
  v.size = nla_get_u64(a[CVM_VOLUME_ATTR_SIZE]);
  v.object_size = nla_get_u32(a[CVM_VOLUME_ATTR_OBJECT_SIZE]);
  v.attach_epoch = nla_get_u64(a[CVM_VOLUME_ATTR_ATTACH_EPOCH]);
  v.minor = nla_get_u32(a[CVM_VOLUME_ATTR_MINOR]);
  if (const nlattr* b = a[CVM_VOLUME_ATTR_BACKFILLED]) {
    if (nla_len(b) != 8)
      return Status(Code::kBadRequest,
                    "volume reply: backfilled attribute not 8 bytes");
    v.backfilled_epoch = nla_get_u64(b);
  }
  if (const nlattr* su = a[CVM_VOLUME_ATTR_STRIPE_UNIT]) {
    if (nla_len(su) != 4)
      return Status(Code::kBadRequest,
                    "volume reply: stripe unit attribute not 4 bytes");
    v.stripe_unit = nla_get_u32(su);
  }
  if (const nlattr* n = a[CVM_VOLUME_ATTR_NAME]) {
    const char* p = static_cast<const char*>(nla_data(n));
    v.name = Printable(std::string_view(p, strnlen(p, nla_len(n))),
                       CVM_VOLUME_NAME_LEN);
  }
  return v;
}

}  // namespace

Code CodeFromErrno(int err) {
  switch (err) {
    case EEXIST:
      return Code::kAlreadyExists;
    case ENOENT:
    case ENODEV:
      return Code::kNotFound;
    case EBUSY:
      return Code::kInUse;
    case EPERM:
    case EACCES:
      return Code::kUnavailable;
    case EIO:
      return Code::kIoError;
    default:
      return Code::kInvalidArgument;
  }
}

std::string ExtackMessage(const nlmsghdr* nlh) {
  if (nlh == nullptr || nlh->nlmsg_type != NLMSG_ERROR ||
      !(nlh->nlmsg_flags & NLM_F_ACK_TLVS)) {
    return "";
  }
  const size_t total = nlh->nlmsg_len;
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (total < off) return "";
  const auto* e = reinterpret_cast<const nlmsgerr*>(
      reinterpret_cast<const char*>(nlh) + NLMSG_HDRLEN);
  if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
    if (e->msg.nlmsg_len < NLMSG_HDRLEN) return "";
    off += NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN);
  }
  const char* base = reinterpret_cast<const char*>(nlh);
  while (off + NLA_HDRLEN <= total) {
    nlattr a;
    std::memcpy(&a, base + off, sizeof(a));
    if (a.nla_len < NLA_HDRLEN || off + a.nla_len > total) break;
    if ((a.nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG) {
      const char* p = base + off + NLA_HDRLEN;
      const size_t n = strnlen(p, a.nla_len - NLA_HDRLEN);
      return Printable(std::string_view(p, n), 256);
    }
    off += NLA_ALIGN(a.nla_len);
  }
  return "";
}

std::vector<MapChunk> SplitMapChunks(size_t blob_len, size_t chunk_max) {
  std::vector<MapChunk> chunks;
  if (chunk_max == 0) return chunks;
  size_t off = 0;
  do {
    const size_t n = std::min(chunk_max, blob_len - off);
    chunks.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(n),
                      off + n >= blob_len});
    off += n;
  } while (off < blob_len);
  return chunks;
}

Result<ModuleStatus> NetlinkKernel::Query(std::string_view family) {
  return QueryModuleStatus(family, timeout_);
}

Status NetlinkKernel::MapSet(const MapSetRequest& r) {
  constexpr std::string_view kWhat = "map upload";
  if (r.blob.empty() || r.blob.size() > CVM_MAP_MAX_LEN) {
    return InvalidArgument(fmt::format("{}: a map of {} bytes is out of range",
                                       kWhat, r.blob.size()));
  }
  if (!r.host_key.empty() && r.host_key.size() != CVM_WIRE_KEY_LEN) {
    return InvalidArgument(fmt::format("{}: the host key must be {} bytes",
                                       kWhat, CVM_WIRE_KEY_LEN));
  }
  for (const MapPath& p : r.paths) {
    CVM_RETURN_IF_ERROR(CheckAddr(kWhat, p.addr));
    if (p.port == 0) {
      return InvalidArgument(
          fmt::format("{}: device {} has port 0", kWhat, p.device_id));
    }
  }
  CVM_ASSIGN_OR_RETURN(GenlConn conn, GenlConn::Open(CVM_GENL_NAME, timeout_));
  const auto chunks = SplitMapChunks(r.blob.size(), CVM_MAP_CHUNK_MAX);
  for (const MapChunk& c : chunks) {
    const size_t room = c.length + (c.last ? r.paths.size() * 128 + 256 : 0);
    CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_MAP_SET, 0, room));
    nl_msg* m = msg.get();
    if (nla_put(m, CVM_ATTR_MAP_CHUNK, static_cast<int>(c.length),
                r.blob.data() + c.offset) < 0 ||
        nla_put_u32(m, CVM_ATTR_MAP_OFFSET, c.offset) < 0 ||
        nla_put_u32(m, CVM_ATTR_MAP_TOTAL_LEN,
                    static_cast<uint32_t>(r.blob.size())) < 0) {
      return PutFailed(kWhat);
    }
    if (c.last) {
      nlattr* paths = nla_nest_start(m, CVM_ATTR_MAP_PATHS | NLA_F_NESTED);
      if (paths == nullptr) return PutFailed(kWhat);
      for (const MapPath& p : r.paths) {
        nlattr* path =
            nla_nest_start(m, CVM_MAP_PATHS_ATTR_PATH | NLA_F_NESTED);
        if (path == nullptr ||
            nla_put_u32(m, CVM_PATH_ATTR_DEVICE_ID, p.device_id) < 0 ||
            nla_put_string(m, CVM_PATH_ATTR_ADDR, p.addr.c_str()) < 0 ||
            nla_put_u16(m, CVM_PATH_ATTR_PORT, p.port) < 0 ||
            nla_put_string(m, CVM_PATH_ATTR_TRANSPORT, p.transport.c_str()) <
                0) {
          return PutFailed(kWhat);
        }
        nla_nest_end(m, path);
      }
      nla_nest_end(m, paths);
      if (nla_put_u64(m, CVM_ATTR_CLUSTER_ID, r.cluster_id) < 0 ||
          nla_put_u64(m, CVM_ATTR_HOST_ID, r.host_id) < 0) {
        return PutFailed(kWhat);
      }
      if (!r.host_key.empty() &&
          (nla_put(m, CVM_ATTR_HOST_KEY, CVM_WIRE_KEY_LEN, r.host_key.data()) <
               0 ||
           nla_put_u32(m, CVM_ATTR_KEY_ID, r.key_id) < 0)) {
        return PutFailed(kWhat);
      }
    }
    CVM_RETURN_IF_ERROR(conn.Transact(m, kWhat));
  }
  return {};
}

Result<KernelVolume> NetlinkKernel::VolumeAttach(const KernelVolume& v) {
  constexpr std::string_view kWhat = "volume attach";
  CVM_ASSIGN_OR_RETURN(GenlConn conn, GenlConn::Open(CVM_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_VOLUME_ATTACH, 0));
  nl_msg* m = msg.get();
  nlattr* vol = nla_nest_start(m, CVM_ATTR_VOLUME | NLA_F_NESTED);
  if (vol == nullptr || nla_put_u64(m, CVM_VOLUME_ATTR_ID, v.id) < 0 ||
      nla_put_u32(m, CVM_VOLUME_ATTR_POOL_ID, v.pool_id) < 0 ||
      nla_put_u64(m, CVM_VOLUME_ATTR_SIZE, v.size) < 0 ||
      nla_put_u32(m, CVM_VOLUME_ATTR_OBJECT_SIZE, v.object_size) < 0 ||
      nla_put_u64(m, CVM_VOLUME_ATTR_ATTACH_EPOCH, v.attach_epoch) < 0 ||
      (v.stripe_unit &&
       nla_put_u32(m, CVM_VOLUME_ATTR_STRIPE_UNIT, v.stripe_unit) < 0) ||
      (!v.name.empty() &&
       nla_put_string(m, CVM_VOLUME_ATTR_NAME, v.name.c_str()) < 0)) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, vol);
  std::optional<KernelVolume> reply;
  CVM_RETURN_IF_ERROR(conn.Transact(m, kWhat, [&](nlmsghdr* nlh) -> Status {
    CVM_ASSIGN_OR_RETURN(reply, ParseVolume(nlh));
    return {};
  }));
  if (!reply) return Status(Code::kBadRequest, "volume attach: no reply");
  return *reply;
}

Status NetlinkKernel::VolumeDetach(uint64_t id, bool force) {
  constexpr std::string_view kWhat = "volume detach";
  CVM_ASSIGN_OR_RETURN(GenlConn conn, GenlConn::Open(CVM_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_VOLUME_DETACH, 0));
  nl_msg* m = msg.get();
  nlattr* vol = nla_nest_start(m, CVM_ATTR_VOLUME | NLA_F_NESTED);
  if (vol == nullptr || nla_put_u64(m, CVM_VOLUME_ATTR_ID, id) < 0 ||
      (force &&
       nla_put_u32(m, CVM_VOLUME_ATTR_FLAGS, CVM_VOLUME_F_FORCE) < 0)) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, vol);
  return conn.Transact(m, kWhat);
}

Result<std::vector<KernelVolume>> NetlinkKernel::VolumeList() {
  constexpr std::string_view kWhat = "volume list";
  CVM_ASSIGN_OR_RETURN(GenlConn conn, GenlConn::Open(CVM_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_VOLUME_LIST, NLM_F_DUMP));
  std::vector<KernelVolume> out;
  CVM_RETURN_IF_ERROR(
      conn.Transact(msg.get(), kWhat, [&](nlmsghdr* nlh) -> Status {
        CVM_ASSIGN_OR_RETURN(KernelVolume v, ParseVolume(nlh));
        out.push_back(std::move(v));
        return {};
      }));
  return out;
}

Status NetlinkKernel::TargetDeviceAdd(uint32_t id, const std::string& path,
                                      bool format, bool force) {
  constexpr std::string_view kWhat = "target device add";
  if (path.empty() || path.size() + 1 > CVM_TARGET_PATH_LEN) {
    return InvalidArgument(fmt::format("{}: path length out of range", kWhat));
  }
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_TARGET_DEVICE_ADD, 0));
  nl_msg* m = msg.get();
  const uint32_t flags = (format ? CVM_TARGET_DEVICE_F_FORMAT : 0) |
                         (force ? CVM_TARGET_DEVICE_F_FORCE : 0);
  nlattr* dev = nla_nest_start(m, CVM_ATTR_TARGET_DEVICE | NLA_F_NESTED);
  if (dev == nullptr || nla_put_u32(m, CVM_TARGET_DEVICE_ATTR_ID, id) < 0 ||
      nla_put_string(m, CVM_TARGET_DEVICE_ATTR_PATH, path.c_str()) < 0 ||
      (flags != 0 && nla_put_u32(m, CVM_TARGET_DEVICE_ATTR_FLAGS, flags) < 0)) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, dev);
  return conn.Transact(m, kWhat);
}

Status NetlinkKernel::TargetDeviceRemove(uint32_t id) {
  constexpr std::string_view kWhat = "target device remove";
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_TARGET_DEVICE_REMOVE, 0));
  nl_msg* m = msg.get();
  nlattr* dev = nla_nest_start(m, CVM_ATTR_TARGET_DEVICE | NLA_F_NESTED);
  if (dev == nullptr || nla_put_u32(m, CVM_TARGET_DEVICE_ATTR_ID, id) < 0) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, dev);
  return conn.Transact(m, kWhat);
}

Status NetlinkKernel::TargetListen(const Listener& l) {
  constexpr std::string_view kWhat = "target listen";
  CVM_RETURN_IF_ERROR(CheckAddr(kWhat, l.addr));
  if (l.port == 0) return InvalidArgument("target listen: port 0");
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_TARGET_LISTEN, 0));
  nl_msg* m = msg.get();
  nlattr* lis = nla_nest_start(m, CVM_ATTR_TARGET_LISTENER | NLA_F_NESTED);
  if (lis == nullptr ||
      nla_put_string(m, CVM_TARGET_LISTENER_ATTR_TRANSPORT,
                     l.transport.c_str()) < 0 ||
      nla_put_string(m, CVM_TARGET_LISTENER_ATTR_ADDR, l.addr.c_str()) < 0 ||
      nla_put_u16(m, CVM_TARGET_LISTENER_ATTR_PORT, l.port) < 0) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, lis);
  return conn.Transact(m, kWhat);
}

Status NetlinkKernel::TargetUnlisten(const std::string& addr, uint16_t port) {
  constexpr std::string_view kWhat = "target unlisten";
  CVM_RETURN_IF_ERROR(CheckAddr(kWhat, addr));
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_TARGET_UNLISTEN, 0));
  nl_msg* m = msg.get();
  nlattr* lis = nla_nest_start(m, CVM_ATTR_TARGET_LISTENER | NLA_F_NESTED);
  if (lis == nullptr ||
      nla_put_string(m, CVM_TARGET_LISTENER_ATTR_ADDR, addr.c_str()) < 0 ||
      nla_put_u16(m, CVM_TARGET_LISTENER_ATTR_PORT, port) < 0) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, lis);
  return conn.Transact(m, kWhat);
}

Result<std::vector<TargetDeviceUsage>> NetlinkKernel::TargetDeviceList() {
  constexpr std::string_view kWhat = "target device list";
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg,
                       conn.NewMsg(CVM_CMD_TARGET_DEVICE_LIST, NLM_F_DUMP));
  std::vector<TargetDeviceUsage> out;
  CVM_RETURN_IF_ERROR(
      conn.Transact(msg.get(), kWhat, [&](nlmsghdr* nlh) -> Status {
        CVM_ASSIGN_OR_RETURN(TargetDeviceUsage u, ParseTargetDevice(nlh));
        out.push_back(std::move(u));
        return {};
      }));
  return out;
}

nlohmann::json ToJson(const TargetDeviceUsage& u) {
  return {{"id", u.id},
          {"path", u.path},
          {"capacity", u.capacity},
          {"used", u.used},
          {"objects", u.objects},
          {"intents", u.intents},
          {"io_errors", u.io_errors},
          {"copied", u.copied}};
}

Status NetlinkKernel::HostKeySet(const std::string& secret, uint32_t key_id) {
  constexpr std::string_view kWhat = "host key";
  if (secret.size() != CVM_WIRE_KEY_LEN)
    return InvalidArgument(fmt::format("{}: the secret must be {} bytes", kWhat,
                                       CVM_WIRE_KEY_LEN));
  CVM_ASSIGN_OR_RETURN(GenlConn conn, GenlConn::Open(CVM_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_HOST_KEY_SET, 0));
  nl_msg* m = msg.get();
  if (nla_put(m, CVM_ATTR_HOST_KEY, CVM_WIRE_KEY_LEN, secret.data()) < 0 ||
      nla_put_u32(m, CVM_ATTR_KEY_ID, key_id) < 0)
    return PutFailed(kWhat);
  return conn.Transact(m, kWhat);
}

Status NetlinkKernel::TargetHostsSet(uint32_t device_id,
                                     const std::vector<TargetHost>& hosts) {
  constexpr std::string_view kWhat = "target hosts";
  for (const TargetHost& h : hosts) {
    if (h.key.size() != CVM_WIRE_KEY_LEN)
      return InvalidArgument(fmt::format("{}: host {} needs a {}-byte key",
                                         kWhat, h.host_id, CVM_WIRE_KEY_LEN));
  }
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_TARGET_HOSTS_SET, 0,
                                              256 + hosts.size() * 96));
  nl_msg* m = msg.get();
  nlattr* dev = nla_nest_start(m, CVM_ATTR_TARGET_DEVICE | NLA_F_NESTED);
  if (dev == nullptr ||
      nla_put_u32(m, CVM_TARGET_DEVICE_ATTR_ID, device_id) < 0)
    return PutFailed(kWhat);
  nla_nest_end(m, dev);
  nlattr* list = nla_nest_start(m, CVM_ATTR_TARGET_HOSTS | NLA_F_NESTED);
  if (list == nullptr) return PutFailed(kWhat);
  for (const TargetHost& h : hosts) {
    nlattr* e = nla_nest_start(m, 1 | NLA_F_NESTED);
    if (e == nullptr ||
        nla_put_u64(m, CVM_TARGET_HOST_ATTR_HOST_ID, h.host_id) < 0 ||
        nla_put_u32(m, CVM_TARGET_HOST_ATTR_KEY_ID, h.key_id) < 0 ||
        nla_put(m, CVM_TARGET_HOST_ATTR_KEY, CVM_WIRE_KEY_LEN, h.key.data()) <
            0 ||
        nla_put_u32(m, CVM_TARGET_HOST_ATTR_FLAGS,
                    h.all_volumes ? CVM_TARGET_HOST_F_ALL_VOLUMES : 0) < 0)
      return PutFailed(kWhat);
    nla_nest_end(m, e);
  }
  nla_nest_end(m, list);
  return conn.Transact(m, kWhat);
}

Status NetlinkKernel::TargetVolumeFence(uint64_t volume_id,
                                        uint64_t attach_epoch,
                                        uint64_t host_id) {
  constexpr std::string_view kWhat = "target volume fence";
  if (attach_epoch == 0) return InvalidArgument("target volume fence: epoch 0");
  CVM_ASSIGN_OR_RETURN(GenlConn conn,
                       GenlConn::Open(CVM_TARGET_GENL_NAME, timeout_));
  CVM_ASSIGN_OR_RETURN(NlMsg msg, conn.NewMsg(CVM_CMD_TARGET_VOLUME_FENCE, 0));
  nl_msg* m = msg.get();
  nlattr* vol = nla_nest_start(m, CVM_ATTR_VOLUME | NLA_F_NESTED);
  if (vol == nullptr || nla_put_u64(m, CVM_VOLUME_ATTR_ID, volume_id) < 0 ||
      nla_put_u64(m, CVM_VOLUME_ATTR_ATTACH_EPOCH, attach_epoch) < 0) {
    return PutFailed(kWhat);
  }
  nla_nest_end(m, vol);
  if (host_id && nla_put_u64(m, CVM_ATTR_HOST_ID, host_id) < 0)
    return PutFailed(kWhat);
  return conn.Transact(m, kWhat);
}

}  // namespace cvm

// ---- path events ----

namespace cvm {
namespace {

// The kernel prints the address into a buffer of this size, with its NUL
// (cvm_genl_path_event()).
constexpr int kEventAddrMax = CVM_PATH_ADDR_LEN + 8;
constexpr auto kResolveTimeout = std::chrono::seconds(2);

Status BadEvent(std::string message) {
  return Status(Code::kBadRequest, "path event: " + std::move(message));
}

struct GroupId {
  int family_id = -1;
  int group_id = -1;
  bool operator==(const GroupId&) const = default;
};

// Resolves `family` and its multicast `group` on a short-lived socket of its
// own, so the controller's replies never mix with the events. Empty when
// the family is not registered (its module is not loaded).
Result<std::optional<GroupId>> ResolveGroup(const char* family,
                                            const char* group) {
  CVM_ASSIGN_OR_RETURN(NlSock sock, ConnectGenl(kResolveTimeout));
  GroupId id;
  id.family_id = genl_ctrl_resolve(sock.get(), family);
  if (id.family_id == -NLE_OBJ_NOTFOUND) return std::optional<GroupId>();
  if (id.family_id < 0) {
    return Unavailable(
        fmt::format("cannot resolve generic netlink family '{}': {}", family,
                    nl_geterror(id.family_id)));
  }
  id.group_id = genl_ctrl_resolve_grp(sock.get(), family, group);
  if (id.group_id < 0) {
    return Unavailable(
        fmt::format("generic netlink family '{}' has no multicast group "
                    "'{}': {}",
                    family, group, nl_geterror(id.group_id)));
  }
  return std::optional<GroupId>(id);
}

}  // namespace

std::string_view ToString(PathEventKind kind) {
  return kind == PathEventKind::kUp ? "up" : "down";
}

Result<PathEvent> ParsePathEvent(const nlmsghdr* nlh) {
  if (nlh == nullptr) return BadEvent("empty message");
  // libnl's prototypes are not const-correct.
  auto* hdr = const_cast<nlmsghdr*>(nlh);
  if (!genlmsg_valid_hdr(hdr, 0)) {
    return BadEvent("truncated genetlink header");
  }
  const auto* g = static_cast<const genlmsghdr*>(nlmsg_data(hdr));
  PathEvent ev;
  switch (g->cmd) {
    case CVM_CMD_EVENT_PATH_DOWN:
      ev.kind = PathEventKind::kDown;
      break;
    case CVM_CMD_EVENT_PATH_UP:
      ev.kind = PathEventKind::kUp;
      break;
    default:
      return BadEvent(fmt::format("unexpected command {}", g->cmd));
  }
  // Types and lengths are checked below, exactly; libnl's policies only
  // check minimum lengths.
  nlattr* top[CVM_ATTR_MAX + 1] = {};
  int err = genlmsg_parse(hdr, 0, top, CVM_ATTR_MAX, nullptr);
  if (err < 0) {
    return BadEvent(fmt::format("bad attributes: {}", nl_geterror(err)));
  }
  if (top[CVM_ATTR_EVENT] == nullptr) return BadEvent("no CVM_ATTR_EVENT");
  nlattr* a[CVM_EVENT_ATTR_MAX + 1] = {};
  err = nla_parse_nested(a, CVM_EVENT_ATTR_MAX, top[CVM_ATTR_EVENT], nullptr);
  if (err < 0) {
    return BadEvent(fmt::format("bad CVM_ATTR_EVENT: {}", nl_geterror(err)));
  }
  constexpr std::pair<int, const char*> kFixed[] = {
      {CVM_EVENT_ATTR_DEVICE_ID, "DEVICE_ID"},
      {CVM_EVENT_ATTR_ADDR, "ADDR"},
      {CVM_EVENT_ATTR_STALE_OBJECTS, "STALE_OBJECTS"}};
  for (auto [type, name] : kFixed) {
    if (a[type] == nullptr) {
      return BadEvent(fmt::format("missing CVM_EVENT_ATTR_{}", name));
    }
  }
  if (nla_len(a[CVM_EVENT_ATTR_DEVICE_ID]) != 4) {
    return BadEvent(
        fmt::format("CVM_EVENT_ATTR_DEVICE_ID has {} bytes, "
                    "expected 4",
                    nla_len(a[CVM_EVENT_ATTR_DEVICE_ID])));
  }
  if (nla_len(a[CVM_EVENT_ATTR_STALE_OBJECTS]) != 8) {
    return BadEvent(
        fmt::format("CVM_EVENT_ATTR_STALE_OBJECTS has {} bytes, "
                    "expected 8",
                    nla_len(a[CVM_EVENT_ATTR_STALE_OBJECTS])));
  }
  const nlattr* addr = a[CVM_EVENT_ATTR_ADDR];
  const int addr_len = nla_len(addr);
  const char* text = static_cast<const char*>(nla_data(addr));
  if (addr_len < 2 || addr_len > kEventAddrMax ||
      strnlen(text, addr_len) != static_cast<size_t>(addr_len) - 1) {
    return BadEvent(fmt::format(
        "CVM_EVENT_ATTR_ADDR must be a string of 1 to {} characters ending "
        "in its NUL ({} bytes)",
        kEventAddrMax - 1, addr_len));
  }
  ev.device_id = nla_get_u32(a[CVM_EVENT_ATTR_DEVICE_ID]);
  ev.stale_objects = nla_get_u64(a[CVM_EVENT_ATTR_STALE_OBJECTS]);
  ev.address = Printable(std::string_view(text, addr_len - 1), kEventAddrMax);
  return ev;
}

// The event socket and what it has joined. Only the subscriber's thread
// touches it once Start() has returned.
struct PathEventSubscriber::Socket {
  explicit Socket(PathEventSubscriber& owner) : owner(owner) {}

  PathEventSubscriber& owner;
  NlSock sock{nullptr, &nl_socket_free};
  int ctrl_family_id = -1;        // nlctrl, when its "notify" group is joined
  std::optional<GroupId> events;  // cvm's "events" group, when joined
  std::string problem;            // the last one logged, to log changes only
  bool recheck_now = false;       // the controller announced a change

  bool open() const { return sock != nullptr; }

  void Report(const std::string& what, bool warn) {
    if (what == problem) return;
    problem = what;
    if (warn) {
      LogWarn("path events: {}", what);
    } else {
      LogInfo("path events: {}", what);
    }
  }

  void SetListening(std::optional<GroupId> joined) {
    events = joined;
    owner.listening_.store(joined.has_value());
  }

  void Close() {
    sock.reset();
    ctrl_family_id = -1;
    SetListening(std::nullopt);
  }

  // A non-blocking socket with sequence checks off (multicast messages carry
  // none), joined to the controller's notifications.
  Status Open() {
    CVM_ASSIGN_OR_RETURN(NlSock s, ConnectGenl(std::chrono::milliseconds(0)));
    nl_socket_disable_seq_check(s.get());
    nl_socket_enable_msg_peek(s.get());  // never truncate a long message
    nl_socket_set_buffer_size(s.get(), 1 << 20, 0);
    int err = nl_socket_set_nonblocking(s.get());
    if (err < 0) {
      return Unavailable(
          fmt::format("cannot make the event socket "
                      "non-blocking: {}",
                      nl_geterror(err)));
    }
    nl_socket_modify_cb(s.get(), NL_CB_VALID, NL_CB_CUSTOM, &Socket::OnValid,
                        this);
    sock = std::move(s);
    // Without the notifications a reload is noticed by the periodic
    // re-check only.
    auto ctrl = ResolveGroup("nlctrl", "notify");
    if (ctrl.ok() && ctrl->has_value()) {
      err = nl_socket_add_membership(sock.get(), (*ctrl)->group_id);
      if (err == 0) ctrl_family_id = (*ctrl)->family_id;
    }
    if (ctrl_family_id < 0) {
      LogWarn(
          "path events: not following the generic netlink controller; a "
          "reloaded cvm.ko is re-joined within {} s",
          std::chrono::duration_cast<std::chrono::seconds>(
              owner.options_.recheck)
              .count());
    }
    return {};
  }

  // Joins (or re-joins) cvm's "events" group when it resolves; leaves it
  // when cvm is gone.
  void Check() {
    recheck_now = false;
    if (!open()) {
      if (Status s = Open(); !s.ok()) {
        Close();
        Report(s.message(), true);
        return;
      }
    }
    auto resolved = ResolveGroup(CVM_GENL_NAME, CVM_GENL_MCGRP_EVENTS);
    if (!resolved.ok()) {
      Report(resolved.status().message(), true);
      return;
    }
    if (!resolved->has_value()) {
      if (events) LogWarn("path events: cvm.ko went away; waiting for it");
      SetListening(std::nullopt);
      Report("cvm.ko not loaded; joining its events group once it is", false);
      return;
    }
    const GroupId id = **resolved;
    // A different group: the module was reloaded. Leaving the old one is
    // tidiness only, the kernel dropped it with the family.
    if (events && events != id) {
      nl_socket_drop_membership(sock.get(), events->group_id);
    }
    // Joined again even when the ids are unchanged: a module reloaded
    // while the controller's notifications were lost may have been given
    // the same ids, and the kernel dropped the membership. Joining twice
    // is harmless.
    const int err = nl_socket_add_membership(sock.get(), id.group_id);
    if (err < 0) {
      SetListening(std::nullopt);
      Report(fmt::format("cannot join cvm's '{}' group {}: {}",
                         CVM_GENL_MCGRP_EVENTS, id.group_id, nl_geterror(err)),
             true);
      return;
    }
    if (events == id) return;
    SetListening(id);
    problem.clear();
    LogInfo("path events: listening to cvm.ko (family {}, group {})",
            id.family_id, id.group_id);
  }

  // Reads whatever is queued. False when the socket failed and must be
  // reopened.
  bool Drain() {
    // Bounded: a flood of events cannot keep Stop() waiting.
    for (int i = 0; i < 256; ++i) {
      const int err = nl_recvmsgs_default(sock.get());
      if (err == -NLE_AGAIN) return true;
      if (err == -NLE_NOMEM) {
        // ENOBUFS: the receive queue overflowed and events were dropped.
        LogWarn("path events: the kernel dropped events (socket overflow)");
        recheck_now = true;
        continue;
      }
      if (err < 0) {
        LogWarn("path events: receiving failed: {}; reopening",
                nl_geterror(err));
        return false;
      }
    }
    return true;
  }

  static int OnValid(nl_msg* msg, void* arg) {
    static_cast<Socket*>(arg)->Handle(nlmsg_hdr(msg));
    return NL_OK;
  }

  void Handle(nlmsghdr* nlh) {
    if (ctrl_family_id >= 0 && nlh->nlmsg_type == ctrl_family_id) {
      HandleController(nlh);
      return;
    }
    if (!events || nlh->nlmsg_type != events->family_id) return;
    auto ev = ParsePathEvent(nlh);
    if (!ev.ok()) {
      owner.skipped_.fetch_add(1);
      LogWarn("{}; skipped", ev.status().message());
      return;
    }
    owner.delivered_.fetch_add(1);
    // The boundary: a failing callback costs one event, not the thread.
    try {
      owner.callback_(*ev);
    } catch (const std::exception& e) {
      LogError("path event for device {}: handler failed: {}", ev->device_id,
               e.what());
    }
  }

  // CTRL_CMD_NEWFAMILY / DELFAMILY / *MCAST_GRP naming "cvm".
  void HandleController(nlmsghdr* nlh) {
    nlattr* a[CTRL_ATTR_MAX + 1] = {};
    if (!genlmsg_valid_hdr(nlh, 0) ||
        genlmsg_parse(nlh, 0, a, CTRL_ATTR_MAX, nullptr) < 0 ||
        a[CTRL_ATTR_FAMILY_NAME] == nullptr) {
      return;
    }
    const nlattr* name = a[CTRL_ATTR_FAMILY_NAME];
    const char* text = static_cast<const char*>(nla_data(name));
    if (std::string_view(text, strnlen(text, nla_len(name))) != CVM_GENL_NAME) {
      return;
    }
    const auto* g = static_cast<const genlmsghdr*>(nlmsg_data(nlh));
    if (g->cmd == CTRL_CMD_DELFAMILY) {
      if (events) {
        LogWarn(
            "path events: cvm.ko unregistered its family; waiting for "
            "it to come back");
      }
      SetListening(std::nullopt);
      problem.clear();
    } else if (g->cmd == CTRL_CMD_NEWFAMILY ||
               g->cmd == CTRL_CMD_NEWMCAST_GRP) {
      recheck_now = true;
    }
  }
};

PathEventSubscriber::PathEventSubscriber(Callback callback, Options options)
    : callback_(std::move(callback)),
      options_(options),
      socket_(std::make_unique<Socket>(*this)) {}

PathEventSubscriber::~PathEventSubscriber() { Stop(); }

Status PathEventSubscriber::Start() {
  std::lock_guard lock(start_stop_mutex_);
  if (thread_.joinable() || wake_fd_.valid()) {
    return Internal("path event subscriber started twice");
  }
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) {
    return Internal(fmt::format("eventfd: {}", std::strerror(errno)));
  }
  wake_fd_ = std::move(wake);
  socket_->Check();
  thread_ = std::thread(&PathEventSubscriber::Run, this);
  return {};
}

void PathEventSubscriber::Stop() {
  std::lock_guard lock(start_stop_mutex_);
  if (!thread_.joinable()) return;
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
  thread_.join();
}

void PathEventSubscriber::Run() {
  using Clock = std::chrono::steady_clock;
  Socket& s = *socket_;
  const auto interval = [&] {
    return s.events ? options_.recheck : options_.retry;
  };
  auto next_check = Clock::now() + interval();
  while (true) {
    pollfd fds[2] = {
        {wake_fd_.get(), POLLIN, 0},
        {s.open() ? nl_socket_get_fd(s.sock.get()) : -1, POLLIN, 0}};
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        next_check - Clock::now());
    const int timeout = s.recheck_now
                            ? 0
                            : static_cast<int>(std::max<int64_t>(
                                  0, std::min<int64_t>(wait.count(), 60000)));
    const int ready = ::poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR) {
      LogError("path events: poll failed: {}; stopping", std::strerror(errno));
      break;
    }
    if (ready > 0 && (fds[0].revents & POLLIN)) break;
    if (ready > 0 && fds[1].revents != 0 && !s.Drain()) {
      s.Close();
      next_check = Clock::now() + options_.retry;
      continue;
    }
    if (s.recheck_now || Clock::now() >= next_check) {
      s.Check();
      next_check = Clock::now() + interval();
    }
  }
  s.Close();
}

}  // namespace cvm
