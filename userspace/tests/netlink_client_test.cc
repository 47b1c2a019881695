#include "netlink_client.h"

#include <gtest/gtest.h>
#include <linux/cvm.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

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

}  // namespace
}  // namespace cvm
