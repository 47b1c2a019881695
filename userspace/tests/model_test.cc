#include "model.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace cvm {
namespace {

using nlohmann::json;

Volume GoodVolume() {
  Volume v;
  v.id = 1;
  v.name = "vol1";
  v.pool_id = 1;
  v.size = 10 * GiB;
  return v;
}

TEST(ValidateNameTest, AcceptsIdentifiersAndRefusesTheRest) {
  EXPECT_OK(ValidateName("volume", "db-01.data_x"));
  EXPECT_ERROR(ValidateName("volume", ""), Code::kInvalidArgument,
               "must not be empty");
  EXPECT_ERROR(ValidateName("volume", std::string(64, 'a')),
               Code::kInvalidArgument, "too long");
  EXPECT_ERROR(ValidateName("volume", "a b"), Code::kInvalidArgument,
               "volume name 'a b' is invalid");
  EXPECT_ERROR(ValidateName("pool", "x/y"), Code::kInvalidArgument, "invalid");
  EXPECT_ERROR(ValidateName("pool", "-x"), Code::kInvalidArgument,
               "must start with a letter or digit");
  EXPECT_ERROR(ValidateName("host", "a\x1b[31m"), Code::kInvalidArgument,
               "\\x1b");
}

TEST(PolicyTest, ParsesBothForms) {
  EXPECT_EQ(*ParsePolicy("replicated:3"), Policy::Replicated(3));
  EXPECT_EQ(*ParsePolicy("ec:4,2"), Policy::Erasure(4, 2));
  EXPECT_EQ(*ParsePolicy("ec:8+4"), Policy::Erasure(8, 4));
  EXPECT_EQ(ToString(Policy::Erasure(4, 2)), "ec:4,2");
  EXPECT_EQ(*PolicyFromJson(json{{"type", "ec"}, {"k", 2}, {"m", 1}},
                            Code::kInvalidArgument),
            Policy::Erasure(2, 1));
}

TEST(PolicyTest, EnforcesRanges) {
  EXPECT_ERROR(ParsePolicy("replicated:0"), Code::kInvalidArgument,
               "1 to 5 replicas");
  EXPECT_ERROR(ParsePolicy("replicated:6"), Code::kInvalidArgument,
               "1 to 5 replicas");
  EXPECT_ERROR(ParsePolicy("ec:1,1"), Code::kInvalidArgument, "k in 2..8");
  EXPECT_ERROR(ParsePolicy("ec:9,1"), Code::kInvalidArgument, "k in 2..8");
  EXPECT_ERROR(ParsePolicy("ec:4,0"), Code::kInvalidArgument, "m in 1..4");
  EXPECT_ERROR(ParsePolicy("ec:4,5"), Code::kInvalidArgument, "m in 1..4");
  EXPECT_ERROR(ParsePolicy("mirror:2"), Code::kInvalidArgument, "malformed");
  EXPECT_ERROR(ParsePolicy("ec:4"), Code::kInvalidArgument, "malformed");
  EXPECT_ERROR(PolicyFromJson(json{{"type", "raid"}}, Code::kInvalidArgument),
               Code::kInvalidArgument, "not replicated or ec");
}

TEST(ValidateVolumeTest, ChecksSizesAndGeometry) {
  EXPECT_OK(ValidateVolume(GoodVolume()));
  Volume v = GoodVolume();
  v.size = 0;
  EXPECT_ERROR(ValidateVolume(v), Code::kInvalidArgument, "must be > 0");
  v.size = 1000;
  EXPECT_ERROR(ValidateVolume(v), Code::kInvalidArgument, "512-byte sector");
  v = GoodVolume();
  v.object_size = 3 * MiB;
  EXPECT_ERROR(ValidateVolume(v), Code::kInvalidArgument, "power of two");
  v.object_size = 32 * KiB;
  EXPECT_ERROR(ValidateVolume(v), Code::kInvalidArgument,
               "from 64 KiB to 64 MiB");
  v.object_size = 128 * MiB;
  EXPECT_ERROR(ValidateVolume(v), Code::kInvalidArgument,
               "from 64 KiB to 64 MiB");
  v = GoodVolume();
  v.stripe_unit = 8 * MiB;
  EXPECT_ERROR(ValidateVolume(v), Code::kInvalidArgument, "stripe unit");
}

TEST(ValidatePoolTest, ChecksPgNum) {
  Pool p;
  p.name = "p";
  EXPECT_OK(ValidatePool(p));
  p.pg_num = 100;
  EXPECT_ERROR(ValidatePool(p), Code::kInvalidArgument, "power of two");
  p.pg_num = 65536;
  EXPECT_ERROR(ValidatePool(p), Code::kInvalidArgument, "power of two");
  p.pg_num = 0;
  EXPECT_ERROR(ValidatePool(p), Code::kInvalidArgument, "power of two");
}

TEST(ValidateHostAndDeviceTest, ChecksFields) {
  Host h;
  h.name = "h1";
  EXPECT_ERROR(ValidateHost(h), Code::kInvalidArgument, "at least one address");
  h.addresses = {"10.0.0.1:7800", "[fe80::1]:7800"};
  EXPECT_OK(ValidateHost(h));
  h.addresses = {"10.0.0.1 7800"};
  EXPECT_ERROR(ValidateHost(h), Code::kInvalidArgument, "address");
  Device d;
  d.path = "/dev/nvme0n1";
  d.capacity = GiB;
  EXPECT_OK(ValidateDevice(d));
  d.path = "nvme0n1";
  EXPECT_ERROR(ValidateDevice(d), Code::kInvalidArgument, "absolute path");
  d.path = "/dev/x";
  d.weight = 0;
  EXPECT_ERROR(ValidateDevice(d), Code::kInvalidArgument, "weight");
}

TEST(DecodeTest, RoundTripsEveryKind) {
  Volume v = GoodVolume();
  auto decoded = DecodeVolume(Encode(ToJson(v)));
  ASSERT_OK(decoded);
  EXPECT_EQ(decoded->name, "vol1");
  EXPECT_EQ(decoded->size, 10 * GiB);

  Pool p;
  p.id = 4;
  p.name = "ec";
  p.policy = Policy::Erasure(4, 2);
  p.failure_domain = FailureDomain::kRack;
  auto pool = DecodePool(Encode(ToJson(p)));
  ASSERT_OK(pool);
  EXPECT_EQ(pool->policy, Policy::Erasure(4, 2));
  EXPECT_EQ(pool->failure_domain, FailureDomain::kRack);
  EXPECT_EQ(pool->min_size, 0u);

  p.min_size = 6;
  EXPECT_EQ(DecodePool(Encode(ToJson(p)))->min_size, 6u);
  // A record from before min_size existed reads as the default.
  json old = ToJson(p);
  old.erase("min_size");
  old.erase("effective_min_size");
  EXPECT_EQ(DecodePool(Encode(old))->min_size, 0u);
  old["min_size"] = 1;  // below k
  EXPECT_FALSE(DecodePool(Encode(old)).ok());
}

TEST(DecodeTest, PathStateRoundTripsAndRefusesBadFields) {
  PathState p{3, false, 1700000000, 7, "[::1]:7001"};
  auto decoded = DecodePathState(Encode(ToJson(p)));
  ASSERT_OK(decoded);
  EXPECT_EQ(*decoded, p);
  p.up = true;
  EXPECT_EQ(*DecodePathState(Encode(ToJson(p))), p);

  json j = ToJson(p);
  j["state"] = true;
  EXPECT_ERROR(DecodePathState(j.dump()), Code::kCorruption, "'state' must be");
  j = ToJson(p);
  j["device_id"] = 0;
  EXPECT_ERROR(DecodePathState(j.dump()), Code::kCorruption, "device_id 0");
  j = ToJson(p);
  j.erase("stale_objects");
  EXPECT_ERROR(DecodePathState(j.dump()), Code::kCorruption, "required");
  j = ToJson(p);
  j["address"] = std::string(64, 'a');
  EXPECT_ERROR(DecodePathState(j.dump()), Code::kCorruption, "1 to 63");
  j = ToJson(p);
  j["address"] = "a\x1b[31m";
  EXPECT_ERROR(DecodePathState(j.dump()), Code::kCorruption, "non-printable");
}

TEST(DecodeTest, RefusesCorruptRecordsWithAReason) {
  EXPECT_ERROR(DecodeVolume("{not json"), Code::kCorruption, "not valid JSON");
  EXPECT_ERROR(DecodeVolume(""), Code::kCorruption, "not valid JSON");
  EXPECT_ERROR(DecodeVolume("[1,2]"), Code::kCorruption, "not an object");
  EXPECT_ERROR(DecodeVolume(std::string("\xff\xfe\x00\x01", 4)),
               Code::kCorruption, "not valid JSON");

  json j = ToJson(GoodVolume());
  j.erase("size");
  EXPECT_ERROR(DecodeVolume(j.dump()), Code::kCorruption, "'size' is required");
  j = ToJson(GoodVolume());
  j["size"] = "big";
  EXPECT_ERROR(DecodeVolume(j.dump()), Code::kCorruption, "'size' must be");
  j = ToJson(GoodVolume());
  j["object_size"] = 12345;
  EXPECT_ERROR(DecodeVolume(j.dump()), Code::kCorruption, "object size");
  j = ToJson(GoodVolume());
  j["provisioning"] = "fat";
  EXPECT_ERROR(DecodeVolume(j.dump()), Code::kCorruption, "provisioning 'fat'");
  j = ToJson(GoodVolume());
  j["extra"] = 1;
  EXPECT_ERROR(DecodeVolume(j.dump()), Code::kCorruption,
               "unknown volume record field");
  j = ToJson(GoodVolume());
  j["id"] = 0;
  EXPECT_ERROR(DecodeVolume(j.dump()), Code::kCorruption, "must be > 0");
  EXPECT_ERROR(
      DecodePool(R"({"id":1,"name":"p","policy":{"type":"ec","k":40,"m":2},
      "failure_domain":"host","pg_num":64,"device_class":"","created":0})"),
      Code::kCorruption, "k in 2..8");
  EXPECT_ERROR(DecodeHost(R"({"id":1})"), Code::kCorruption, "required");
  EXPECT_ERROR(DecodeDevice("null"), Code::kCorruption, "not an object");
  EXPECT_ERROR(
      DecodeMapEpoch(
          R"({"epoch":0,"created":1,"reason":"","map_size":0,"map_crc":0,"problem":"","left_out":[]})"),
      Code::kCorruption, "epoch 0");
}

}  // namespace
}  // namespace cvm
