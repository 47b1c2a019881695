// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// Placement (kernel/common/placement.c): failure-domain separation, weight
// proportionality, data movement against the optimum, map validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>

#include "../tools/map_builder.h"
#include "hash.h"

namespace cvm::tools {
namespace {

// Device id -> host bucket id and rack bucket id of a builder's tree.
struct Domains {
  explicit Domains(const MapBuilder &b) {
    for (const auto &bucket : b.buckets)
      for (int32_t c : bucket.children) parent[c] = bucket.id;
  }
  int32_t Above(int32_t item, unsigned levels) const {
    while (levels--) item = parent.at(item);
    return item;
  }
  std::map<int32_t, int32_t> parent;
};

std::map<uint32_t, uint64_t> CountPlacements(const std::vector<uint32_t> &t) {
  std::map<uint32_t, uint64_t> count;
  for (uint32_t dev : t) count[dev]++;
  return count;
}

// Slots whose device changed between two tables of the same pool.  For a
// replicated pool order does not matter (a reorder moves no data), for EC
// the position is the shard.
uint64_t Moved(const std::vector<uint32_t> &a, const std::vector<uint32_t> &b,
               unsigned width, bool replicated) {
  uint64_t moved = 0;
  for (size_t row = 0; row < a.size(); row += width) {
    for (unsigned i = 0; i < width; i++) {
      if (replicated) {
        const auto first = b.begin() + row, last = first + width;
        moved += std::find(first, last, a[row + i]) == last;
      } else {
        moved += a[row + i] != b[row + i];
      }
    }
  }
  return moved;
}

class PlacementTest : public ::testing::Test {
 protected:
  MapPtr Build() {
    MapPtr map;
    cvm_err err{};
    EXPECT_EQ(builder_.Build(&map, &err), 0) << (err.why ? err.why : "");
    return map;
  }

  MapBuilder builder_;
};

TEST_F(PlacementTest, ReplicasLandInDistinctHosts) {
  builder_.AddTree(4, 5, 4);
  builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 4096);
  MapPtr map = Build();
  const Domains domains(builder_);
  const auto table = PgTable(map.get(), 1);
  ASSERT_EQ(table.size(), 4096u * 3);
  for (size_t row = 0; row < table.size(); row += 3) {
    std::set<int32_t> hosts, devs;
    for (unsigned i = 0; i < 3; i++) {
      ASSERT_NE(table[row + i], CVM_DEV_NONE);
      devs.insert(table[row + i]);
      hosts.insert(domains.Above(table[row + i], 1));
    }
    EXPECT_EQ(hosts.size(), 3u) << "PG " << row / 3;
    EXPECT_EQ(devs.size(), 3u);
  }
}

TEST_F(PlacementTest, EcShardsLandInDistinctRacks) {
  builder_.AddTree(8, 3, 3);
  builder_.AddPool(7, CVM_POOL_EC, 4, 2, CVM_TYPE_RACK, 2048);
  MapPtr map = Build();
  const Domains domains(builder_);
  const auto table = PgTable(map.get(), 7);
  ASSERT_EQ(table.size(), 2048u * 6);
  for (size_t row = 0; row < table.size(); row += 6) {
    std::set<int32_t> racks;
    for (unsigned i = 0; i < 6; i++) {
      ASSERT_NE(table[row + i], CVM_DEV_NONE);
      racks.insert(domains.Above(table[row + i], 2));
    }
    EXPECT_EQ(racks.size(), 6u) << "PG " << row / 6;
  }
}

TEST_F(PlacementTest, DeviceFailureDomainOnlyNeedsDistinctDevices) {
  const int32_t root = builder_.AddBucket(CVM_TYPE_ROOT);
  const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, root);
  for (int i = 0; i < 5; i++) builder_.AddDevice(host);
  builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_DEVICE, 256);
  MapPtr map = Build();
  const auto table = PgTable(map.get(), 1);
  for (size_t row = 0; row < table.size(); row += 3) {
    const std::set<uint32_t> devs(table.begin() + row, table.begin() + row + 3);
    EXPECT_EQ(devs.size(), 3u);
    EXPECT_EQ(devs.count(CVM_DEV_NONE), 0u);
  }
}

// Skipped levels: hosts straight under the root act as their own racks.
TEST_F(PlacementTest, HostsUnderRootServeAsRacks) {
  const int32_t root = builder_.AddBucket(CVM_TYPE_ROOT);
  for (int h = 0; h < 4; h++) {
    const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, root);
    builder_.AddDevice(host);
    builder_.AddDevice(host);
  }
  builder_.AddPool(1, CVM_POOL_REPLICATED, 4, 0, CVM_TYPE_RACK, 64);
  MapPtr map = Build();
  const Domains domains(builder_);
  const auto table = PgTable(map.get(), 1);
  for (size_t row = 0; row < table.size(); row += 4) {
    std::set<int32_t> hosts;
    for (unsigned i = 0; i < 4; i++)
      hosts.insert(domains.Above(table[row + i], 1));
    EXPECT_EQ(hosts.size(), 4u);
  }
}

// Each device's share of placements follows its share of the weight.
TEST_F(PlacementTest, SharesFollowWeights) {
  const int32_t root = builder_.AddBucket(CVM_TYPE_ROOT);
  const uint32_t weights[] = {kWeightOne / 2, kWeightOne, 2 * kWeightOne,
                              4 * kWeightOne};
  uint64_t total_weight = 0;
  for (int h = 0; h < 16; h++) {
    const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, root);
    for (int d = 0; d < 4; d++) {
      const uint32_t w = weights[(h + d) % 4];
      builder_.AddDevice(host, w);
      total_weight += w;
    }
  }
  builder_.AddPool(1, CVM_POOL_REPLICATED, 1, 0, CVM_TYPE_HOST, 1 << 17);
  MapPtr map = Build();
  const auto table = PgTable(map.get(), 1);
  const auto count = CountPlacements(table);
  double worst = 0;
  for (const cvm_device &d : builder_.devices) {
    const double expected =
        static_cast<double>(table.size()) * d.weight / total_weight;
    const double dev = std::fabs(count.at(d.id) - expected) / expected;
    worst = std::max(worst, dev);
  }
  // Smallest device expects ~1000 placements: 4 sigma is ~13 %.
  EXPECT_LT(worst, 0.13);
}

// Issue 15: a pool's device class was stored and ignored. A pool of class
// 1 on a tree of mixed classes places only on class 1, spread by the class's
// weights, with distinct hosts; a pool of no class uses every device; a
// pool of a class too few hosts hold is refused naming the class.
TEST_F(PlacementTest, PoolsOfAClassPlaceOnlyOnItsDevices) {
  const int32_t root = builder_.AddBucket(CVM_TYPE_ROOT);
  const uint32_t ssd = 1u << CVM_DEV_CLASS_SHIFT,
                 hdd = 2u << CVM_DEV_CLASS_SHIFT;
  for (int h = 0; h < 8; h++) {
    const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, root);
    // Each host: one ssd of weight 1 or 2, three hdds of weight 4.
    builder_.AddDevice(host, kWeightOne * (1 + h % 2), kUpIn | ssd);
    for (int d = 0; d < 3; d++)
      builder_.AddDevice(host, 4 * kWeightOne, kUpIn | hdd);
  }
  builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 1 << 14);
  builder_.pools.back().device_class = 1;
  builder_.AddPool(2, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 1 << 10);
  MapPtr map = Build();
  const Domains domains(builder_);
  const auto table = PgTable(map.get(), 1);
  const auto count = CountPlacements(table);
  for (size_t row = 0; row < table.size(); row += 3) {
    std::set<int32_t> hosts;
    for (unsigned i = 0; i < 3; i++) {
      ASSERT_NE(table[row + i], CVM_DEV_NONE);
      ASSERT_EQ(cvm_dev_class(builder_.device(table[row + i]).state), 1u)
          << "PG " << row / 3 << " on device " << table[row + i];
      hosts.insert(domains.Above(table[row + i], 1));
    }
    EXPECT_EQ(hosts.size(), 3u);
  }
  // Weights 1 and 2 alternate: the heavier ssds take more, but distinct
  // hosts cap it (3 of 8 hosts per PG), so only the order is asserted.
  EXPECT_GT(count.at(4), count.at(0));  // ssd of weight 2 vs weight 1
  std::set<uint32_t> classes;
  for (uint32_t dev : PgTable(map.get(), 2)) {
    classes.insert(cvm_dev_class(builder_.device(dev).state));
  }
  EXPECT_EQ(classes, (std::set<uint32_t>{1, 2}));  // no class: every device

  MapBuilder few;
  const int32_t r = few.AddBucket(CVM_TYPE_ROOT);
  for (int h = 0; h < 4; h++) {
    const int32_t host = few.AddBucket(CVM_TYPE_HOST, r);
    few.AddDevice(host, kWeightOne, kUpIn | (h < 2 ? ssd : hdd));
  }
  few.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 64);
  few.pools.back().device_class = 1;
  MapPtr refused;
  cvm_err err{};
  EXPECT_EQ(few.Build(&refused, &err), -EINVAL);
  EXPECT_STREQ(err.why,
               "pool has more slots than failure domains with devices of its "
               "class");
}

// The fixed-point draw keeps its resolution from the smallest weight to
// the largest: shares stay proportional at both ends of the u32 range.
TEST_F(PlacementTest, ExtremeWeightsStayProportional) {
  const int32_t root = builder_.AddBucket(CVM_TYPE_ROOT);
  const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, root);
  const uint32_t big = builder_.AddDevice(host, 0xffffffffu);
  const uint32_t half = builder_.AddDevice(host, 0x7fffffffu);
  const uint32_t tiny = builder_.AddDevice(host, 0x00418937u);  // ~1/1000
  builder_.AddPool(1, CVM_POOL_REPLICATED, 1, 0, CVM_TYPE_DEVICE, 1 << 18);
  MapPtr map = Build();
  const auto count = CountPlacements(PgTable(map.get(), 1));
  const double total = 0xffffffffu + double{0x7fffffffu} + 0x00418937u;
  const double n = 1 << 18;
  EXPECT_NEAR(count.at(big) / n, 0xffffffffu / total, 0.01);
  EXPECT_NEAR(count.at(half) / n, 0x7fffffffu / total, 0.01);
  // ~175 expected: within 25 %.
  EXPECT_NEAR(count.at(tiny) / (n * 0x00418937u / total), 1.0, 0.25);
}

TEST_F(PlacementTest, OutAndZeroWeightDevicesHoldNothing) {
  builder_.AddTree(2, 4, 4);
  builder_.device(3).state = CVM_DEV_UP;  // out
  builder_.device(9).state = CVM_DEV_IN;  // down but in: keeps data
  builder_.device(17).weight = 0;
  builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 4096);
  MapPtr map = Build();
  const auto count = CountPlacements(PgTable(map.get(), 1));
  EXPECT_EQ(count.count(3), 0u);
  EXPECT_EQ(count.count(17), 0u);
  EXPECT_GT(count.count(9), 0u);
  EXPECT_EQ(count.count(CVM_DEV_NONE), 0u);
}

// Too many devices out to honour the policy: the slots say so.
TEST_F(PlacementTest, UnfillableSlotsAreNone) {
  builder_.AddTree(1, 3, 2);
  builder_.device(0).state = CVM_DEV_UP;
  builder_.device(1).state = CVM_DEV_UP;  // host 0 entirely out
  builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 64);
  MapPtr map = Build();
  const auto table = PgTable(map.get(), 1);
  for (size_t row = 0; row < table.size(); row += 3) {
    EXPECT_EQ(
        std::count(table.begin() + row, table.begin() + row + 3, CVM_DEV_NONE),
        1);
  }
}

// Placement depends on ids and weights, not on where items sit in the
// arrays: cvmd may list devices and buckets in any order.
TEST_F(PlacementTest, ArrayOrderDoesNotMatter) {
  builder_.AddTree(3, 3, 3);
  builder_.device(4).weight = 3 * kWeightOne;
  builder_.AddPool(1, CVM_POOL_EC, 3, 2, CVM_TYPE_HOST, 1024);
  const auto expect = PgTable(Build().get(), 1);
  std::reverse(builder_.devices.begin(), builder_.devices.end());
  std::reverse(builder_.buckets.begin(), builder_.buckets.end());
  MapPtr map;
  ASSERT_EQ(builder_.Build(&map, nullptr), 0);
  EXPECT_EQ(PgTable(map.get(), 1), expect);
}

TEST_F(PlacementTest, ObjectPgIsUniformAndMasked) {
  std::vector<uint32_t> hits(64);
  for (uint64_t obj = 0; obj < 64 * 1024; obj++) {
    const uint32_t pg = cvm_object_pg(42, obj, 64);
    ASSERT_LT(pg, 64u);
    hits[pg]++;
  }
  for (uint32_t h : hits) {
    EXPECT_GT(h, 1024u * 85 / 100);
    EXPECT_LT(h, 1024u * 115 / 100);
  }
  EXPECT_NE(cvm_object_pg(1, 5, 1 << 20), cvm_object_pg(2, 5, 1 << 20));
}

TEST_F(PlacementTest, TableApiChecksItsArguments) {
  builder_.AddTree(1, 3, 2);
  builder_.AddPool(1, CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_HOST, 16);
  MapPtr map = Build();
  cvm_err err{};
  uint32_t *table = nullptr;
  size_t n = 0;
  EXPECT_EQ(cvm_pg_table_create(map.get(), 9, &table, &n, &err), -ENOENT);
  EXPECT_STREQ(err.why, "no such pool");
  std::vector<uint32_t> small(31);
  EXPECT_EQ(cvm_pg_table_fill(map.get(), &map->pools[0], small.data(),
                              small.size(), &err),
            -EINVAL);
  EXPECT_NE(std::string(err.why).find("size"), std::string::npos);
  uint32_t row[2];
  EXPECT_EQ(cvm_place_pg(map.get(), &map->pools[0], 16, row), -EINVAL);
  EXPECT_EQ(cvm_place_pg(map.get(), &map->pools[0], 15, row), 0);

  // The table CRC is the CRC32C of the little-endian entries.
  const auto full = PgTable(map.get(), 1);
  EXPECT_EQ(cvm_pg_table_crc(full.data(), full.size()),
            ~cvm_crc32c(~0u, full.data(), full.size() * 4));
}

// --- Data movement, measured against the least possible ---------------
//
// A weight change at depth d changes the weights of d buckets on the way
// up (here device, host, rack).  Hierarchical straw2 moves data only
// towards (or away from) the changed item at each level, but the data a
// rack gains lands on all its hosts, and so on down: moved / optimal is
// about 1 + (levels changed - 1) * (1 - 1 / fan-out), ~2.5 for a device in
// this 3-level tree and ~1.8 for a host.  Marking out changes no weight
// and is exactly optimal.

struct Movement {
  uint64_t moved;
  double optimal;
};

class MovementTest : public PlacementTest {
 protected:
  void SetUp() override {
    builder_.AddTree(4, 6, 5);  // 120 devices
    builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 1 << 14);
    builder_.AddPool(2, CVM_POOL_EC, 4, 2, CVM_TYPE_HOST, 1 << 13);
  }

  std::vector<uint32_t> Table(uint32_t pool) {
    MapPtr map = Build();
    return map ? PgTable(map.get(), pool) : std::vector<uint32_t>();
  }

  unsigned Width(uint32_t pool) { return pool == 1 ? 3 : 6; }

  // Adding weight w to a tree of weight W must move at least w / (W + w)
  // of all placements onto it.
  double AddOptimal(const std::vector<uint32_t> &table, double added,
                    double total) {
    return table.size() * added / (total + added);
  }
};

TEST_F(MovementTest, AddingADeviceMovesCloseToItsShare) {
  for (uint32_t pool : {1u, 2u}) {
    const auto before = Table(pool);
    MapBuilder saved = builder_;
    builder_.AddDevice(builder_.buckets[2].id);  // first host of rack 0
    const auto after = Table(pool);
    builder_ = saved;
    const uint64_t moved = Moved(before, after, Width(pool), pool == 1);
    const double optimal = AddOptimal(before, 1, 120);
    EXPECT_GT(moved / optimal, 0.8) << "pool " << pool;
    EXPECT_LT(moved / optimal, 3.2) << "pool " << pool;
  }
}

TEST_F(MovementTest, AddingAHostMovesCloseToItsShare) {
  for (uint32_t pool : {1u, 2u}) {
    const auto before = Table(pool);
    MapBuilder saved = builder_;
    const int32_t host =
        builder_.AddBucket(CVM_TYPE_HOST, builder_.buckets[1].id);
    for (int i = 0; i < 5; i++) builder_.AddDevice(host);
    const auto after = Table(pool);
    builder_ = saved;
    const uint64_t moved = Moved(before, after, Width(pool), pool == 1);
    const double optimal = AddOptimal(before, 5, 120);
    EXPECT_GT(moved / optimal, 0.8) << "pool " << pool;
    EXPECT_LT(moved / optimal, 2.3) << "pool " << pool;
  }
}

// Out keeps the device's weight in the tree: only its own slots move.
TEST_F(MovementTest, MarkingOutMovesOnlyThatDevicesSlots) {
  for (uint32_t pool : {1u, 2u}) {
    const auto before = Table(pool);
    MapBuilder saved = builder_;
    builder_.device(37).state = CVM_DEV_UP;
    const auto after = Table(pool);
    builder_ = saved;
    const uint64_t on_device = CountPlacements(before)[37];
    const uint64_t moved = Moved(before, after, Width(pool), pool == 1);
    ASSERT_GT(on_device, 0u);
    EXPECT_GE(moved, on_device);
    EXPECT_LT(static_cast<double>(moved) / on_device, 1.05) << "pool " << pool;
    EXPECT_EQ(CountPlacements(after).count(37), 0u);
  }
}

// Removal (weight 0) changes the host's and rack's weights too.
TEST_F(MovementTest, RemovingADeviceMovesCloseToItsPlacements) {
  for (uint32_t pool : {1u, 2u}) {
    const auto before = Table(pool);
    MapBuilder saved = builder_;
    builder_.device(64).weight = 0;
    const auto after = Table(pool);
    builder_ = saved;
    const uint64_t on_device = CountPlacements(before)[64];
    const uint64_t moved = Moved(before, after, Width(pool), pool == 1);
    EXPECT_GE(moved, on_device);
    EXPECT_LT(static_cast<double>(moved) / on_device, 3.2) << "pool " << pool;
  }
}

// --- Validation: every refusal says why ---------------------------------

class BadMapTest : public PlacementTest {
 protected:
  void SetUp() override {
    builder_.AddTree(2, 3, 2);  // root -1, racks -2 -6, hosts
    builder_.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 64);
  }

  // Build must fail with ret and a reason containing words.
  void ExpectRefused(int ret, const std::string &words) {
    MapPtr map;
    cvm_err err{};
    EXPECT_EQ(builder_.Build(&map, &err), ret);
    ASSERT_NE(err.why, nullptr);
    EXPECT_NE(std::string(err.why).find(words), std::string::npos)
        << "reason was: " << err.why;
    EXPECT_EQ(map, nullptr);
  }
};

TEST_F(BadMapTest, GoodBaselineBuilds) {
  MapPtr map;
  cvm_err err{};
  EXPECT_EQ(builder_.Build(&map, &err), 0);
}

TEST_F(BadMapTest, NoDevices) {
  builder_ = MapBuilder();
  builder_.AddBucket(CVM_TYPE_ROOT);
  ExpectRefused(-EINVAL, "no devices");
}

TEST_F(BadMapTest, NoBuckets) {
  builder_.buckets.clear();
  ExpectRefused(-EINVAL, "no buckets");
}

TEST_F(BadMapTest, NoRoot) {
  builder_.buckets[0].type = CVM_TYPE_ROW;
  ExpectRefused(-EINVAL, "no root");
}

TEST_F(BadMapTest, TwoRoots) {
  builder_.AddBucket(CVM_TYPE_ROOT);
  ExpectRefused(-EINVAL, "more than one root");
}

TEST_F(BadMapTest, DuplicateDeviceId) {
  builder_.device(5).id = 2;
  ExpectRefused(-EINVAL, "duplicate device id");
}

TEST_F(BadMapTest, DuplicateBucketId) {
  builder_.buckets[3].id = builder_.buckets[2].id;
  ExpectRefused(-EINVAL, "duplicate bucket id");
}

TEST_F(BadMapTest, DeviceIdOutOfRange) {
  builder_.device(0).id = CVM_MAX_DEVICES;
  ExpectRefused(-EINVAL, "device id out of range");
}

TEST_F(BadMapTest, BucketIdOutOfRange) {
  builder_.buckets[1].id = 5;
  ExpectRefused(-EINVAL, "bucket id out of range");
}

TEST_F(BadMapTest, UnknownBucketType) {
  builder_.buckets[1].type = 9;
  ExpectRefused(-EINVAL, "unknown bucket type");
}

TEST_F(BadMapTest, UnknownStateBits) {
  builder_.device(1).state |= 0x80;
  ExpectRefused(-EINVAL, "state bits");
}

TEST_F(BadMapTest, DanglingChild) {
  builder_.buckets[2].children.push_back(999);
  ExpectRefused(-EINVAL, "not a known device or bucket");
}

TEST_F(BadMapTest, ChildListedTwice) {
  builder_.buckets[2].children.push_back(builder_.buckets[2].children[0]);
  ExpectRefused(-EINVAL, "listed twice");
}

TEST_F(BadMapTest, ItemWithTwoParents) {
  builder_.buckets[3].children.push_back(builder_.buckets[2].children[0]);
  ExpectRefused(-EINVAL, "two parent");
}

TEST_F(BadMapTest, LoopOfBuckets) {
  // Two racks holding each other, hanging off nothing.
  const int32_t a = builder_.AddBucket(CVM_TYPE_RACK);
  const int32_t b = builder_.AddBucket(CVM_TYPE_RACK, a);
  builder_.bucket(b).children.push_back(a);
  ExpectRefused(-ELOOP, "loop");
}

TEST_F(BadMapTest, BucketHoldingItself) {
  const int32_t a = builder_.AddBucket(CVM_TYPE_ROW);
  builder_.bucket(a).children.push_back(a);
  ExpectRefused(-ELOOP, "loop");
}

TEST_F(BadMapTest, RootInsideItsOwnSubtree) {
  builder_ = MapBuilder();
  const int32_t root = builder_.AddBucket(CVM_TYPE_ROOT);
  const int32_t rack = builder_.AddBucket(CVM_TYPE_RACK, root);
  const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, rack);
  builder_.AddDevice(host);
  builder_.bucket(rack).children.push_back(root);
  ExpectRefused(-ELOOP, "loop");
}

TEST_F(BadMapTest, OrphanBucket) {
  const int32_t rack = builder_.AddBucket(CVM_TYPE_RACK);
  const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, rack);
  builder_.AddDevice(host);
  ExpectRefused(-EINVAL, "not connected to the root");
}

TEST_F(BadMapTest, DeviceInNoHost) {
  builder_.devices.push_back({99, kWeightOne, kUpIn});
  ExpectRefused(-EINVAL, "not in any host");
}

TEST_F(BadMapTest, HostHoldingABucket) {
  const int32_t host = builder_.buckets[2].id;
  builder_.AddBucket(CVM_TYPE_HOST, host);
  ExpectRefused(-EINVAL, "host bucket holds a bucket");
}

TEST_F(BadMapTest, DeviceOutsideAHost) {
  builder_.AddDevice(builder_.buckets[1].id);  // a rack
  ExpectRefused(-EINVAL, "device outside a host");
}

TEST_F(BadMapTest, TypeNotBelowParent) {
  const int32_t rack = builder_.buckets[1].id;
  const int32_t inner = builder_.AddBucket(CVM_TYPE_RACK, rack);
  const int32_t host = builder_.AddBucket(CVM_TYPE_HOST, inner);
  builder_.AddDevice(host);
  ExpectRefused(-EINVAL, "type not below");
}

TEST_F(BadMapTest, TooManyChildren) {
  const int32_t host = builder_.buckets[2].id;
  for (int i = 0; i < CVM_MAX_BUCKET_CHILDREN; i++) builder_.AddDevice(host);
  ExpectRefused(-E2BIG, "too many children");
}

TEST_F(BadMapTest, OversizeCountsRefusedAtAlloc) {
  cvm_map *map = nullptr;
  cvm_err err{};
  EXPECT_EQ(cvm_map_alloc(&map, CVM_MAX_DEVICES + 1, 1, 1, 0, &err), -E2BIG);
  EXPECT_STREQ(err.why, "too many devices");
  EXPECT_EQ(cvm_map_alloc(&map, 1, CVM_MAX_BUCKETS + 1, 1, 0, &err), -E2BIG);
  EXPECT_STREQ(err.why, "too many buckets");
  EXPECT_EQ(cvm_map_alloc(&map, 1, 1, 1, CVM_MAX_POOLS + 1, &err), -E2BIG);
  EXPECT_STREQ(err.why, "too many pools");
}

TEST_F(BadMapTest, ZeroTotalWeight) {
  for (cvm_device &d : builder_.devices) d.weight = 0;
  ExpectRefused(-EINVAL, "total weight is zero");
}

TEST_F(BadMapTest, MoreReplicasThanHosts) {
  builder_.pools[0].failure_domain = CVM_TYPE_RACK;  // only 2 racks
  ExpectRefused(-EINVAL, "more slots than failure domains");
}

TEST_F(BadMapTest, ZeroWeightHostsLeaveTooFewChoices) {
  // 6 hosts; empty four of them of weight: 2 left for 3 replicas.
  for (unsigned d = 0; d < 8; d++) builder_.device(d).weight = 0;
  ExpectRefused(-EINVAL, "failure domains with weight");
}

TEST_F(BadMapTest, DuplicatePoolId) {
  builder_.AddPool(1, CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_HOST, 64);
  ExpectRefused(-EINVAL, "duplicate pool id");
}

struct BadPool {
  uint8_t kind, k, m, fd;
  uint32_t pg_num;
  const char *words;
};

TEST_F(BadMapTest, BadPolicyValues) {
  const BadPool cases[] = {
      {CVM_POOL_REPLICATED, 0, 0, CVM_TYPE_HOST, 64, "replica count"},
      {CVM_POOL_REPLICATED, 6, 0, CVM_TYPE_HOST, 64, "replica count"},
      {CVM_POOL_REPLICATED, 2, 1, CVM_TYPE_HOST, 64, "parity"},
      {CVM_POOL_EC, 1, 1, CVM_TYPE_HOST, 64, "data chunks k"},
      {CVM_POOL_EC, 9, 1, CVM_TYPE_HOST, 64, "data chunks k"},
      {CVM_POOL_EC, 2, 0, CVM_TYPE_HOST, 64, "parity chunks m"},
      {CVM_POOL_EC, 2, 5, CVM_TYPE_HOST, 64, "parity chunks m"},
      {7, 2, 0, CVM_TYPE_HOST, 64, "unknown pool kind"},
      {CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_ROOT, 64, "failure domain"},
      {CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_HOST, 0, "pg_num"},
      {CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_HOST, 96, "pg_num"},
      {CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_HOST, CVM_MAX_PG_NUM * 2, "pg_num"},
  };
  for (const BadPool &c : cases) {
    SCOPED_TRACE(c.words);
    builder_.pools.clear();
    builder_.AddPool(3, c.kind, c.k, c.m, c.fd, c.pg_num);
    ExpectRefused(-EINVAL, c.words);
  }
}

TEST_F(BadMapTest, FinalizeTwiceRefused) {
  MapPtr map;
  cvm_err err{};
  ASSERT_EQ(builder_.Build(&map, &err), 0);
  EXPECT_EQ(cvm_map_finalize(map.get(), &err), -EINVAL);
  EXPECT_STREQ(err.why, "map is already finalized");
}

TEST_F(BadMapTest, UnfinalizedMapIsNotPlaced) {
  MapPtr map;
  cvm_err err{};
  ASSERT_EQ(builder_.Build(&map, &err, false), 0);
  uint32_t *table = nullptr;
  size_t n = 0;
  EXPECT_EQ(cvm_pg_table_create(map.get(), 1, &table, &n, &err), -EINVAL);
  EXPECT_STREQ(err.why, "map is not finalized");
}

}  // namespace
}  // namespace cvm::tools
