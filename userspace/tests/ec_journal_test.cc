// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// kernel/common/ec_journal.h: the EC stripe journal's layout and slots.
#include "ec_journal.h"

#include <gtest/gtest.h>

#include <set>

namespace {

constexpr uint32_t kExtent = 4u << 20;  // the target's object shard limit

TEST(EcJournalTest, HeaderFitsItsSector) {
  EXPECT_LE(sizeof(cvm_ec_jhdr), CVM_EC_JOURNAL_HDR_LEN);
  EXPECT_EQ(sizeof(cvm_ec_jhdr), 72u);
}

TEST(EcJournalTest, JournalFitsOneTargetExtentForEveryUnit) {
  for (uint32_t unit = 4096; unit <= CVM_EC_JOURNAL_MAX_UNIT; unit <<= 1) {
    uint32_t slots = cvm_ec_journal_slots(unit);
    SCOPED_TRACE(unit);
    EXPECT_GE(slots, 3u);
    EXPECT_LE(slots, CVM_EC_JOURNAL_SLOTS);
    EXPECT_LE(uint64_t{slots} * CVM_EC_JOURNAL_HDR_LEN,
              CVM_EC_JOURNAL_DATA_OFF);
    EXPECT_LE(CVM_EC_JOURNAL_DATA_OFF + uint64_t{slots} * unit, kExtent);
  }
  EXPECT_EQ(cvm_ec_journal_slots(4096), 256u);
  EXPECT_EQ(cvm_ec_journal_slots(65536), 48u);
  EXPECT_EQ(cvm_ec_journal_slots(1u << 20), 3u);
}

// The write path journals a piece's stripes as runs of consecutive slots
// and splits a run only where the ring wraps to slot 0.
TEST(EcJournalTest, ConsecutiveStripesTakeConsecutiveSlots) {
  for (uint32_t slots : {3u, 48u, 256u}) {
    for (uint64_t obj : {0ull, 1ull, 7ull, 123456789ull, (1ull << 40) + 3}) {
      uint32_t base = cvm_ec_journal_base(obj, slots);
      ASSERT_LT(base, slots);
      EXPECT_EQ(cvm_ec_journal_slot(obj, 0, slots), base);
      for (uint64_t t = 0; t < 3 * slots; t++) {
        uint32_t a = cvm_ec_journal_slot(obj, t, slots);
        uint32_t b = cvm_ec_journal_slot(obj, t + 1, slots);
        ASSERT_LT(a, slots);
        EXPECT_EQ(b, (a + 1) % slots) << "object " << obj << " stripe " << t;
      }
    }
  }
}

// Objects start at different places of the ring, so that the first
// stripes of neighbouring objects (the busiest ones) do not share slots.
TEST(EcJournalTest, ObjectsSpreadOverTheRing) {
  std::set<uint32_t> bases;
  for (uint64_t obj = 0; obj < 64; obj++)
    bases.insert(cvm_ec_journal_base(obj, CVM_EC_JOURNAL_SLOTS));
  EXPECT_GE(bases.size(), 48u);
}

TEST(EcJournalTest, JournalObjectIsNoDataObject) {
  // The largest volume object number: 2^64 bytes over 4 KiB objects.
  EXPECT_GT(CVM_EC_JOURNAL_OBJECT, (1ull << 52));
}

}  // namespace
