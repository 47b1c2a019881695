// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// kernel/common/object: volume -> object split and EC stripe arithmetic.
#include "object.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

constexpr uint64_t kMiB = 1 << 20;

cvm_layout Replicated(uint64_t size, uint32_t object_shift = 22) {
  cvm_layout l{};
  l.size = size;
  l.object_shift = object_shift;
  return l;
}

cvm_layout Ec(uint32_t k, uint32_t unit_shift, uint32_t object_shift = 22) {
  cvm_layout l = Replicated(1ull << 40, object_shift);
  l.ec_k = k;
  l.unit_shift = unit_shift;
  return l;
}

std::vector<cvm_extent> Split(const cvm_layout &l, uint64_t off, uint64_t len) {
  std::vector<cvm_extent> out;
  while (len) {
    cvm_extent ext{};
    cvm_err err{};
    if (cvm_object_extent(&l, off, len, &ext, &err)) {
      ADD_FAILURE() << err.why;
      break;
    }
    out.push_back(ext);
    off += ext.len;
    len -= ext.len;
  }
  return out;
}

TEST(ObjectTest, RangeInsideOneObject) {
  const auto ext = Split(Replicated(100 * kMiB), 5 * kMiB, 4096);
  ASSERT_EQ(ext.size(), 1u);
  EXPECT_EQ(ext[0].object_no, 1u);
  EXPECT_EQ(ext[0].offset, kMiB);
  EXPECT_EQ(ext[0].len, 4096u);
}

TEST(ObjectTest, RangeSplitAtEveryBoundary) {
  // From the last sector of object 2 to the first sector of object 6.
  const auto ext =
      Split(Replicated(100 * kMiB), 12 * kMiB - 512, 3 * 4 * kMiB + 1024);
  ASSERT_EQ(ext.size(), 5u);
  EXPECT_EQ(ext[0].object_no, 2u);
  EXPECT_EQ(ext[0].offset, 4 * kMiB - 512);
  EXPECT_EQ(ext[0].len, 512u);
  for (int i = 1; i <= 3; i++) {
    EXPECT_EQ(ext[i].object_no, 2u + i);
    EXPECT_EQ(ext[i].offset, 0u);
    EXPECT_EQ(ext[i].len, 4 * kMiB);
  }
  EXPECT_EQ(ext[4].object_no, 6u);
  EXPECT_EQ(ext[4].len, 512u);
}

TEST(ObjectTest, LastPartialObjectAndWholeVolume) {
  const cvm_layout l = Replicated(10 * kMiB + 512, 20);  // 1 MiB objects
  EXPECT_EQ(cvm_object_count(&l), 11u);
  const auto ext = Split(l, 0, l.size);
  ASSERT_EQ(ext.size(), 11u);
  EXPECT_EQ(ext.back().object_no, 10u);
  EXPECT_EQ(ext.back().len, 512u);
}

TEST(ObjectTest, BadRangesRefused) {
  const cvm_layout l = Replicated(8 * kMiB);
  cvm_extent ext{};
  cvm_err err{};
  EXPECT_EQ(cvm_object_extent(&l, 0, 0, &ext, &err), -EINVAL);
  EXPECT_STREQ(err.why, "empty range");
  EXPECT_EQ(cvm_object_extent(&l, 100, 512, &ext, &err), -EINVAL);
  EXPECT_STREQ(err.why, "range not sector aligned");
  EXPECT_EQ(cvm_object_extent(&l, 0, 513, &ext, &err), -EINVAL);
  EXPECT_EQ(cvm_object_extent(&l, 8 * kMiB, 512, &ext, &err), -ERANGE);
  EXPECT_STREQ(err.why, "range beyond end of volume");
  EXPECT_EQ(cvm_object_extent(&l, 8 * kMiB - 512, 1024, &ext, &err), -ERANGE);
  // offset + len would wrap: still refused.
  EXPECT_EQ(cvm_object_extent(&l, 512, ~0ull - 511, &ext, &err), -ERANGE);
  EXPECT_EQ(cvm_object_extent(&l, 8 * kMiB - 512, 512, &ext, &err), 0);
}

struct BadLayout {
  cvm_layout layout;
  const char *words;
};

TEST(ObjectTest, LayoutLimits) {
  cvm_err err{};
  const cvm_layout smallest = Replicated(512, 12), widest = Ec(8, 9, 26);
  EXPECT_EQ(cvm_layout_check(&smallest, &err), 0);
  EXPECT_EQ(cvm_layout_check(&widest, &err), 0);
  const BadLayout cases[] = {
      {Replicated(0), "volume size"},
      {Replicated(CVM_MAX_VOLUME_SIZE + 512), "volume size"},
      {Replicated(4096 + 1), "multiple of 512"},
      {Replicated(kMiB, 11), "object size"},
      {Replicated(kMiB, 27), "object size"},
      {Ec(1, 12), "data chunks k"},
      {Ec(9, 12), "data chunks k"},
      {Ec(4, 8), "stripe unit"},
      {Ec(4, 21, 26), "stripe unit"},
      {Ec(2, 13, 12), "larger than the object"},
  };
  for (const BadLayout &c : cases) {
    EXPECT_EQ(cvm_layout_check(&c.layout, &err), -EINVAL) << c.words;
    EXPECT_NE(std::string(err.why).find(c.words), std::string::npos)
        << "reason was: " << err.why;
  }
}

// Every sector of a k = 5 object maps to a distinct (stripe, chunk, offset)
// and back; shard offsets of one chunk index never collide.
TEST(EcStripeTest, EverySectorRoundTrips) {
  const cvm_layout l = Ec(5, 14, 20);  // 16 KiB units, 1 MiB objects
  ASSERT_EQ(cvm_layout_check(&l, nullptr), 0);
  EXPECT_EQ(cvm_stripe_width(&l), 5u * 16384);
  std::vector<std::vector<bool>> used(
      5, std::vector<bool>(cvm_ec_shard_size(&l) / 512));
  for (uint32_t off = 0; off < (1u << 20); off += 512) {
    cvm_chunk_pos pos{};
    ASSERT_EQ(cvm_ec_locate(&l, off, &pos, nullptr), 0);
    EXPECT_EQ(pos.stripe_no, off / (5 * 16384));
    EXPECT_EQ(pos.chunk, off / 16384 % 5);
    EXPECT_EQ(pos.offset, off % 16384);
    uint32_t back = 0;
    ASSERT_EQ(cvm_ec_offset(&l, &pos, &back, nullptr), 0);
    EXPECT_EQ(back, off);
    const uint64_t shard_off = cvm_ec_shard_offset(&l, &pos);
    ASSERT_LT(shard_off, cvm_ec_shard_size(&l));
    EXPECT_FALSE(used[pos.chunk][shard_off / 512]);
    used[pos.chunk][shard_off / 512] = true;
  }
}

// 1 MiB / (5 * 16 KiB) = 12.8 stripes: the 13th holds 4 of 5 chunks.
TEST(EcStripeTest, PartialLastStripe) {
  const cvm_layout l = Ec(5, 14, 20);
  EXPECT_EQ(cvm_ec_shard_size(&l), 13u * 16384);
  cvm_chunk_pos pos{12, 3, 16383};
  uint32_t off = 0;
  EXPECT_EQ(cvm_ec_offset(&l, &pos, &off, nullptr), 0);
  EXPECT_EQ(off, (1u << 20) - 1);
  pos.chunk = 4;
  cvm_err err{};
  EXPECT_EQ(cvm_ec_offset(&l, &pos, &off, &err), -ERANGE);
  EXPECT_STREQ(err.why, "position beyond end of object");
}

TEST(EcStripeTest, BadPositionsRefused) {
  const cvm_layout l = Ec(3, 12);
  cvm_err err{};
  uint32_t off = 0;
  cvm_chunk_pos pos{0, 3, 0};
  EXPECT_EQ(cvm_ec_offset(&l, &pos, &off, &err), -EINVAL);
  EXPECT_STREQ(err.why, "chunk index not below k");
  pos = {0, 0, 4096};
  EXPECT_EQ(cvm_ec_offset(&l, &pos, &off, &err), -EINVAL);
  pos = {~0ull, 0, 0};  // would overflow if multiplied unchecked
  EXPECT_EQ(cvm_ec_offset(&l, &pos, &off, &err), -ERANGE);
  EXPECT_EQ(cvm_ec_locate(&l, 4 << 20, &pos, &err), -ERANGE);
  const cvm_layout r = Replicated(kMiB);
  EXPECT_EQ(cvm_ec_locate(&r, 0, &pos, &err), -EINVAL);
  EXPECT_STREQ(err.why, "layout is not erasure coded");
}

}  // namespace
