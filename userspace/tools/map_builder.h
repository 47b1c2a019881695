// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// MapBuilder: assemble a cvm_map (kernel/common/placement.h) from C++ for
// the placement tests and tools.  Items get ids in creation order (devices
// 0, 1, ...; buckets -1, -2, ...); fields stay public so tests can break a
// map on purpose before building it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "map_codec.h"
#include "placement.h"

namespace cvm::tools {

constexpr uint32_t kWeightOne = 0x10000;  // 1.0 in 16.16
constexpr uint32_t kUpIn = CVM_DEV_UP | CVM_DEV_IN;

struct MapFree {
  void operator()(cvm_map *map) const { cvm_map_free(map); }
};
using MapPtr = std::unique_ptr<cvm_map, MapFree>;

struct TableFree {
  void operator()(uint32_t *table) const { cvm_pg_table_free(table); }
};

class MapBuilder {
 public:
  struct Bucket {
    int32_t id;
    uint32_t type;
    std::vector<int32_t> children;
  };

  // A bucket under parent (0: no parent, e.g. the root).
  int32_t AddBucket(uint32_t type, int32_t parent = 0) {
    const int32_t id = -1 - static_cast<int32_t>(buckets.size());
    buckets.push_back({id, type, {}});
    if (parent) bucket(parent).children.push_back(id);
    return id;
  }

  uint32_t AddDevice(int32_t host, uint32_t weight = kWeightOne,
                     uint32_t state = kUpIn) {
    const uint32_t id = static_cast<uint32_t>(devices.size());
    devices.push_back({id, weight, state});
    bucket(host).children.push_back(static_cast<int32_t>(id));
    return id;
  }

  void AddPool(uint32_t id, uint8_t kind, uint8_t k, uint8_t m,
               uint8_t failure_domain, uint32_t pg_num) {
    cvm_pool pool{};
    pool.id = id;
    pool.pg_num = pg_num;
    pool.kind = kind;
    pool.k = k;
    pool.m = m;
    pool.failure_domain = failure_domain;
    pools.push_back(pool);
  }

  Bucket &bucket(int32_t id) { return buckets[-1 - id]; }
  cvm_device &device(uint32_t id) { return devices[id]; }

  // A root with racks of hosts of devices, all weight 1.0; returns the root.
  int32_t AddTree(unsigned racks, unsigned hosts_per_rack,
                  unsigned devices_per_host) {
    const int32_t root = AddBucket(CVM_TYPE_ROOT);
    for (unsigned r = 0; r < racks; r++) {
      const int32_t rack = AddBucket(CVM_TYPE_RACK, root);
      for (unsigned h = 0; h < hosts_per_rack; h++) {
        const int32_t host = AddBucket(CVM_TYPE_HOST, rack);
        for (unsigned d = 0; d < devices_per_host; d++) AddDevice(host);
      }
    }
    return root;
  }

  // Allocate and fill a map; finalize it unless told not to.
  int Build(MapPtr *out, cvm_err *err, bool finalize = true) const {
    size_t nr_children = 0;
    for (const Bucket &b : buckets) nr_children += b.children.size();
    cvm_map *raw = nullptr;
    int ret = cvm_map_alloc(&raw, devices.size(), buckets.size(), nr_children,
                            pools.size(), err);
    if (ret) return ret;
    MapPtr map(raw);
    map->epoch = epoch;
    for (size_t i = 0; i < devices.size(); i++) map->devices[i] = devices[i];
    uint32_t next = 0;
    for (size_t i = 0; i < buckets.size(); i++) {
      const Bucket &b = buckets[i];
      map->buckets[i] = {b.id, b.type, next,
                         static_cast<uint32_t>(b.children.size())};
      for (int32_t c : b.children) map->children[next++] = c;
    }
    for (size_t i = 0; i < pools.size(); i++) map->pools[i] = pools[i];
    ret = cvm_map_alloc_pins(map.get(), pins.size(), err);
    if (ret) return ret;
    for (size_t i = 0; i < pins.size(); i++) map->pins[i] = pins[i];
    ret = cvm_map_alloc_overrides(map.get(), overrides.size(), err);
    if (ret) return ret;
    for (size_t i = 0; i < overrides.size(); i++)
      map->overrides[i] = overrides[i];
    if (finalize) {
      ret = cvm_map_finalize(map.get(), err);
      if (ret) return ret;
    }
    *out = std::move(map);
    return 0;
  }

  uint64_t epoch = 1;
  std::vector<cvm_device> devices;
  std::vector<Bucket> buckets;
  std::vector<cvm_pool> pools;
  std::vector<cvm_pg_pin> pins;
  std::vector<cvm_pg_override> overrides;  // ascending (pool, pg, slot)
};

// A pin of `pool`'s PG `pg` to `devs` (the rest of the row CVM_DEV_NONE).
inline cvm_pg_pin Pin(uint32_t pool, uint32_t pg,
                      std::initializer_list<uint32_t> devs) {
  cvm_pg_pin pin{};
  pin.pool_id = pool;
  pin.pg = pg;
  for (uint32_t &d : pin.devs) d = CVM_DEV_NONE;
  size_t i = 0;
  for (uint32_t d : devs) pin.devs[i++] = d;
  return pin;
}

// The PG table of one pool, empty on error (with err set).
inline std::vector<uint32_t> PgTable(const cvm_map *map, uint32_t pool_id,
                                     cvm_err *err = nullptr) {
  uint32_t *table = nullptr;
  size_t n = 0;
  if (cvm_pg_table_create(map, pool_id, &table, &n, err)) return {};
  std::unique_ptr<uint32_t, TableFree> owner(table);
  return std::vector<uint32_t>(table, table + n);
}

// Encode a finalized map; empty on error.
inline std::vector<uint8_t> Encode(const cvm_map *map) {
  std::vector<uint8_t> blob(cvm_map_encoded_len(map));
  if (cvm_map_encode(map, blob.data(), blob.size(), nullptr)) return {};
  return blob;
}

}  // namespace cvm::tools
