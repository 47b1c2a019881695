// Header encode/decode and validation of the userspace wire client; no
// server needed.

#include "wire_client.h"

#include <gtest/gtest.h>
#include <linux/cvm_wire.h>

namespace cvm::wire {
namespace {

class WireHeaderTest : public ::testing::Test {
 protected:
  Header Read4k() {
    Header h = MakeRequest(CVM_WIRE_OP_READ);
    h.tag = 5;
    h.volume_id = 7;
    h.object_no = 3;
    h.offset = 8192;
    h.length = 4096;
    return h;
  }
  // Encodes with a fresh CRC and checks as a request.
  std::optional<std::string> CheckSealed(Header h) {
    HeaderBytes b = Encode(h);
    return Check(DecodeRaw(b), false);
  }
};

TEST_F(WireHeaderTest, RoundTripKeepsEveryField) {
  Header h = Read4k();
  h.snap_id = 9;
  h.map_epoch = 11;
  h.attach_epoch = 12;
  h.shard = 2;
  HeaderBytes b = Encode(h);
  Header d = DecodeRaw(b);
  h.hdr_crc = d.hdr_crc;
  EXPECT_EQ(d, h);
  EXPECT_EQ(b[0], 'C');
  EXPECT_EQ(b[1], 'V');
  EXPECT_EQ(b[2], 'M');
  EXPECT_EQ(b[3], 'W');
  EXPECT_EQ(b[5], CVM_WIRE_OP_READ);
  EXPECT_TRUE(Decode(b, false).ok());
}

TEST_F(WireHeaderTest, Crc32cMatchesTheKnownVector) {
  const char* s = "123456789";
  EXPECT_EQ(Crc32c(std::span(reinterpret_cast<const uint8_t*>(s), 9)),
            0xE3069283u);
}

TEST_F(WireHeaderTest, RejectsEachMalformedClass) {
  struct Case {
    const char* why;
    void (*mutate)(Header&);
  } cases[] = {
      {"bad magic", [](Header& h) { h.magic ^= 1; }},
      {"bad version", [](Header& h) { h.version = CVM_WIRE_VERSION + 1; }},
      {"unknown opcode", [](Header& h) { h.opcode = 99; }},
      {"unknown flag bits", [](Header& h) { h.flags = 1U << 9; }},
      {"reply flag set on a request",
       [](Header& h) { h.flags = CVM_WIRE_F_REPLY; }},
      {"flag not allowed for this opcode",
       [](Header& h) { h.flags = CVM_WIRE_F_FUA; }},
      {"reserved field is not zero", [](Header& h) { h.reserved1 = 1; }},
      {"status is not zero in a request", [](Header& h) { h.status = 1; }},
      {"length is zero or above CVM_WIRE_MAX_DATA_LEN",
       [](Header& h) { h.length = CVM_WIRE_MAX_DATA_LEN + 512; }},
      {"shard out of range", [](Header& h) { h.shard = CVM_WIRE_MAX_SHARDS; }},
      {"offset or length not sector aligned", [](Header& h) { h.offset = 1; }},
      {"range beyond CVM_WIRE_MAX_OBJECT_SIZE",
       [](Header& h) { h.offset = CVM_WIRE_MAX_OBJECT_SIZE; }},
      {"snap_seq must be zero for this opcode",
       [](Header& h) { h.snap_seq = 1; }},
  };
  for (const Case& c : cases) {
    Header h = Read4k();
    c.mutate(h);
    auto why = CheckSealed(h);
    ASSERT_TRUE(why.has_value()) << c.why;
    EXPECT_EQ(*why, c.why);
  }
}

TEST_F(WireHeaderTest, RejectsABadHeaderCrc) {
  HeaderBytes b = Encode(Read4k());
  b[20] ^= 0xff;
  auto r = Decode(b, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("header CRC mismatch"),
            std::string::npos);
}

TEST_F(WireHeaderTest, RepliesAndRequestsAreDistinguished) {
  Header h = Read4k();
  h.flags = CVM_WIRE_F_REPLY;
  HeaderBytes b = Encode(h);
  EXPECT_TRUE(Check(DecodeRaw(b), true) == std::nullopt);
  EXPECT_TRUE(Check(DecodeRaw(b), false).has_value());
}

TEST_F(WireHeaderTest, HelloPayloadLayout) {
  Hello hello;
  hello.cluster_id = 0x0102030405060708ULL;
  hello.device_id = 0xaabbccdd;
  hello.nonce[0] = 0x5a;
  auto b = EncodeHello(hello);
  EXPECT_EQ(b[0], 0x08);
  EXPECT_EQ(b[20], 0xdd);
  EXPECT_EQ(b[23], 0xaa);
  EXPECT_EQ(b[32], 0x5a);
  // Version 2: the limits at 24 (requests) and 28 (bytes), both ways.
  hello.max_inflight = 0x1234;
  hello.max_data = 0x00200000;
  b = EncodeHello(hello);
  EXPECT_EQ(b[24], 0x34);
  EXPECT_EQ(b[25], 0x12);
  EXPECT_EQ(b[26], 0);
  EXPECT_EQ(b[30], 0x20);
  Hello back = DecodeHello(b);
  EXPECT_EQ(back.max_inflight, 0x1234);
  EXPECT_EQ(back.max_data, 0x00200000u);
  EXPECT_EQ(back.device_id, 0xaabbccddu);
  EXPECT_EQ(back.nonce, hello.nonce);
  // Version 3: the device instance at 64.
  hello.instance = 0x1122334455667788ULL;
  b = EncodeHello(hello);
  EXPECT_EQ(b.size(), 112u);
  EXPECT_EQ(b[64], 0x88);
  EXPECT_EQ(b[71], 0x11);
  EXPECT_EQ(DecodeHello(b).instance, hello.instance);
  // Version 5: key id at 72, proof at 80.
  hello.key_id = 0x01020304;
  hello.proof[31] = 0x77;
  b = EncodeHello(hello);
  EXPECT_EQ(b[72], 0x04);
  EXPECT_EQ(b[111], 0x77);
  EXPECT_EQ(DecodeHello(b).key_id, hello.key_id);
  EXPECT_EQ(DecodeHello(b).proof, hello.proof);
  Header h = MakeRequest(CVM_WIRE_OP_HELLO);
  h.length = kHelloLen;
  EXPECT_EQ(CheckSealed(h), std::nullopt);
  h.length = 8;
  EXPECT_TRUE(CheckSealed(h).has_value());
}

}  // namespace
}  // namespace cvm::wire
