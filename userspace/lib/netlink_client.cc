#include "netlink_client.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/cvm.h>
#include <linux/cvm_wire.h>
#include <linux/netlink.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>

#include "json_fields.h"

namespace cvm {
namespace {

using NlSock = std::unique_ptr<nl_sock, decltype(&nl_socket_free)>;
using NlMsg = std::unique_ptr<nl_msg, decltype(&nlmsg_free)>;

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
          {"objects", s.objects}};
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
  NlSock sock(nl_socket_alloc(), &nl_socket_free);
  if (!sock) return Internal("nl_socket_alloc failed");
  int err = genl_connect(sock.get());
  if (err < 0) {
    return Unavailable(fmt::format("cannot open a generic netlink socket: {}",
                                   nl_geterror(err)));
  }
  // Never wait on the kernel forever.
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(nl_socket_get_fd(sock.get()), SOL_SOCKET, SO_RCVTIMEO, &tv,
             sizeof(tv));

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
  err = nl_send_auto(sock.get(), msg.get());
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
    c.sock_.reset(nl_socket_alloc());
    if (!c.sock_) return Internal("nl_socket_alloc failed");
    int err = genl_connect(c.sock_.get());
    if (err < 0) {
      return Unavailable(fmt::format("cannot open a generic netlink socket: {}",
                                     nl_geterror(err)));
    }
    const int fd = nl_socket_get_fd(c.sock_.get());
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
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
  if (!r.token.empty() && r.token.size() != CVM_WIRE_TOKEN_LEN) {
    return InvalidArgument(fmt::format("{}: the token must be {} bytes", kWhat,
                                       CVM_WIRE_TOKEN_LEN));
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
      if (!r.token.empty() &&
          nla_put(m, CVM_ATTR_TOKEN, CVM_WIRE_TOKEN_LEN, r.token.data()) < 0) {
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
  if (!l.token.empty() && l.token.size() != CVM_WIRE_TOKEN_LEN) {
    return InvalidArgument(fmt::format("{}: the token must be {} bytes", kWhat,
                                       CVM_WIRE_TOKEN_LEN));
  }
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
  if (!l.token.empty() &&
      (nla_put_u64(m, CVM_ATTR_CLUSTER_ID, l.cluster_id) < 0 ||
       nla_put(m, CVM_ATTR_TOKEN, CVM_WIRE_TOKEN_LEN, l.token.data()) < 0)) {
    return PutFailed(kWhat);
  }
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

}  // namespace cvm
