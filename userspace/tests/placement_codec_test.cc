// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// Map codec (kernel/common/map_codec.c): round trip, and refusal of every
// class of damaged or hostile blob with a reason.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../tools/map_builder.h"

namespace cvm::tools {
namespace {

class MapCodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    builder_.epoch = 0x1122334455667788ull;
    builder_.AddTree(3, 4, 5);
    builder_.device(7).weight = 3 * kWeightOne + 5;
    builder_.device(9).state = CVM_DEV_UP;
    builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 1024);
    builder_.AddPool(9, CVM_POOL_EC, 2, 1, CVM_TYPE_RACK, 64);
    ASSERT_EQ(builder_.Build(&map_, nullptr), 0);
    blob_ = Encode(map_.get());
    ASSERT_FALSE(blob_.empty());
    buckets_at_ = CVM_MAP_HEADER_LEN + map_->nr_devices * CVM_MAP_DEVICE_LEN;
  }

  void FixCrc() {
    cvm_put_le32(blob_.data() + CVM_MAP_CRC_OFFSET,
                 cvm_map_blob_crc(blob_.data(), blob_.size()));
  }

  // blob_ as an earlier release wrote it: version 3 or 4, a 48-byte header
  // (no override count), no overrides.
  void MakeOldFormat(uint16_t version) {
    blob_.erase(blob_.begin() + CVM_MAP_HEADER_LEN_V4,
                blob_.begin() + CVM_MAP_HEADER_LEN);
    blob_[4] = static_cast<uint8_t>(version);
    blob_[6] = CVM_MAP_HEADER_LEN_V4;
    Put32(8, static_cast<uint32_t>(blob_.size()));
    FixCrc();
  }

  void Put32(size_t at, uint32_t v) { cvm_put_le32(blob_.data() + at, v); }
  uint32_t Get32(size_t at) { return cvm_get_le32(blob_.data() + at); }

  void ExpectRefused(size_t len, int ret, const std::string &words) {
    cvm_map *map = nullptr;
    cvm_err err{};
    EXPECT_EQ(cvm_map_decode(blob_.data(), len, &map, &err), ret);
    EXPECT_EQ(map, nullptr);
    cvm_map_free(map);
    ASSERT_NE(err.why, nullptr);
    EXPECT_NE(std::string(err.why).find(words), std::string::npos)
        << "reason was: " << err.why;
  }
  void ExpectRefused(int ret, const std::string &words) {
    ExpectRefused(blob_.size(), ret, words);
  }

  MapBuilder builder_;
  MapPtr map_;
  std::vector<uint8_t> blob_;
  size_t buckets_at_ = 0;
};

TEST_F(MapCodecTest, RoundTripKeepsEverything) {
  cvm_map *raw = nullptr;
  cvm_err err{};
  ASSERT_EQ(cvm_map_decode(blob_.data(), blob_.size(), &raw, &err), 0)
      << err.why;
  MapPtr back(raw);
  EXPECT_EQ(back->epoch, map_->epoch);
  ASSERT_EQ(back->nr_devices, map_->nr_devices);
  ASSERT_EQ(back->nr_buckets, map_->nr_buckets);
  ASSERT_EQ(back->nr_pools, map_->nr_pools);
  for (uint32_t i = 0; i < back->nr_devices; i++) {
    EXPECT_EQ(back->devices[i].id, map_->devices[i].id);
    EXPECT_EQ(back->devices[i].weight, map_->devices[i].weight);
    EXPECT_EQ(back->devices[i].state, map_->devices[i].state);
  }
  for (uint32_t i = 0; i < back->nr_pools; i++)
    EXPECT_EQ(std::memcmp(&back->pools[i], &map_->pools[i], sizeof(cvm_pool)),
              0);
  for (uint32_t pool : {1u, 9u})
    EXPECT_EQ(PgTable(back.get(), pool), PgTable(map_.get(), pool));
  EXPECT_EQ(Encode(back.get()), blob_);
}

TEST_F(MapCodecTest, EncodeChecksItsArguments) {
  cvm_err err{};
  std::vector<uint8_t> small(blob_.size() - 1);
  EXPECT_EQ(cvm_map_encode(map_.get(), small.data(), small.size(), &err),
            -ENOSPC);
  EXPECT_NE(std::string(err.why).find("too small"), std::string::npos);
  MapPtr raw;
  ASSERT_EQ(builder_.Build(&raw, nullptr, false), 0);
  EXPECT_EQ(cvm_map_encode(raw.get(), small.data(), small.size(), &err),
            -EINVAL);
  EXPECT_STREQ(err.why, "map is not finalized");
}

TEST_F(MapCodecTest, EveryTruncationRefused) {
  for (size_t len = 0; len < blob_.size(); len++) {
    cvm_map *map = nullptr;
    ASSERT_EQ(cvm_map_decode(blob_.data(), len, &map, nullptr), -EBADMSG)
        << len;
  }
  ExpectRefused(CVM_MAP_HEADER_LEN - 1, -EBADMSG, "shorter than header");
  ExpectRefused(blob_.size() - 1, -EBADMSG, "truncated");
}

TEST_F(MapCodecTest, TrailingBytesRefused) {
  blob_.push_back(0);
  ExpectRefused(-EBADMSG, "trailing bytes");
}

TEST_F(MapCodecTest, HeaderFieldsChecked) {
  blob_[3] = 'X';
  ExpectRefused(-EBADMSG, "magic");
  blob_[3] = 'M';
  blob_[4] = CVM_MAP_VERSION_MIN - 1;  // version 2: no device classes
  ExpectRefused(-EPROTO, "version");
  blob_[4] = CVM_MAP_VERSION;
  blob_[6] = CVM_MAP_HEADER_LEN_V4;  // version 5's header is longer
  ExpectRefused(-EBADMSG, "header length");
  blob_[6] = CVM_MAP_HEADER_LEN;
  Put32(52, 1);
  FixCrc();
  ExpectRefused(-EBADMSG, "reserved");
  Put32(52, 0);
  Put32(48, CVM_MAX_OVERRIDES + 1);
  FixCrc();
  ExpectRefused(-E2BIG, "too many PG overrides");
  Put32(48, 1);  // an override the blob has no room for
  FixCrc();
  ExpectRefused(-EBADMSG, "does not match its counts");
  Put32(48, 0);
  Put32(40, 4);
  FixCrc();
  ExpectRefused(-EBADMSG, "flags");
  Put32(40, 0);
  Put32(44, 1);  // a pin the blob has no room for
  FixCrc();
  ExpectRefused(-EBADMSG, "does not match its counts");
  Put32(44, CVM_MAX_PINS + 1);
  FixCrc();
  ExpectRefused(-E2BIG, "too many pinned PGs");
  Put32(44, 0);
  MakeOldFormat(3);  // version 3 has no pins: the field is reserved
  Put32(44, 1);
  FixCrc();
  ExpectRefused(-EBADMSG, "reserved");
}

// Blobs of versions 3 and 4 (48-byte header, no overrides; version 3 no
// pins either), as earlier releases stored them, still decode.
TEST_F(MapCodecTest, VersionThreeAndFourBlobsStillDecode) {
  const std::vector<uint8_t> current = blob_;
  for (uint16_t version : {3, 4}) {
    blob_ = current;
    MakeOldFormat(version);
    cvm_map *raw = nullptr;
    cvm_err err{};
    ASSERT_EQ(cvm_map_decode(blob_.data(), blob_.size(), &raw, &err), 0)
        << version << ": " << err.why;
    MapPtr back(raw);
    EXPECT_EQ(back->nr_pins, 0u);
    EXPECT_EQ(back->nr_overrides, 0u);
    EXPECT_EQ(PgTable(back.get(), 1), PgTable(map_.get(), 1));
    ExpectRefused(CVM_MAP_HEADER_LEN_V4 - 1, -EBADMSG, "shorter than header");
  }
}

// Overrides travel in the map and change only the slots they name; a set
// that would put a device twice in a row is ignored whole; the decoder
// refuses overrides naming what the map does not have or cannot use.
TEST_F(MapCodecTest, OverridesRoundTripAndReplaceTheirSlotsOnly) {
  const std::vector<uint32_t> up = PgTable(map_.get(), 1);
  auto absent = [&](uint32_t pg) {  // a device not in PG pg's row
    for (uint32_t d = 0;; d++) {
      if (d != 9 &&
          std::find(&up[pg * 3], &up[pg * 3] + 3, d) == &up[pg * 3] + 3)
        return d;
    }
  };
  const uint32_t to5 = absent(5), to7 = absent(7);
  builder_.overrides = {{1, 5, 1, to5},
                        {1, 7, 0, up[7 * 3 + 1]},  // a device twice: ignored
                        {9, 3, 2, 0}};
  MapPtr map;
  cvm_err err{};
  ASSERT_EQ(builder_.Build(&map, &err), 0) << err.why;
  std::vector<uint8_t> blob = Encode(map.get());
  EXPECT_EQ(blob.size(), blob_.size() + 3 * CVM_MAP_OVERRIDE_LEN);
  cvm_map *raw = nullptr;
  ASSERT_EQ(cvm_map_decode(blob.data(), blob.size(), &raw, &err), 0) << err.why;
  MapPtr back(raw);
  ASSERT_EQ(back->nr_overrides, 3u);
  const std::vector<uint32_t> table = PgTable(back.get(), 1);
  for (uint32_t pg = 0; pg < 1024; pg++) {
    for (uint32_t s = 0; s < 3; s++) {
      EXPECT_EQ(table[pg * 3 + s], pg == 5 && s == 1 ? to5 : up[pg * 3 + s])
          << pg << "/" << s;
    }
  }
  // cvm_place_pg gives the overridden row (the up row), and a pin still
  // wins over it in the table.
  uint32_t devs[CVM_MAX_PG_WIDTH];
  ASSERT_EQ(cvm_place_pg(back.get(), &back->pools[0], 5, devs), 0);
  EXPECT_EQ(devs[1], to5);
  EXPECT_EQ(Encode(back.get()), blob);
  builder_.pins = {Pin(1, 5, {up[15], up[16], up[17]})};
  ASSERT_EQ(builder_.Build(&map, &err), 0) << err.why;
  EXPECT_EQ(PgTable(map.get(), 1), up);
  builder_.pins.clear();

  builder_.device(11).state = CVM_DEV_UP;  // out
  builder_.device(12).weight = 0;
  struct Bad {
    cvm_pg_override o;
    const char *words;
  };
  const Bad bad[] = {
      {{5, 0, 0, 0}, "unknown pool"},
      {{1, 1024, 0, to7}, "beyond pg_num"},
      {{1, 7, 3, to7}, "beyond the pool's width"},
      {{1, 7, 0, 999}, "not in the map"},
      {{1, 7, 0, 11}, "takes no data"},
      {{1, 7, 0, 12}, "takes no data"},
  };
  for (const Bad &b : bad) {
    builder_.overrides = {b.o};
    cvm_err e{};
    MapPtr m;
    EXPECT_EQ(builder_.Build(&m, &e), -EINVAL) << b.words;
    ASSERT_NE(e.why, nullptr);
    EXPECT_NE(std::string(e.why).find(b.words), std::string::npos) << e.why;
  }
  for (cvm_device &d : builder_.devices)
    d.state |= (d.id == 14 ? 1u : 2u) << CVM_DEV_CLASS_SHIFT;
  builder_.pools[0].device_class = 2;
  builder_.overrides = {{1, 7, 0, 14}};
  cvm_err e{};
  EXPECT_EQ(builder_.Build(&map, &e), -EINVAL);
  EXPECT_NE(std::string(e.why).find("another class"), std::string::npos)
      << e.why;
  builder_.pools[0].device_class = 0;
  builder_.overrides = {{1, 7, 1, to7}, {1, 7, 0, to5}};
  EXPECT_EQ(builder_.Build(&map, &e), -EINVAL);
  EXPECT_NE(std::string(e.why).find("ascending"), std::string::npos) << e.why;
}

// Pins travel in the map and override the up row of their PG only; the
// decoder refuses pins that name what the map does not have.
TEST_F(MapCodecTest, PinsRoundTripAndOverrideTheirRowOnly) {
  const std::vector<uint32_t> up = PgTable(map_.get(), 1);
  const uint32_t pinned[3] = {up[7 * 3 + 2], up[7 * 3 + 1], CVM_DEV_NONE};
  builder_.pins = {Pin(1, 7, {pinned[0], pinned[1], pinned[2]}),
                   Pin(9, 3, {up[0], up[1], up[2]})};
  MapPtr map;
  ASSERT_EQ(builder_.Build(&map, nullptr), 0);
  std::vector<uint8_t> blob = Encode(map.get());
  EXPECT_EQ(blob.size(), blob_.size() + 2 * CVM_MAP_PIN_LEN);
  cvm_map *raw = nullptr;
  cvm_err err{};
  ASSERT_EQ(cvm_map_decode(blob.data(), blob.size(), &raw, &err), 0) << err.why;
  MapPtr back(raw);
  ASSERT_EQ(back->nr_pins, 2u);
  const std::vector<uint32_t> table = PgTable(back.get(), 1);
  for (uint32_t pg = 0; pg < 1024; pg++) {
    for (uint32_t s = 0; s < 3; s++) {
      EXPECT_EQ(table[pg * 3 + s], pg == 7 ? pinned[s] : up[pg * 3 + s])
          << pg << "/" << s;
    }
  }
  ASSERT_NE(cvm_map_pin(back.get(), 9, 3), nullptr);
  EXPECT_EQ(cvm_map_pin(back.get(), 9, 4), nullptr);
  EXPECT_EQ(cvm_map_pin(back.get(), 1, 3), nullptr);
  // cvm_place_pg still gives the up row.
  uint32_t devs[CVM_MAX_PG_WIDTH];
  ASSERT_EQ(cvm_place_pg(back.get(), &back->pools[0], 7, devs), 0);
  EXPECT_TRUE(std::equal(devs, devs + 3, up.begin() + 21));
  EXPECT_EQ(Encode(back.get()), blob);

  struct Bad {
    cvm_pg_pin pin;
    const char *words;
  };
  const Bad bad[] = {
      {Pin(5, 0, {0, 1, 2}), "unknown pool"},
      {Pin(1, 1024, {0, 1, 2}), "beyond pg_num"},
      {Pin(1, 3, {0, 999, 2}), "not in the map"},
      {Pin(1, 3, {0, 0, 2}), "twice"},
      {Pin(9, 3, {0, 1, 2, 3}), "beyond the pool's width"},
  };
  for (const Bad &b : bad) {
    builder_.pins = {b.pin};
    cvm_err e{};
    MapPtr m;
    EXPECT_EQ(builder_.Build(&m, &e), -EINVAL) << b.words;
    ASSERT_NE(e.why, nullptr);
    EXPECT_NE(std::string(e.why).find(b.words), std::string::npos) << e.why;
  }
  builder_.pins = {Pin(1, 9, {0, 1, 2}), Pin(1, 8, {0, 1, 2})};
  cvm_err e{};
  MapPtr m;
  EXPECT_EQ(builder_.Build(&m, &e), -EINVAL);
  EXPECT_NE(std::string(e.why).find("ascending"), std::string::npos);
}

TEST_F(MapCodecTest, AnyCorruptByteFailsTheCrc) {
  for (size_t pos = 0; pos < blob_.size(); pos++) {
    if (pos < 16 && pos != 8 && pos != 9) continue;  // header checks first
    blob_[pos] ^= 0x40;
    cvm_map *map = nullptr;
    cvm_err err{};
    EXPECT_NE(cvm_map_decode(blob_.data(), blob_.size(), &map, &err), 0) << pos;
    blob_[pos] ^= 0x40;
  }
  Put32(CVM_MAP_CRC_OFFSET, Get32(CVM_MAP_CRC_OFFSET) + 1);
  ExpectRefused(-EBADMSG, "CRC mismatch");
}

TEST_F(MapCodecTest, CountsMustMatchLengthAndLimits) {
  Put32(24, map_->nr_devices - 1);
  FixCrc();
  ExpectRefused(-EBADMSG, "does not match its counts");
  Put32(24, map_->nr_devices);
  ExpectRefused(-EBADMSG, "CRC mismatch");  // the edit undone, old CRC

  // Counts so large that an unchecked length would wrap 32 bits.
  struct Oversize {
    size_t at;
    uint32_t value, good;
    const char *words;
  };
  const Oversize cases[] = {
      {24, 0x40000000, map_->nr_devices, "too many devices"},
      {28, CVM_MAX_BUCKETS + 1, map_->nr_buckets, "too many buckets"},
      {32, 0x40000000, map_->nr_children, "too many bucket children"},
      {36, CVM_MAX_POOLS + 1, map_->nr_pools, "too many pools"},
  };
  for (const Oversize &c : cases) {
    Put32(c.at, c.value);
    FixCrc();
    ExpectRefused(-E2BIG, c.words);
    Put32(c.at, c.good);
  }
}

TEST_F(MapCodecTest, BucketChildCountsMustAddUp) {
  Put32(buckets_at_ + 8, Get32(buckets_at_ + 8) - 1);
  FixCrc();
  ExpectRefused(-EBADMSG, "does not match the buckets");
  Put32(buckets_at_ + 8, 0xffffffffu);
  FixCrc();
  ExpectRefused(-EBADMSG, "exceed the child count");
}

// A well-formed blob of a bad map fails the same checks a built map does.
TEST_F(MapCodecTest, BadMapInsideRefused) {
  Put32(CVM_MAP_HEADER_LEN + CVM_MAP_DEVICE_LEN, 0);  // device 1 -> id 0
  FixCrc();
  ExpectRefused(-EINVAL, "duplicate device id");

  blob_ = Encode(map_.get());
  Put32(CVM_MAP_HEADER_LEN + 8, 0x10000);  // unknown state bit
  FixCrc();
  ExpectRefused(-EINVAL, "state bits");

  blob_ = Encode(map_.get());
  Put32(buckets_at_ + 4, 9);  // root type
  FixCrc();
  ExpectRefused(-EINVAL, "unknown bucket type");

  blob_ = Encode(map_.get());
  const size_t children_at =
      buckets_at_ + map_->nr_buckets * CVM_MAP_BUCKET_LEN;
  Put32(children_at, static_cast<uint32_t>(-1));  // root holds itself
  FixCrc();
  ExpectRefused(-ELOOP, "loop");

  blob_ = Encode(map_.get());
  const size_t pools_at = blob_.size() - 2 * CVM_MAP_POOL_LEN;
  blob_[pools_at + 9] = 7;  // replicated(7)
  FixCrc();
  ExpectRefused(-EINVAL, "replica count");

  blob_ = Encode(map_.get());
  blob_[pools_at + 12] = 4;  // min_size 4 of replicated(3)
  FixCrc();
  ExpectRefused(-EINVAL, "min_size");

  blob_ = Encode(map_.get());
  blob_[pools_at + CVM_MAP_POOL_LEN + 12] = 1;  // ec(2,1): min_size 1 < k
  FixCrc();
  ExpectRefused(-EINVAL, "min_size");

  blob_ = Encode(map_.get());
  blob_[pools_at + 15] = 1;
  FixCrc();
  ExpectRefused(-EBADMSG, "reserved pool field");
}

// min_size travels in the map; 0 leaves the policy's default.
TEST_F(MapCodecTest, MinSizeRoundTripsAndDefaults) {
  builder_.pools[0].min_size = 3;
  MapPtr map;
  ASSERT_EQ(builder_.Build(&map, nullptr), 0);
  std::vector<uint8_t> blob = Encode(map.get());
  cvm_map *raw = nullptr;
  cvm_err err{};
  ASSERT_EQ(cvm_map_decode(blob.data(), blob.size(), &raw, &err), 0) << err.why;
  MapPtr decoded(raw);
  EXPECT_EQ(decoded->pools[0].min_size, 3);
  EXPECT_EQ(cvm_pool_min_size(&decoded->pools[0]), 3u);
  EXPECT_EQ(decoded->pools[1].min_size, 0);

  cvm_pool p{};
  p.kind = CVM_POOL_REPLICATED;
  for (uint8_t n = 1; n <= 5; n++) {
    p.k = n;
    EXPECT_EQ(cvm_pool_min_size(&p), n - n / 2u) << "replicated " << +n;
  }
  p.kind = CVM_POOL_EC;
  p.k = 4;
  p.m = 1;
  EXPECT_EQ(cvm_pool_min_size(&p), 4u);  // k: k + 1 would be every shard
  p.m = 2;
  EXPECT_EQ(cvm_pool_min_size(&p), 5u);  // k + 1
  p.m = 3;
  EXPECT_EQ(cvm_pool_min_size(&p), 5u);
}

// Random garbage with a valid header and CRC never crashes the decoder.
TEST_F(MapCodecTest, RandomPayloadsAreRefusedOrValid) {
  uint32_t seed = 1;
  for (int round = 0; round < 2000; round++) {
    std::vector<uint8_t> copy = blob_;
    for (int i = 0; i < 4; i++) {
      seed = seed * 1664525u + 1013904223u;
      const size_t pos =
          CVM_MAP_HEADER_LEN + seed % (copy.size() - CVM_MAP_HEADER_LEN);
      copy[pos] = static_cast<uint8_t>(seed >> 24);
    }
    cvm_put_le32(copy.data() + CVM_MAP_CRC_OFFSET,
                 cvm_map_blob_crc(copy.data(), copy.size()));
    cvm_map *map = nullptr;
    cvm_err err{};
    const int ret = cvm_map_decode(copy.data(), copy.size(), &map, &err);
    if (ret) {
      EXPECT_NE(err.why, nullptr);
      EXPECT_EQ(map, nullptr);
    } else {
      cvm_map_free(map);
    }
  }
}

}  // namespace
}  // namespace cvm::tools
