#include "netlink_client.h"

#include <fmt/format.h>
#include <linux/cvm.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>
#include <sys/socket.h>

#include <array>
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
