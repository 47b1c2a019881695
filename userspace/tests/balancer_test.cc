// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// The balancer (userspace/lib/balancer.cc) at 100 and 1,000 devices: every
// device within 1 % of its weight's share, and each change (a device or a
// host added or removed, a device out) moving at most 1.1x the least data,
// with the result still balanced and every failure domain kept apart.
// cvm-placement-stats gives the same figures at 10,000 devices. About 3 s.
#include "balancer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "../tools/map_builder.h"

namespace cvm {
namespace {

using tools::kWeightOne;
using tools::MapBuilder;
using tools::MapPtr;
using Table = std::vector<uint32_t>;

constexpr double kMaxShare = 1.01;  // max / mean, the threshold
constexpr double kMaxMoved = 1.1;   // moved / optimal

struct Cluster {
  MapBuilder b;
  std::vector<int32_t> racks, hosts;
};

// 10 devices per host, weight 1.0 or 2.0 by host, racks of `per_rack`
// hosts; pool 1 replicated(3) by host with pg_num giving >= 100 placements
// per device.
Cluster MakeCluster(unsigned devices, unsigned per_rack, uint32_t pg_num) {
  Cluster c;
  const int32_t root = c.b.AddBucket(CVM_TYPE_ROOT);
  for (unsigned h = 0; h < devices / 10; h++) {
    if (h % per_rack == 0)
      c.racks.push_back(c.b.AddBucket(CVM_TYPE_RACK, root));
    c.hosts.push_back(c.b.AddBucket(CVM_TYPE_HOST, c.racks.back()));
    for (unsigned d = 0; d < 10; d++)
      c.b.AddDevice(c.hosts.back(), kWeightOne * (1 + h % 2));
  }
  c.b.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, pg_num);
  return c;
}

struct Placed {
  Table table;  // pool 1's rows, overrides applied
  Balance balance;
};

Placed Place(const MapBuilder &b, const Table *previous,
             const BalanceOptions &options = {}, uint32_t pool = 1) {
  MapPtr crush;
  cvm_err err{};
  EXPECT_EQ(b.Build(&crush, &err), 0) << err.why;
  std::map<uint32_t, Table> before;
  if (previous) before[pool] = *previous;
  auto balance = ComputeBalance(*crush, before, options);
  EXPECT_TRUE(balance.ok()) << balance.status().message();
  MapBuilder with = b;
  with.overrides = balance->overrides;
  MapPtr map;
  EXPECT_EQ(with.Build(&map, &err), 0) << err.why;  // the kernel's checks
  return {tools::PgTable(map.get(), pool), std::move(*balance)};
}

// max over devices of placements / weight's share.
double MaxShare(const MapBuilder &b, const Table &t, uint32_t class_id = 0) {
  std::map<uint32_t, double> count;
  size_t placed = 0;
  for (uint32_t d : t) {
    if (d != CVM_DEV_NONE) count[d]++, placed++;
  }
  double weight = 0;
  for (const cvm_device &d : b.devices) {
    if ((d.state & CVM_DEV_IN) &&
        (!class_id || cvm_dev_class(d.state) == class_id))
      weight += d.weight;
  }
  double max = 0;
  for (const cvm_device &d : b.devices) {
    if (!(d.state & CVM_DEV_IN) || !d.weight) {
      EXPECT_EQ(count[d.id], 0) << "device " << d.id << " takes no data";
      continue;
    }
    if (class_id && cvm_dev_class(d.state) != class_id) continue;
    max = std::max(max, count[d.id] / (placed * d.weight / weight));
  }
  return max;
}

// Copies that changed device (a replicated row's order moves nothing).
uint64_t Moved(const Table &a, const Table &b, unsigned width) {
  uint64_t moved = 0;
  for (size_t row = 0; row < a.size(); row += width) {
    for (unsigned i = 0; i < width; i++)
      moved += std::find(b.begin() + row, b.begin() + row + width,
                         a[row + i]) == b.begin() + row + width;
  }
  return moved;
}

// No PG has two slots in one host.
void ExpectHostsApart(const MapBuilder &b, const Table &t, unsigned width) {
  std::map<uint32_t, int32_t> host_of;
  for (const auto &bucket : b.buckets) {
    if (bucket.type != CVM_TYPE_HOST) continue;
    for (int32_t c : bucket.children) host_of[c] = bucket.id;
  }
  for (size_t row = 0; row < t.size(); row += width) {
    std::set<int32_t> hosts;
    for (unsigned i = 0; i < width; i++) {
      ASSERT_NE(t[row + i], CVM_DEV_NONE) << "PG " << row / width;
      EXPECT_TRUE(hosts.insert(host_of.at(t[row + i])).second)
          << "PG " << row / width << " has two copies in one host";
    }
  }
}

void CheckScale(unsigned devices, unsigned per_rack, uint32_t pg_num) {
  Cluster c = MakeCluster(devices, per_rack, pg_num);
  const Placed base = Place(c.b, nullptr);
  const double before = MaxShare(c.b, [&] {
    MapPtr m;
    EXPECT_EQ(c.b.Build(&m, nullptr), 0);
    return tools::PgTable(m.get(), 1);
  }());
  EXPECT_GT(before, 1.1) << "straw2 alone should be uneven";
  EXPECT_LE(MaxShare(c.b, base.table), kMaxShare);
  ExpectHostsApart(c.b, base.table, 3);
  EXPECT_TRUE(base.balance.pools.at(0).balanced);

  std::map<uint32_t, uint64_t> count;
  for (uint32_t d : base.table) count[d]++;
  double weight = 0;
  for (const cvm_device &d : c.b.devices) weight += d.weight;
  const double one = kWeightOne;

  struct Change {
    const char *name;
    std::function<void(MapBuilder &)> apply;
    double optimal;
  };
  const uint32_t victim = devices / 2 + 3;
  uint64_t on_host = 0;
  for (int32_t d : c.b.bucket(c.hosts[1]).children) on_host += count[d];
  const std::vector<Change> changes = {
      {"add a device",
       [&](MapBuilder &b) { b.AddDevice(c.hosts[0], kWeightOne); },
       base.table.size() * one / (weight + one)},
      {"add a host",
       [&](MapBuilder &b) {
         const int32_t h = b.AddBucket(CVM_TYPE_HOST, c.racks[0]);
         for (unsigned d = 0; d < 10; d++) b.AddDevice(h, kWeightOne);
       },
       base.table.size() * 10 * one / (weight + 10 * one)},
      {"remove a device", [&](MapBuilder &b) { b.device(victim).weight = 0; },
       static_cast<double>(count[victim])},
      {"remove a host",
       [&](MapBuilder &b) {
         for (int32_t d : b.bucket(c.hosts[1]).children) b.device(d).weight = 0;
       },
       static_cast<double>(on_host)},
      {"mark a device out",
       [&](MapBuilder &b) { b.device(victim).state = CVM_DEV_UP; },
       static_cast<double>(count[victim])},
  };
  for (const Change &change : changes) {
    SCOPED_TRACE(change.name);
    MapBuilder b = c.b;
    change.apply(b);
    const Placed after = Place(b, &base.table);
    const double ratio = Moved(base.table, after.table, 3) / change.optimal;
    EXPECT_LE(ratio, kMaxMoved);
    EXPECT_GE(ratio, 0.9) << "the new devices must get their share";
    EXPECT_LE(MaxShare(b, after.table), kMaxShare);
    ExpectHostsApart(b, after.table, 3);
  }
}

TEST(BalancerTest, HundredDevicesWithinOnePercentAndMinimalMoves) {
  CheckScale(100, 5, 8192);  // 246 placements per device
}

TEST(BalancerTest, ThousandDevicesWithinOnePercentAndMinimalMoves) {
  CheckScale(1000, 10, 65536);  // 197 placements per device
}

// Run again on its own result with nothing changed, the balancer moves
// nothing and writes the same overrides: no epoch without a reason.
TEST(BalancerTest, SettledClusterStaysPut) {
  Cluster c = MakeCluster(100, 5, 4096);
  const Placed first = Place(c.b, nullptr);
  const Placed again = Place(c.b, &first.table);
  EXPECT_EQ(again.table, first.table);
  EXPECT_EQ(again.balance.pgs_moved, 0u);
  EXPECT_EQ(again.balance.overrides.size(), first.balance.overrides.size());
}

// The cap holds a large correction to a batch of PGs (capped pools only),
// and the next runs finish it.
TEST(BalancerTest, MovesAreCappedAndResumed) {
  Cluster c = MakeCluster(100, 5, 4096);
  const Placed base = Place(c.b, nullptr);
  MapBuilder b = c.b;
  const int32_t h = b.AddBucket(CVM_TYPE_HOST, c.racks[0]);
  for (unsigned d = 0; d < 10; d++) b.AddDevice(h, kWeightOne);
  BalanceOptions capped;
  capped.max_moves = 50;
  capped.capped_pools = {1};
  Table rows = base.table;
  int runs = 0;
  for (;; runs++) {
    ASSERT_LT(runs, 100);
    const Placed next = Place(b, &rows, capped);
    EXPECT_LE(next.balance.pgs_moved, 50u);
    const uint64_t changed_pgs = [&] {
      uint64_t n = 0;
      for (size_t r = 0; r < rows.size(); r += 3)
        n += !std::equal(rows.begin() + r, rows.begin() + r + 3,
                         next.table.begin() + r);
      return n;
    }();
    EXPECT_LE(changed_pgs, 50u);
    rows = next.table;
    if (!next.balance.capped) break;
  }
  EXPECT_GT(runs, 3);
  EXPECT_LE(MaxShare(b, rows), kMaxShare);
  // Uncapped pools are not held back.
  BalanceOptions other = capped;
  other.capped_pools = {2};
  EXPECT_FALSE(Place(b, &base.table, other).balance.capped);
}

// A device marked out and in again gets back the PGs it held, whose old
// copies it still has, not others.
TEST(BalancerTest, DeviceMarkedInAgainGetsItsOwnPgsBack) {
  Cluster c = MakeCluster(100, 5, 8192);
  const Placed base = Place(c.b, nullptr);
  const uint32_t victim = 37;
  MapBuilder out = c.b;
  out.device(victim).state = CVM_DEV_UP;
  const Placed away = Place(out, &base.table);
  const Placed back = Place(c.b, &away.table);
  uint64_t held = 0, own = 0;
  for (size_t i = 0; i < back.table.size(); i++) {
    if (back.table[i] != victim) continue;
    held++;
    const size_t row = i / 3 * 3;
    own += std::find(base.table.begin() + row, base.table.begin() + row + 3,
                     victim) != base.table.begin() + row + 3;
  }
  EXPECT_GE(held,
            0.95 * std::count(base.table.begin(), base.table.end(), victim));
  EXPECT_GE(own, 0.95 * held) << "its own PGs, not others";
  EXPECT_LE(MaxShare(c.b, back.table), kMaxShare);
}

// Devices that are nearfull, full or down are given no slot; their own
// slots stay (a down device is still in: its data is degraded, not lost).
TEST(BalancerTest, NoNewDataForFullOrDownDevices) {
  Cluster c = MakeCluster(100, 5, 4096);
  const Placed base = Place(c.b, nullptr);
  MapBuilder b = c.b;
  b.device(1).state |= CVM_DEV_FULL;
  b.device(2).state &= ~CVM_DEV_UP;
  BalanceOptions options;
  options.no_new_data = {3};
  for (unsigned d = 0; d < 10; d++) b.device(50 + d).state = CVM_DEV_UP;  // out
  const Placed after = Place(b, &base.table, options);
  for (uint32_t dev : {1u, 2u, 3u}) {
    for (size_t i = 0; i < after.table.size(); i++) {
      if (after.table[i] == dev)
        EXPECT_EQ(base.table[i], dev) << "device " << dev << " got new data";
    }
  }
  ExpectHostsApart(b, after.table, 3);
}

// A slot no device that takes new data can fill (4 hosts, rep3: one host
// down, one device out) goes to a device that may hold the data and fits
// its PG's failure domains (here the down one), never a second copy in one
// host; and the kernel's rows are the balancer's.
TEST(BalancerTest, HolesOnlyADownDeviceCanFill) {
  MapBuilder b;
  const int32_t root = b.AddBucket(CVM_TYPE_ROOT);
  for (unsigned h = 0; h < 4; h++)
    b.AddDevice(b.AddBucket(CVM_TYPE_HOST, root));
  b.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 256);
  const Placed base = Place(b, nullptr);
  b.device(0).state = CVM_DEV_IN;  // down
  b.device(1).state = CVM_DEV_UP;  // out
  const Placed after = Place(b, &base.table);
  ExpectHostsApart(b, after.table, 3);
  for (uint32_t d : after.table) EXPECT_NE(d, 1u);
  EXPECT_EQ(std::count(after.table.begin(), after.table.end(), 0u), 256)
      << "every PG keeps or gets a copy on the down device: 3 hosts left";
}

// EC pools keep shard positions (a slot is a shard), a device class pool
// stays on its class, and a tree whose domains cannot give every device
// its share ends with the best it can do instead of looping.
TEST(BalancerTest, EcClassesAndImpossibleShares) {
  MapBuilder b;
  const int32_t root = b.AddBucket(CVM_TYPE_ROOT);
  for (unsigned h = 0; h < 8; h++) {
    const int32_t host = b.AddBucket(CVM_TYPE_HOST, root);
    for (unsigned d = 0; d < 4; d++) {
      b.AddDevice(host, kWeightOne,
                  tools::kUpIn | ((d % 2 ? 1u : 2u) << CVM_DEV_CLASS_SHIFT));
    }
  }
  b.AddPool(1, CVM_POOL_EC, 4, 2, CVM_TYPE_HOST, 4096);
  b.AddPool(2, CVM_POOL_REPLICATED, 2, 0, CVM_TYPE_HOST, 2048);
  b.pools.back().device_class = 1;
  const Placed ec = Place(b, nullptr);
  EXPECT_LE(MaxShare(b, ec.table), kMaxShare);
  ExpectHostsApart(b, ec.table, 6);
  {
    MapBuilder out = b;
    out.device(5).state = CVM_DEV_UP;
    const Placed moved = Place(out, &ec.table);
    ExpectHostsApart(out, moved.table, 6);
    for (size_t i = 0; i < ec.table.size(); i++) {
      if (ec.table[i] != 5u && ec.table[i] != moved.table[i])
        ADD_FAILURE() << "shard " << i % 6 << " of PG " << i / 6 << " moved";
    }
  }
  const Placed cls = Place(b, nullptr, {}, 2);
  EXPECT_LE(MaxShare(b, cls.table, 1), kMaxShare);
  for (uint32_t d : cls.table) EXPECT_EQ(cvm_dev_class(b.device(d).state), 1u);

  MapBuilder lopsided;
  const int32_t r = lopsided.AddBucket(CVM_TYPE_ROOT);
  for (unsigned h = 0; h < 3; h++) {
    const int32_t host = lopsided.AddBucket(CVM_TYPE_HOST, r);
    lopsided.AddDevice(host, kWeightOne * (h == 2 ? 4 : 1));
  }
  lopsided.AddPool(1, CVM_POOL_REPLICATED, 3, 0, CVM_TYPE_HOST, 256);
  const Placed p = Place(lopsided, nullptr);
  EXPECT_FALSE(p.balance.pools.at(0).balanced);
  ExpectHostsApart(lopsided, p.table, 3);
}

}  // namespace
}  // namespace cvm
