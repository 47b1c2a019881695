#include "netlink_client.h"

#include <gtest/gtest.h>
#include <linux/cvm.h>
#include <linux/netlink.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <cstring>
#include <memory>

#include "test_util.h"

namespace cvm {
namespace {

using NlMsg = std::unique_ptr<nl_msg, decltype(&nlmsg_free)>;

// Builds a CVM_CMD_STATUS_GET reply the way the kernel module would; each
// field can be left out or broken.
struct ReplyBuilder {
  uint32_t role = CVM_ROLE_INITIATOR;
  const char* version = "0.1.0";
  bool with_objects = true;
  bool short_epoch = false;
  bool with_status = true;

  NlMsg Build() const {
    NlMsg msg(nlmsg_alloc(), &nlmsg_free);
    genlmsg_put(msg.get(), 0, 0, 0x20, 0, 0, CVM_CMD_STATUS_GET,
                CVM_GENL_VERSION);
    if (!with_status) return msg;
    nlattr* nest = nla_nest_start(msg.get(), CVM_ATTR_STATUS);
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_ROLE, role);
    nla_put_string(msg.get(), CVM_STATUS_ATTR_MODULE_VERSION, version);
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_GENL_VERSION, CVM_GENL_VERSION);
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_WIRE_VERSION, 1);
    if (short_epoch) {
      nla_put_u32(msg.get(), CVM_STATUS_ATTR_MAP_EPOCH, 7);
    } else {
      nla_put_u64(msg.get(), CVM_STATUS_ATTR_MAP_EPOCH, 7);
    }
    if (with_objects) nla_put_u32(msg.get(), CVM_STATUS_ATTR_OBJECTS, 3);
    nla_nest_end(msg.get(), nest);
    return msg;
  }
};

TEST(NetlinkStatusTest, ModulesAbsentHereReportNotLoaded) {
  for (const char* family : {CVM_GENL_NAME, CVM_TARGET_GENL_NAME}) {
    auto status = QueryModuleStatus(family);
    if (!status.ok() && status.status().code() == Code::kUnavailable) {
      GTEST_SKIP() << "no generic netlink here: " << status.status().message();
    }
    ASSERT_OK(status);
    EXPECT_FALSE(status->loaded) << family << " is loaded on the build host?";
    EXPECT_EQ(status->family, family);
    EXPECT_EQ(ToJson(*status)["loaded"], false);
  }
}

TEST(NetlinkStatusTest, ParsesAWellFormedReply) {
  NlMsg msg = ReplyBuilder().Build();
  auto s = ParseStatusReply(nlmsg_hdr(msg.get()), CVM_GENL_NAME);
  ASSERT_OK(s);
  EXPECT_TRUE(s->loaded);
  EXPECT_EQ(s->module_version, "0.1.0");
  EXPECT_EQ(s->map_epoch, 7u);
  EXPECT_EQ(s->objects, 3u);
  EXPECT_EQ(ToJson(*s)["role"], "initiator");
}

TEST(NetlinkStatusTest, RefusesRepliesThatBreakTheContract) {
  ReplyBuilder missing;
  missing.with_objects = false;
  EXPECT_ERROR(
      ParseStatusReply(nlmsg_hdr(missing.Build().get()), CVM_GENL_NAME),
      Code::kBadRequest, "missing CVM_STATUS_ATTR_OBJECTS");

  ReplyBuilder short_epoch;
  short_epoch.short_epoch = true;
  EXPECT_FALSE(
      ParseStatusReply(nlmsg_hdr(short_epoch.Build().get()), CVM_GENL_NAME)
          .ok());

  ReplyBuilder wrong_role;
  wrong_role.role = CVM_ROLE_INITIATOR;
  EXPECT_ERROR(ParseStatusReply(nlmsg_hdr(wrong_role.Build().get()),
                                CVM_TARGET_GENL_NAME),
               Code::kBadRequest, "wrong module");

  ReplyBuilder long_version;
  const std::string v(40, 'v');
  long_version.version = v.c_str();
  EXPECT_FALSE(
      ParseStatusReply(nlmsg_hdr(long_version.Build().get()), CVM_GENL_NAME)
          .ok());

  ReplyBuilder no_status;
  no_status.with_status = false;
  EXPECT_ERROR(
      ParseStatusReply(nlmsg_hdr(no_status.Build().get()), CVM_GENL_NAME),
      Code::kBadRequest, "no CVM_ATTR_STATUS");
}

TEST(MapChunkTest, SplitsInOrderAndMarksTheLast) {
  EXPECT_EQ(SplitMapChunks(100, CVM_MAP_CHUNK_MAX),
            (std::vector<MapChunk>{{0, 100, true}}));
  EXPECT_EQ(SplitMapChunks(CVM_MAP_CHUNK_MAX, CVM_MAP_CHUNK_MAX),
            (std::vector<MapChunk>{{0, CVM_MAP_CHUNK_MAX, true}}));
  const size_t len = 2 * CVM_MAP_CHUNK_MAX + 7;
  auto chunks = SplitMapChunks(len, CVM_MAP_CHUNK_MAX);
  ASSERT_EQ(chunks.size(), 3u);
  uint32_t next = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].offset, next);  // each starts where the last ended
    EXPECT_LE(chunks[i].length, CVM_MAP_CHUNK_MAX);
    EXPECT_EQ(chunks[i].last, i + 1 == chunks.size());
    next += chunks[i].length;
  }
  EXPECT_EQ(next, len);
  EXPECT_EQ(chunks.back().length, 7u);
}

// An NLMSG_ERROR as the kernel sends it with NETLINK_EXT_ACK and
// NETLINK_CAP_ACK: the error, the request's header, then NLMSGERR_ATTR_MSG.
std::vector<char> ErrorWithExtack(int error, const std::string& text,
                                  bool capped) {
  const size_t payload = capped ? 0 : 8;  // an echoed request payload
  std::vector<char> buf(512, 0);
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
  nlh->nlmsg_type = NLMSG_ERROR;
  nlh->nlmsg_flags = NLM_F_ACK_TLVS | (capped ? NLM_F_CAPPED : 0);
  auto* e = reinterpret_cast<nlmsgerr*>(buf.data() + NLMSG_HDRLEN);
  e->error = -error;
  e->msg.nlmsg_len = NLMSG_HDRLEN + 8;
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr) + payload;
  auto* a = reinterpret_cast<nlattr*>(buf.data() + off);
  a->nla_type = NLMSGERR_ATTR_MSG;
  a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + text.size() + 1);
  std::memcpy(buf.data() + off + NLA_HDRLEN, text.c_str(), text.size() + 1);
  off += NLA_ALIGN(a->nla_len);
  nlh->nlmsg_len = static_cast<uint32_t>(off);
  return buf;
}

TEST(ExtackTest, MessageIsFoundCappedOrNot) {
  for (bool capped : {true, false}) {
    auto buf = ErrorWithExtack(EEXIST, "device id 3 is served already", capped);
    EXPECT_EQ(ExtackMessage(reinterpret_cast<nlmsghdr*>(buf.data())),
              "device id 3 is served already");
  }
}

TEST(ExtackTest, MalformedOrAbsentGivesNothing) {
  auto buf = ErrorWithExtack(EINVAL, "x", true);
  auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data());
  nlh->nlmsg_flags = 0;  // no TLVs
  EXPECT_EQ(ExtackMessage(nlh), "");
  nlh->nlmsg_flags = NLM_F_ACK_TLVS | NLM_F_CAPPED;
  nlh->nlmsg_len = NLMSG_HDRLEN + 2;  // truncated
  EXPECT_EQ(ExtackMessage(nlh), "");
  EXPECT_EQ(ExtackMessage(nullptr), "");
}

TEST(ErrnoTest, KernelRefusalsMapToCodes) {
  EXPECT_EQ(CodeFromErrno(EEXIST), Code::kAlreadyExists);
  EXPECT_EQ(CodeFromErrno(ENODEV), Code::kNotFound);
  EXPECT_EQ(CodeFromErrno(EBUSY), Code::kInUse);
  EXPECT_EQ(CodeFromErrno(ESTALE), Code::kInvalidArgument);
}

// The build host never has the modules: every request says which is missing.
TEST(NetlinkKernelTest, AbsentModulesAreNamed) {
  auto probe = QueryModuleStatus(CVM_GENL_NAME);
  if (!probe.ok() || probe->loaded) GTEST_SKIP() << "cvm.ko present here";
  NetlinkKernel k;
  auto list = k.VolumeList();
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), Code::kUnavailable);
  EXPECT_EQ(list.status().message(), "cvm module not loaded");
  const std::string blob(100, 'x');
  MapSetRequest req;
  req.blob = blob;
  EXPECT_EQ(k.MapSet(req).message(), "cvm module not loaded");
  EXPECT_EQ(k.VolumeDetach(1, false).message(), "cvm module not loaded");
  EXPECT_EQ(k.TargetDeviceAdd(1, "/dev/ram0", true, false).message(),
            "cvm_target module not loaded");
  EXPECT_EQ(k.TargetListen({"127.0.0.1", 7001}).message(),
            "cvm_target module not loaded");
}

TEST(NetlinkKernelTest, BadArgumentsAreRefusedBeforeSending) {
  NetlinkKernel k;
  EXPECT_EQ(k.TargetListen({"storage1", 7001}).code(), Code::kInvalidArgument);
  MapSetRequest req;
  EXPECT_EQ(k.MapSet(req).code(), Code::kInvalidArgument);  // empty blob
  const std::string blob(10, 'x');
  req.blob = blob;
  req.token = "short";
  EXPECT_EQ(k.MapSet(req).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace cvm
