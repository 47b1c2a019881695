#include "cluster_map.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "balancer.h"

namespace cvm {
namespace {

// kernel/common refuses with a static reason and the offending item.
Status FromCvmErr(const cvm_err& err, int ret, std::string_view what) {
  return InvalidArgument(fmt::format("{}: {} (item {}, errno {})", what,
                                     err.why ? err.why : "refused", err.item,
                                     -ret));
}

// A sealed map blob, decoded and checked as the kernel does.
Result<CMapPtr> DecodeMap(const std::string& blob, std::string_view what) {
  cvm_err err{};
  cvm_map* raw = nullptr;
  const int ret = cvm_map_decode(blob.data(), blob.size(), &raw, &err);
  if (ret) return Corruption(FromCvmErr(err, ret, what).message());
  return CMapPtr(raw);
}

uint32_t ItemType(FailureDomain f) {
  switch (f) {
    case FailureDomain::kHost:
      return CVM_TYPE_HOST;
    case FailureDomain::kRack:
      return CVM_TYPE_RACK;
    case FailureDomain::kRow:
      return CVM_TYPE_ROW;
  }
  return CVM_TYPE_HOST;
}

int32_t HostBucketId(uint64_t host_id) {
  return -1 - static_cast<int32_t>(host_id);
}

int32_t NamedBucketId(uint32_t index) {
  return -static_cast<int32_t>(CVM_MAX_BUCKETS + 1 - index);
}

}  // namespace

Result<CMapPtr> MakeCMap(const MapLayout& layout) {
  size_t nr_children = 0;
  for (const auto& b : layout.buckets) nr_children += b.children.size();
  cvm_err err{};
  cvm_map* raw = nullptr;
  int ret = cvm_map_alloc(&raw, layout.devices.size(), layout.buckets.size(),
                          nr_children, layout.pools.size(), &err);
  if (ret) return FromCvmErr(err, ret, "map");
  CMapPtr map(raw);
  map->epoch = layout.epoch;
  std::copy(layout.devices.begin(), layout.devices.end(), map->devices);
  std::copy(layout.pools.begin(), layout.pools.end(), map->pools);
  int pret = cvm_map_alloc_pins(map.get(), layout.pins.size(), &err);
  if (pret) return FromCvmErr(err, pret, "map pins");
  std::copy(layout.pins.begin(), layout.pins.end(), map->pins);
  pret = cvm_map_alloc_overrides(map.get(), layout.overrides.size(), &err);
  if (pret) return FromCvmErr(err, pret, "map overrides");
  std::copy(layout.overrides.begin(), layout.overrides.end(), map->overrides);
  uint32_t next = 0;
  for (size_t i = 0; i < layout.buckets.size(); ++i) {
    const MapBucket& b = layout.buckets[i];
    map->buckets[i] = {b.id, b.type, next,
                       static_cast<uint32_t>(b.children.size())};
    for (int32_t c : b.children) map->children[next++] = c;
  }
  ret = cvm_map_finalize(map.get(), &err);
  if (ret) return FromCvmErr(err, ret, "map");
  return map;
}

std::string RowKey(const Host& h) {
  return h.row.empty() ? "" : fmt::format("row/{}", h.row);
}

std::string RackKey(const Host& h) {
  // A rack sits in one row: the same rack name in two rows is two racks.
  return h.rack.empty() ? "" : fmt::format("rack/{}/{}", h.row, h.rack);
}

Result<MapLayout> LayoutFromTopology(uint64_t epoch, const Topology& topology,
                                     const BucketIndexes& indexes) {
  MapLayout layout;
  layout.epoch = epoch;

  // Device classes by name, numbered 1.. in name order (0: no class). A
  // pool's class that no device has still gets a number: its weight is 0,
  // so the pool is refused as unplaceable rather than placed anywhere.
  std::map<std::string, uint32_t> class_ids;
  for (const Device& d : topology.devices) class_ids[d.device_class];
  for (const Pool& p : topology.pools) {
    if (!p.device_class.empty()) class_ids[p.device_class];
  }
  class_ids.erase("");
  if (class_ids.size() > 255) {
    return InvalidArgument(fmt::format(
        "{} device classes; the map holds at most 255", class_ids.size()));
  }
  uint32_t next_class = 1;
  for (auto& [name, id] : class_ids) id = next_class++;
  const auto class_of = [&](const std::string& name) -> uint32_t {
    auto it = class_ids.find(name);
    return it == class_ids.end() ? 0 : it->second;
  };

  std::map<uint64_t, std::vector<int32_t>> host_devices;
  for (const Device& d : topology.devices) {
    if (d.id >= CVM_MAX_DEVICES) {
      return InvalidArgument(
          fmt::format("device id {} is beyond the map's limit of {} devices",
                      d.id, CVM_MAX_DEVICES));
    }
    const double weight = std::round(d.weight * 0x10000);
    if (weight < 1 || weight > UINT32_MAX) {
      return InvalidArgument(fmt::format(
          "device {} weight {} does not fit the map's 16.16 fixed point", d.id,
          d.weight));
    }
    uint32_t state = (d.up ? CVM_DEV_UP : 0) | (d.in ? CVM_DEV_IN : 0) |
                     (d.full ? CVM_DEV_FULL : 0) |
                     class_of(d.device_class) << CVM_DEV_CLASS_SHIFT;
    layout.devices.push_back(
        {static_cast<uint32_t>(d.id), static_cast<uint32_t>(weight), state});
    host_devices[d.host_id].push_back(static_cast<int32_t>(d.id));
  }

  MapBucket root{-1, CVM_TYPE_ROOT, {}};
  std::map<std::string, MapBucket> named;  // racks and rows, by key
  const auto named_bucket = [&](const std::string& key,
                                uint32_t type) -> Result<MapBucket*> {
    auto it = named.find(key);
    if (it != named.end()) return &it->second;
    auto idx = indexes.find(key);
    if (idx == indexes.end()) {
      return Internal(fmt::format("no bucket id allocated for {}", key));
    }
    MapBucket b{NamedBucketId(idx->second), type, {}};
    return &named.emplace(key, std::move(b)).first->second;
  };

  std::vector<MapBucket> hosts;
  for (const Host& h : topology.hosts) {
    auto devs = host_devices.find(h.id);
    if (devs == host_devices.end()) continue;  // holds nothing yet
    if (h.id + 1 >= CVM_MAX_BUCKETS) {
      return InvalidArgument(
          fmt::format("host id {} is beyond the map's bucket limit", h.id));
    }
    MapBucket host{HostBucketId(h.id), CVM_TYPE_HOST, devs->second};
    // Hang the host under its rack, the rack under its row, the row under
    // the root; missing levels are skipped.
    std::vector<int32_t>* parent = &root.children;
    if (!h.row.empty()) {
      CVM_ASSIGN_OR_RETURN(MapBucket * row,
                           named_bucket(RowKey(h), CVM_TYPE_ROW));
      if (std::find(root.children.begin(), root.children.end(), row->id) ==
          root.children.end()) {
        root.children.push_back(row->id);
      }
      parent = &row->children;
    }
    if (!h.rack.empty()) {
      CVM_ASSIGN_OR_RETURN(MapBucket * rack,
                           named_bucket(RackKey(h), CVM_TYPE_RACK));
      if (std::find(parent->begin(), parent->end(), rack->id) ==
          parent->end()) {
        parent->push_back(rack->id);
      }
      parent = &rack->children;
    }
    parent->push_back(host.id);
    hosts.push_back(std::move(host));
  }

  layout.buckets.push_back(std::move(root));
  for (auto& [key, b] : named) layout.buckets.push_back(std::move(b));
  for (auto& h : hosts) layout.buckets.push_back(std::move(h));

  for (const Pool& p : topology.pools) {
    cvm_pool pool{};
    pool.id = static_cast<uint32_t>(p.id);
    pool.pg_num = p.pg_num;
    if (p.policy.kind == Policy::Kind::kReplicated) {
      pool.kind = CVM_POOL_REPLICATED;
      pool.k = static_cast<uint8_t>(p.policy.replicas);
    } else {
      pool.kind = CVM_POOL_EC;
      pool.k = static_cast<uint8_t>(p.policy.k);
      pool.m = static_cast<uint8_t>(p.policy.m);
    }
    pool.failure_domain = static_cast<uint8_t>(ItemType(p.failure_domain));
    pool.min_size = static_cast<uint8_t>(p.min_size);
    pool.device_class = static_cast<uint8_t>(class_of(p.device_class));
    layout.pools.push_back(pool);
  }
  return layout;
}

namespace {

// The pins `next` (a map without pins) needs, given where the data is
// (`prev`: data.previous decoded, null without one).
Result<std::vector<cvm_pg_pin>> PinsFor(const cvm_map& next,
                                        const cvm_map* prev,
                                        const DataPlacement& data,
                                        SealedMap* sealed) {
  auto* lost = &sealed->lost;
  auto* abandoned = &sealed->abandoned;
  std::vector<cvm_pg_pin> pins;
  if (!prev || data.pools_with_data.empty()) return pins;
  cvm_err err{};
  int ret = 0;
  // Backfill targets of the previous map's pins that the new up row drops.
  for (uint32_t i = 0; i < prev->nr_pins; ++i) {
    const cvm_pg_pin& pin = prev->pins[i];
    // A settled PG's targets were filled: they hold its data now.
    if (data.settled.count({pin.pool_id, pin.pg})) continue;
    const cvm_pool* before = cvm_map_pool(prev, pin.pool_id);
    const cvm_pool* now = cvm_map_pool(&next, pin.pool_id);
    uint32_t up_before[CVM_MAX_PG_WIDTH], up_now[CVM_MAX_PG_WIDTH];
    if (!before || !now || cvm_pool_width(before) != cvm_pool_width(now) ||
        before->pg_num != now->pg_num ||
        cvm_place_pg(prev, before, pin.pg, up_before) ||
        cvm_place_pg(&next, now, pin.pg, up_now)) {
      continue;
    }
    const uint32_t width = cvm_pool_width(now);
    MovedOff m{pin.pool_id, pin.pg, {}};
    for (uint32_t s = 0; s < width; ++s) {
      const uint32_t d = up_before[s];
      if (d == CVM_DEV_NONE ||
          std::find(pin.devs, pin.devs + width, d) != pin.devs + width) {
        continue;
      }
      if (std::find(up_now, up_now + width, d) == up_now + width) {
        m.devs.push_back(d);
      }
    }
    if (!m.devs.empty()) abandoned->push_back(std::move(m));
  }
  std::set<uint32_t> devices;
  for (uint32_t i = 0; i < next.nr_devices; ++i) {
    devices.insert(next.devices[i].id);
  }
  std::vector<const cvm_pool*> pools;
  for (uint32_t i = 0; i < next.nr_pools; ++i) pools.push_back(&next.pools[i]);
  std::sort(pools.begin(), pools.end(),
            [](const cvm_pool* a, const cvm_pool* b) { return a->id < b->id; });
  for (const cvm_pool* pool : pools) {
    if (!data.pools_with_data.count(pool->id)) continue;
    const cvm_pool* before = cvm_map_pool(prev, pool->id);
    const uint32_t width = cvm_pool_width(pool);
    if (!before || before->pg_num != pool->pg_num ||
        cvm_pool_width(before) != width) {
      continue;  // the pool was not placed: nothing of it was written
    }
    uint32_t* table = nullptr;
    size_t n = 0;
    ret = cvm_pg_table_create(prev, pool->id, &table, &n, &err);
    if (ret) return FromCvmErr(err, ret, "previous map");
    std::unique_ptr<uint32_t, decltype(&cvm_pg_table_free)> owner(
        table, &cvm_pg_table_free);
    for (uint32_t pg = 0; pg < pool->pg_num; ++pg) {
      uint32_t up[CVM_MAX_PG_WIDTH], up_before[CVM_MAX_PG_WIDTH];
      if (cvm_place_pg(&next, pool, pg, up)) {
        return Internal(
            fmt::format("pool {} PG {}: placement failed", pool->id, pg));
      }
      // The data is on the previous map's row (its pin, if pinned), or on
      // its up row once settled: filled by backfill. The balancer may move
      // a settled PG again in this very epoch, so it is pinned to that row.
      const uint32_t* row = table + static_cast<size_t>(pg) * width;
      if (data.settled.count({pool->id, pg})) {
        if (cvm_place_pg(prev, before, pg, up_before)) {
          return Internal(fmt::format(
              "previous map: pool {} PG {}: placement failed", pool->id, pg));
        }
        row = up_before;
      }
      if (std::equal(row, row + width, up)) continue;
      cvm_pg_pin pin{};
      pin.pool_id = pool->id;
      pin.pg = pg;
      std::fill(std::begin(pin.devs), std::end(pin.devs), CVM_DEV_NONE);
      uint32_t kept = 0;
      for (uint32_t s = 0; s < width; ++s) {
        if (row[s] == CVM_DEV_NONE) continue;
        if (!devices.count(row[s])) {
          lost->push_back({row[s], pool->id, pg});
          continue;
        }
        pin.devs[s] = row[s];
        ++kept;
      }
      const uint32_t needed = pool->kind == CVM_POOL_EC ? pool->k : 1;
      if (kept < needed) {
        sealed->unrecoverable.push_back(
            fmt::format("pool {} PG {} ({} of {} {} left)", pool->id, pg, kept,
                        needed, pool->kind == CVM_POOL_EC ? "shards" : "copy"));
      }
      pins.push_back(pin);
    }
  }
  return pins;
}

// Runs the balancer on `crush` (a map without overrides) from the previous
// map's up rows (`prev`, null without one).
Result<Balance> BalanceFrom(const cvm_map& crush, const cvm_map* prev,
                            const Topology& topology,
                            const DataPlacement& data) {
  std::map<uint32_t, std::vector<uint32_t>> previous;
  BalanceOptions options;
  options.capped_pools = data.pools_with_data;
  for (const Device& d : topology.devices) {
    if (d.nearfull || d.full) {
      options.no_new_data.insert(static_cast<uint32_t>(d.id));
    }
  }
  uint32_t moving = 0;
  if (prev) {
    for (uint32_t i = 0; i < prev->nr_pins; ++i) {
      moving += !data.settled.count({prev->pins[i].pool_id, prev->pins[i].pg});
    }
    for (uint32_t i = 0; i < crush.nr_pools; ++i) {
      const cvm_pool* now = &crush.pools[i];
      const cvm_pool* before = cvm_map_pool(prev, now->id);
      if (!before || before->pg_num != now->pg_num ||
          cvm_pool_width(before) != cvm_pool_width(now)) {
        continue;
      }
      std::vector<uint32_t> rows(cvm_pg_table_entries(now));
      for (uint32_t pg = 0; pg < now->pg_num; ++pg) {
        if (cvm_place_pg(prev, before, pg,
                         &rows[static_cast<size_t>(pg) * cvm_pool_width(now)]))
          return Internal(
              fmt::format("previous map: pool {} PG {} unplaced", now->id, pg));
      }
      previous[now->id] = std::move(rows);
    }
  }
  options.max_moves =
      data.balancer_max_moves > moving ? data.balancer_max_moves - moving : 0;
  return ComputeBalance(crush, previous, options);
}

}  // namespace

SealedMap SealMap(uint64_t epoch, const Topology& topology,
                  const BucketIndexes& indexes, const DataPlacement& data) {
  SealedMap sealed;
  auto layout = LayoutFromTopology(epoch, topology, indexes);
  if (!layout.ok()) {
    sealed.problem = layout.status().message();
    return sealed;
  }
  if (layout->devices.empty()) {
    sealed.problem = "the cluster has no devices yet";
    return sealed;
  }
  // The tree on its own first: a bad tree is the whole map's problem.
  MapLayout tree = *layout;
  tree.pools.clear();
  if (auto map = MakeCMap(tree); !map.ok()) {
    sealed.problem = map.status().message();
    return sealed;
  }
  // Then each pool against it: a pool the tree cannot satisfy (ec:4,2 on
  // three hosts) is left out and named, and the other pools are served.
  std::vector<cvm_pool> servable;
  for (size_t i = 0; i < layout->pools.size(); ++i) {
    tree.pools = {layout->pools[i]};
    if (auto map = MakeCMap(tree); !map.ok()) {
      sealed.left_out.push_back(fmt::format(
          "pool '{}': {}", topology.pools[i].name, map.status().message()));
    } else {
      servable.push_back(layout->pools[i]);
    }
  }
  layout->pools = std::move(servable);
  auto map = MakeCMap(*layout);
  if (!map.ok()) {
    sealed.problem = map.status().message();
    return sealed;
  }
  // The balancer's rows, from where the data was meant to be.
  CMapPtr prev;
  if (!data.previous.empty()) {
    auto decoded = DecodeMap(data.previous, "previous map");
    if (!decoded.ok()) {
      sealed.problem = decoded.status().message();
      return sealed;
    }
    prev = std::move(*decoded);
  }
  auto balance = BalanceFrom(*map->get(), prev.get(), topology, data);
  if (!balance.ok()) {
    sealed.problem = balance.status().message();
    return sealed;
  }
  sealed.overrides = balance->overrides.size();
  sealed.balancer_moves = balance->pgs_moved;
  sealed.balancer_capped = balance->capped;
  if (!balance->overrides.empty()) {
    layout->overrides = std::move(balance->overrides);
    map = MakeCMap(*layout);
    if (!map.ok()) {
      sealed.problem = map.status().message();
      return sealed;
    }
  }
  // Then the PGs whose data is not where placement now puts it.
  auto pins = PinsFor(*map->get(), prev.get(), data, &sealed);
  if (!pins.ok()) {
    sealed.problem = pins.status().message();
    return sealed;
  }
  if (!pins->empty()) {
    sealed.pins = pins->size();
    layout->pins = std::move(*pins);
    map = MakeCMap(*layout);
    if (!map.ok()) {
      sealed.problem = map.status().message();
      return sealed;
    }
  }
  std::string blob(cvm_map_encoded_len(map->get()), '\0');
  cvm_err err{};
  int ret = cvm_map_encode(map->get(), blob.data(), blob.size(), &err);
  if (ret) {
    sealed.problem = FromCvmErr(err, ret, "map encode").message();
    return sealed;
  }
  sealed.crc = cvm_map_blob_crc(blob.data(), blob.size());
  sealed.blob = std::move(blob);
  return sealed;
}

Result<std::vector<PoolPlacement>> PlacementOf(const std::string& blob) {
  CVM_ASSIGN_OR_RETURN(CMapPtr map, DecodeMap(blob, "stored map"));
  cvm_err err{};
  int ret = 0;
  std::vector<PoolPlacement> out;
  for (uint32_t i = 0; i < map->nr_pools; ++i) {
    const cvm_pool& pool = map->pools[i];
    uint32_t* table = nullptr;
    size_t n = 0;
    ret = cvm_pg_table_create(map.get(), pool.id, &table, &n, &err);
    if (ret) return FromCvmErr(err, ret, fmt::format("pool {}", pool.id));
    std::unique_ptr<uint32_t, decltype(&cvm_pg_table_free)> owner(
        table, &cvm_pg_table_free);
    PoolPlacement p;
    p.pool_id = pool.id;
    p.pg_num = pool.pg_num;
    p.width = cvm_pool_width(&pool);
    p.table_crc = cvm_pg_table_crc(table, n);
    for (uint32_t k = 0; k < map->nr_pins; ++k) {
      p.pinned += map->pins[k].pool_id == pool.id;
    }
    for (uint32_t k = 0; k < map->nr_overrides; ++k) {
      p.overrides += map->overrides[k].pool_id == pool.id;
    }
    std::set<uint32_t> down;
    for (uint32_t d = 0; d < map->nr_devices; ++d) {
      p.pgs[map->devices[d].id];
      if (!(map->devices[d].state & CVM_DEV_UP))
        down.insert(map->devices[d].id);
    }
    for (size_t e = 0; e < n; ++e) {
      if (table[e] == CVM_DEV_NONE) {
        ++p.unplaced;
      } else {
        ++p.pgs[table[e]];
      }
    }
    // Degraded: a slot of the PG's row (its pin, if pinned) without a live
    // device. A pinned PG that is not degraded is only misplaced.
    for (uint32_t pg = 0; pg < p.pg_num; ++pg) {
      const uint32_t* row = table + static_cast<size_t>(pg) * p.width;
      const bool degraded = std::any_of(row, row + p.width, [&](uint32_t d) {
        return d == CVM_DEV_NONE || down.count(d);
      });
      p.degraded += degraded;
      p.misplaced += !degraded && cvm_map_pin(map.get(), pool.id, pg);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace cvm
