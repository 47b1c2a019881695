// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// cvm-placement-stats: balance and data movement of kernel/common placement
// for clusters of 100, 1,000 and 10,000 devices.
//
// Tree: 10 devices per host (weight 1.0 or 2.0, by host), hosts in racks;
// pool replicated(3), host failure domain, pg_num the power of two nearest
// 200 placements per device.
//
// balance:  per device, placements / weight, relative to the mean:
//           the maximum and the standard deviation; "ideal sd" is what
//           perfect hashing gives (binomial, 1 / sqrt(placements)).
// movement: placements that changed device / the least possible, for one
//           change each: add a device, add a host, remove a device (weight
//           0), remove a host, mark a device out.
//
// Twice: straw2 alone, then with cvmd's balancer (userspace/lib/balancer.h),
// which also gives the overrides it wrote, the encoded map's size, and the
// seconds the balancer took for the first map (straw2's placement of every
// PG included). The movement figures then compare the balanced map before
// and after the change, as cvmd computes them.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <vector>

#include "balancer.h"
#include "map_builder.h"

namespace {

using cvm::tools::MapBuilder;
using cvm::tools::MapPtr;
using Table = std::vector<uint32_t>;

constexpr unsigned kDevicesPerHost = 10;
constexpr unsigned kReplicas = 3;

struct Cluster {
  MapBuilder builder;
  std::vector<int32_t> racks;
  std::vector<int32_t> hosts;
};

Cluster MakeCluster(unsigned nr_devices, unsigned hosts_per_rack) {
  Cluster c;
  const int32_t root = c.builder.AddBucket(CVM_TYPE_ROOT);
  const unsigned nr_hosts = nr_devices / kDevicesPerHost;
  for (unsigned h = 0; h < nr_hosts; h++) {
    if (h % hosts_per_rack == 0)
      c.racks.push_back(c.builder.AddBucket(CVM_TYPE_RACK, root));
    c.hosts.push_back(c.builder.AddBucket(CVM_TYPE_HOST, c.racks.back()));
    for (unsigned d = 0; d < kDevicesPerHost; d++)
      c.builder.AddDevice(c.hosts.back(), cvm::tools::kWeightOne * (1 + h % 2));
  }
  const double want = nr_devices * 200.0 / kReplicas;
  const uint32_t pg_num = 1u << static_cast<int>(std::lround(std::log2(want)));
  c.builder.AddPool(1, CVM_POOL_REPLICATED, kReplicas, 0, CVM_TYPE_HOST,
                    pg_num);
  return c;
}

MapPtr Build(const MapBuilder &b) {
  MapPtr map;
  cvm_err err{};
  if (b.Build(&map, &err)) {
    fmt::print(stderr, "cvm-placement-stats: {} ({})\n", err.why, err.item);
    std::exit(1);
  }
  return map;
}

// Where the PGs go, and what it took to decide it.
struct Placed {
  Table table;
  size_t overrides = 0;
  size_t map_bytes = 0;
  double secs = 0;
};

// Straw2 alone, or with the balancer starting from `previous` (the rows
// before a change) when `balanced`.
Placed Place(const MapBuilder &b, bool balanced,
             const Table *previous = nullptr) {
  Placed out;
  if (!balanced) {
    MapPtr map = Build(b);
    out.table = cvm::tools::PgTable(map.get(), 1);
    out.map_bytes = cvm_map_encoded_len(map.get());
    return out;
  }
  const auto start = std::chrono::steady_clock::now();
  MapPtr crush = Build(b);
  std::map<uint32_t, std::vector<uint32_t>> before;
  if (previous) before[1] = *previous;
  auto balance = cvm::ComputeBalance(*crush, before, {});
  out.secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (!balance.ok()) {
    fmt::print(stderr, "cvm-placement-stats: {}\n", balance.status().message());
    std::exit(1);
  }
  MapBuilder with = b;
  with.overrides = balance->overrides;
  MapPtr map = Build(with);
  out.table = cvm::tools::PgTable(map.get(), 1);
  out.overrides = balance->overrides.size();
  out.map_bytes = cvm_map_encoded_len(map.get());
  return out;
}

std::vector<uint64_t> Counts(const Table &t, size_t nr_devices) {
  std::vector<uint64_t> count(nr_devices + 1);
  for (uint32_t dev : t) count[std::min<size_t>(dev, nr_devices)]++;
  return count;
}

uint64_t Moved(const Table &a, const Table &b) {
  uint64_t moved = 0;
  for (size_t row = 0; row < a.size(); row += kReplicas) {
    const auto first = b.begin() + row, last = first + kReplicas;
    for (unsigned i = 0; i < kReplicas; i++)
      moved += std::find(first, last, a[row + i]) == last;
  }
  return moved;
}

double TotalWeight(const MapBuilder &b) {
  double w = 0;
  for (const cvm_device &d : b.devices) w += d.weight;
  return w;
}

void Report(unsigned nr_devices, unsigned hosts_per_rack, bool balanced) {
  const auto start = std::chrono::steady_clock::now();
  Cluster c = MakeCluster(nr_devices, hosts_per_rack);
  const Placed placed = Place(c.builder, balanced);
  const Table &base = placed.table;
  const auto count = Counts(base, nr_devices);
  const double total_weight = TotalWeight(c.builder);

  double max_share = 0, sum_sq = 0;
  for (const cvm_device &d : c.builder.devices) {
    const double expect = base.size() * (d.weight / total_weight);
    const double share = count[d.id] / expect;
    max_share = std::max(max_share, share);
    sum_sq += (share - 1) * (share - 1);
  }
  const double sd = std::sqrt(sum_sq / nr_devices);
  const double ideal_sd =
      std::sqrt(static_cast<double>(nr_devices) / base.size());

  // Each change is made on a copy, placed, and compared with base.
  auto moved_ratio = [&](auto &&change, double optimal) {
    MapBuilder b = c.builder;
    change(b);
    return Moved(base, Place(b, balanced, &base).table) / optimal;
  };
  const double w = cvm::tools::kWeightOne;
  const double add_dev =
      moved_ratio([&](MapBuilder &b) { b.AddDevice(c.hosts[0], w); },
                  base.size() * w / (total_weight + w));
  const double add_host = moved_ratio(
      [&](MapBuilder &b) {
        const int32_t h = b.AddBucket(CVM_TYPE_HOST, c.racks[0]);
        for (unsigned d = 0; d < kDevicesPerHost; d++) b.AddDevice(h, w);
      },
      base.size() * kDevicesPerHost * w / (total_weight + kDevicesPerHost * w));
  const uint32_t victim = nr_devices / 2 + 3;
  const double rm_dev = moved_ratio(
      [&](MapBuilder &b) { b.device(victim).weight = 0; }, count[victim]);
  uint64_t on_host = 0;
  for (int32_t d : c.builder.bucket(c.hosts[1]).children) on_host += count[d];
  const double rm_host = moved_ratio(
      [&](MapBuilder &b) {
        for (int32_t d : b.bucket(c.hosts[1]).children) b.device(d).weight = 0;
      },
      on_host);
  const double out_dev =
      moved_ratio([&](MapBuilder &b) { b.device(victim).state = CVM_DEV_UP; },
                  count[victim]);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();

  fmt::print(
      "{:>7} {:>6} {:>8} {:>7.0f} | {:>6.3f} {:>6.3f} {:>6.3f} | "
      "{:>6.2f} {:>6.2f} {:>6.2f} {:>6.2f} {:>6.2f} | {:>5.1f}",
      nr_devices, c.hosts.size(), base.size() / kReplicas,
      static_cast<double>(base.size()) / nr_devices, max_share, sd, ideal_sd,
      add_dev, add_host, rm_dev, rm_host, out_dev, secs);
  if (balanced) {
    fmt::print(" | {:>9} {:>8.1f} {:>7.2f}", placed.overrides,
               placed.map_bytes / 1024.0, placed.secs);
  }
  fmt::print("\n");
}

void PrintTable(bool balanced) {
  fmt::print("replicated(3), host failure domain, 10 devices per host, {}\n",
             balanced ? "with the balancer" : "straw2 alone");
  fmt::print(
      "                                |  balance (x mean)    |"
      "  moved / optimal                   |{}\n",
      balanced ? "       | balancer, first map" : "");
  fmt::print(
      "devices  hosts   pg_num  pl/dev |    max     sd  ideal |"
      "   +dev  +host   -dev  -host    out |  secs{}\n",
      balanced ? " | overrides  map KiB    secs" : "");
  Report(100, 5, balanced);
  Report(1000, 10, balanced);
  Report(10000, 20, balanced);
}

}  // namespace

int main() {
  PrintTable(false);
  fmt::print("\n");
  PrintTable(true);
  return 0;
}
