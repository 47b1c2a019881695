#include "netlink_client.h"

#include <gtest/gtest.h>
#include <linux/cvm.h>
#include <linux/netlink.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <thread>

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

TEST(NetlinkStatusTest, StaleCountIsOptionalButExactWhenPresent) {
  NlMsg plain = ReplyBuilder().Build();
  auto s = ParseStatusReply(nlmsg_hdr(plain.get()), CVM_GENL_NAME);
  ASSERT_OK(s);
  EXPECT_FALSE(s->stale_objects.has_value());
  EXPECT_TRUE(ToJson(*s)["stale_objects"].is_null());

  // The attribute goes at the end of the nest, so re-open it.
  const auto with_stale = [](int width) {
    NlMsg msg(nlmsg_alloc(), &nlmsg_free);
    genlmsg_put(msg.get(), 0, 0, 0x20, 0, 0, CVM_CMD_STATUS_GET,
                CVM_GENL_VERSION);
    nlattr* nest = nla_nest_start(msg.get(), CVM_ATTR_STATUS);
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_ROLE, CVM_ROLE_INITIATOR);
    nla_put_string(msg.get(), CVM_STATUS_ATTR_MODULE_VERSION, "0.1.0");
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_GENL_VERSION, CVM_GENL_VERSION);
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_WIRE_VERSION, 1);
    nla_put_u64(msg.get(), CVM_STATUS_ATTR_MAP_EPOCH, 7);
    nla_put_u32(msg.get(), CVM_STATUS_ATTR_OBJECTS, 3);
    if (width == 8) {
      nla_put_u64(msg.get(), CVM_STATUS_ATTR_STALE_OBJECTS, 42);
    } else {
      nla_put_u32(msg.get(), CVM_STATUS_ATTR_STALE_OBJECTS, 42);
    }
    nla_nest_end(msg.get(), nest);
    return msg;
  };
  NlMsg good = with_stale(8);
  s = ParseStatusReply(nlmsg_hdr(good.get()), CVM_GENL_NAME);
  ASSERT_OK(s);
  EXPECT_EQ(s->stale_objects, 42u);
  EXPECT_EQ(ToJson(*s)["stale_objects"], 42);
  NlMsg narrow = with_stale(4);
  EXPECT_FALSE(ParseStatusReply(nlmsg_hdr(narrow.get()), CVM_GENL_NAME).ok());
}

// Builds a CVM_CMD_EVENT_PATH_DOWN/_UP multicast as cvm_genl_path_event()
// does; each attribute can be left out or given the wrong shape.
struct EventBuilder {
  uint8_t cmd = CVM_CMD_EVENT_PATH_DOWN;
  bool with_event = true;
  bool with_device = true;
  bool short_device = false;  // u16 instead of u32
  bool with_addr = true;
  std::string addr = "127.0.0.1:7001";
  bool addr_nul = true;  // false: the bytes without their NUL
  bool with_stale = true;
  bool short_stale = false;  // u32 instead of u64
  bool event_not_nested = false;

  NlMsg Build() const {
    NlMsg msg(nlmsg_alloc(), &nlmsg_free);
    genlmsg_put(msg.get(), 0, 0, 0x21, 0, 0, cmd, CVM_GENL_VERSION);
    nl_msg* m = msg.get();
    if (!with_event) return msg;
    if (event_not_nested) {
      nla_put_u32(m, CVM_ATTR_EVENT, 1);
      return msg;
    }
    nlattr* nest = nla_nest_start(m, CVM_ATTR_EVENT | NLA_F_NESTED);
    if (with_device) {
      if (short_device) {
        nla_put_u16(m, CVM_EVENT_ATTR_DEVICE_ID, 1);
      } else {
        nla_put_u32(m, CVM_EVENT_ATTR_DEVICE_ID, 1);
      }
    }
    if (with_addr) {
      if (addr_nul) {
        nla_put_string(m, CVM_EVENT_ATTR_ADDR, addr.c_str());
      } else {
        nla_put(m, CVM_EVENT_ATTR_ADDR, static_cast<int>(addr.size()),
                addr.data());
      }
    }
    if (with_stale) {
      if (short_stale) {
        nla_put_u32(m, CVM_EVENT_ATTR_STALE_OBJECTS, 7);
      } else {
        nla_put_u64(m, CVM_EVENT_ATTR_STALE_OBJECTS, 7);
      }
    }
    nla_nest_end(m, nest);
    return msg;
  }
};

Result<PathEvent> Parse(const EventBuilder& b) {
  NlMsg msg = b.Build();
  return ParsePathEvent(nlmsg_hdr(msg.get()));
}

TEST(PathEventTest, ParsesDownAndUp) {
  auto down = Parse(EventBuilder());
  ASSERT_OK(down);
  EXPECT_EQ(*down, (PathEvent{PathEventKind::kDown, 1, "127.0.0.1:7001", 7}));
  EXPECT_EQ(ToString(down->kind), "down");

  EventBuilder up;
  up.cmd = CVM_CMD_EVENT_PATH_UP;
  up.addr = "[::1]:7001";
  auto parsed = Parse(up);
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->kind, PathEventKind::kUp);
  EXPECT_EQ(parsed->address, "[::1]:7001");
  EXPECT_EQ(ToString(parsed->kind), "up");
}

TEST(PathEventTest, RefusesMalformedEventsWithAReason) {
  EXPECT_ERROR(ParsePathEvent(nullptr), Code::kBadRequest, "empty message");

  EventBuilder b;
  b.cmd = CVM_CMD_STATUS_GET;
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "unexpected command 1");

  b = EventBuilder();
  b.with_event = false;
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "no CVM_ATTR_EVENT");

  b = EventBuilder();
  b.event_not_nested = true;  // a u32 where the nest should be: no fields
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "missing CVM_EVENT_ATTR_");

  b = EventBuilder();
  b.with_device = false;
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "missing CVM_EVENT_ATTR_DEVICE_ID");
  b = EventBuilder();
  b.with_addr = false;
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "missing CVM_EVENT_ATTR_ADDR");
  b = EventBuilder();
  b.with_stale = false;
  EXPECT_ERROR(Parse(b), Code::kBadRequest,
               "missing CVM_EVENT_ATTR_STALE_OBJECTS");

  b = EventBuilder();
  b.short_device = true;
  EXPECT_ERROR(Parse(b), Code::kBadRequest,
               "CVM_EVENT_ATTR_DEVICE_ID has 2 bytes");
  b = EventBuilder();
  b.short_stale = true;
  EXPECT_ERROR(Parse(b), Code::kBadRequest,
               "CVM_EVENT_ATTR_STALE_OBJECTS has 4 bytes");

  b = EventBuilder();
  b.addr_nul = false;
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "CVM_EVENT_ATTR_ADDR must be");
  b = EventBuilder();
  b.addr = "";
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "CVM_EVENT_ATTR_ADDR must be");
  b = EventBuilder();
  b.addr = std::string(CVM_PATH_ADDR_LEN + 8, 'a');  // one over, with NUL
  EXPECT_ERROR(Parse(b), Code::kBadRequest, "CVM_EVENT_ATTR_ADDR must be");
  b.addr.pop_back();  // exactly the kernel's buffer
  EXPECT_OK(Parse(b));
}

TEST(PathEventTest, TruncatedMessagesAreRefusedNotRead) {
  NlMsg msg = EventBuilder().Build();
  nlmsghdr* nlh = nlmsg_hdr(msg.get());
  // No room for the genetlink header.
  nlmsghdr bare = *nlh;
  bare.nlmsg_len = NLMSG_HDRLEN;
  EXPECT_ERROR(ParsePathEvent(&bare), Code::kBadRequest,
               "truncated genetlink header");
  // The message claims fewer bytes than its attributes take: the cut one
  // is not parsed, the event lacks its fields.
  const uint32_t full = nlh->nlmsg_len;
  nlh->nlmsg_len = full - 12;
  EXPECT_FALSE(ParsePathEvent(nlh).ok());
  nlh->nlmsg_len = full;
  EXPECT_OK(ParsePathEvent(nlh));
}

TEST(PathEventSubscriberTest, WithoutTheModuleItWaitsAndStopsPromptly) {
  std::atomic<int> events{0};
  PathEventSubscriber::Options options;
  options.retry = std::chrono::milliseconds(50);
  PathEventSubscriber sub([&](const PathEvent&) { ++events; }, options);
  ASSERT_OK(sub.Start());
  EXPECT_EQ(sub.Start().code(), Code::kInternal);               // once only
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // retries
  EXPECT_FALSE(sub.listening()) << "cvm.ko is loaded on the build host?";
  const auto before = std::chrono::steady_clock::now();
  sub.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));
  sub.Stop();  // idempotent
  EXPECT_EQ(events.load(), 0);
  EXPECT_EQ(sub.delivered(), 0u);
}

TEST(PathEventSubscriberTest, DestructorStopsTheThread) {
  PathEventSubscriber::Options options;
  options.retry = std::chrono::hours(1);  // only the wake-up can end the wait
  auto sub =
      std::make_unique<PathEventSubscriber>([](const PathEvent&) {}, options);
  ASSERT_OK(sub->Start());
  const auto before = std::chrono::steady_clock::now();
  sub.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));
}

TEST(PathEventSubscriberTest, NeverStartedIsFine) {
  PathEventSubscriber sub([](const PathEvent&) {});
  sub.Stop();
  EXPECT_FALSE(sub.listening());
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
  req.host_key = "short";
  EXPECT_EQ(k.MapSet(req).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace cvm
