#pragma once

// The cluster map as the kernel sees it: cvmd turns its records (hosts,
// devices, pools) into kernel/common's struct cvm_map, validates it with the
// same code the kernel runs, and seals it with the map codec. The sealed blob
// of each epoch is what MAP_SET pushes into cvm.ko.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "map_codec.h"
#include "model.h"
#include "placement.h"
#include "status.h"

namespace cvm {

struct CMapFree {
  void operator()(cvm_map* map) const { cvm_map_free(map); }
};
using CMapPtr = std::unique_ptr<cvm_map, CMapFree>;

// A failure-domain tree with explicit ids, before it becomes a cvm_map.
struct MapBucket {
  int32_t id = 0;  // negative
  uint32_t type = CVM_TYPE_HOST;
  std::vector<int32_t> children;  // device ids (>= 0) or bucket ids (< 0)
};
struct MapLayout {
  uint64_t epoch = 0;
  std::vector<cvm_device> devices;
  std::vector<MapBucket> buckets;
  std::vector<cvm_pool> pools;
  std::vector<cvm_pg_pin> pins;  // ascending (pool, pg); pools of `pools`
  // The balancer's, ascending (pool, pg, slot); pools of `pools`.
  std::vector<cvm_pg_override> overrides;
};

// Allocates and fills a cvm_map from `layout`, then validates it with
// cvm_map_finalize(); the error carries kernel/common's reason.
Result<CMapPtr> MakeCMap(const MapLayout& layout);

// What the map is built from: the records after a change.
struct Topology {
  std::vector<Host> hosts;
  std::vector<Device> devices;
  std::vector<Pool> pools;
};

// Rack and row buckets keep their ids across epochs (straw2 hashes bucket
// ids, so renumbering would move data): RackKey/RowKey name them, and the
// store allocates an index for each new one. Bucket ids: root -1, host
// -(1 + host id), rack or row -(CVM_MAX_BUCKETS + 1 - index).
std::string RackKey(const Host& h);  // "" when the host has no rack
std::string RowKey(const Host& h);   // "" when the host has no row
using BucketIndexes = std::map<std::string, uint32_t>;

// The tree: root, rows, racks, hosts, devices. Hosts without devices, and
// racks or rows without hosts, are left out: they hold nothing.
Result<MapLayout> LayoutFromTopology(uint64_t epoch, const Topology& topology,
                                     const BucketIndexes& indexes);

// Where the data is, for pinning (placement.h): `previous` is the sealed
// map the kernels were last given (empty: none yet). A PG of a pool in
// `pools_with_data` whose row there differs from its up row in the new map
// keeps its previous row as a pin, unless it is `settled` (its data has been
// copied to the up row).
//
// The balancer (balancer.h) decides the up rows from the previous map's:
// it moves at most `balancer_max_moves` PGs of pools with data, counting
// the previous map's pins that are not `settled` (still moving).
struct DataPlacement {
  std::string previous;
  std::set<uint32_t> pools_with_data;
  std::set<std::pair<uint32_t, uint32_t>> settled;  // (pool id, pg)
  uint32_t balancer_max_moves = UINT32_MAX;
};

// A PG's copies on devices its row may no longer name (backfill's sweep).
struct MovedOff {
  uint32_t pool = 0;
  uint32_t pg = 0;
  std::vector<uint32_t> devs;
};

// One epoch's map: the sealed blob, or why the topology cannot be served yet
// (no devices, fewer failure domains than a pool needs, ...).
struct SealedMap {
  std::string blob;     // empty when `problem` is set
  std::string problem;  // empty when the map is servable
  uint32_t crc = 0;     // the blob's CRC32C, 0 without a blob
  // Pools left out of a servable map, each with why: "pool 'ec': ...".
  std::vector<std::string> left_out;
  uint32_t pins = 0;  // PGs held on their previous rows
  // Copies a pin could not keep because their device is gone from the
  // topology (the pin names CVM_DEV_NONE there instead).
  struct LostCopy {
    uint32_t device = 0;
    uint32_t pool = 0;
    uint32_t pg = 0;
  };
  std::vector<LostCopy> lost;
  // Pinned PGs that keep fewer copies (EC: shards) than their data needs
  // (1; k): "pool 1 PG 17 (1 of 2 shards left)".
  std::vector<std::string> unrecoverable;
  // Pinned PGs whose up row changed: the devices that were being filled
  // (backfill targets) and no longer are hold copies nobody reads.
  std::vector<MovedOff> abandoned;
  uint32_t overrides = 0;        // the balancer's slots in the map
  uint32_t balancer_moves = 0;   // PGs it moved to even out shares
  bool balancer_capped = false;  // more to even out, in later epochs
};
SealedMap SealMap(uint64_t epoch, const Topology& topology,
                  const BucketIndexes& indexes, const DataPlacement& data = {});

// Per-pool placement of a sealed map, as kernel/common computes it.
struct PoolPlacement {
  uint32_t pool_id = 0;
  uint32_t pg_num = 0;
  uint32_t width = 0;
  uint32_t table_crc = 0;            // cvm_pg_table_crc of the PG table
  std::map<uint32_t, uint32_t> pgs;  // device id -> PG slots it holds
  uint32_t unplaced = 0;             // slots no device could take
  uint32_t pinned = 0;               // PGs held on the devices of their data
  uint32_t degraded = 0;   // PGs with a slot on no device or a down one
  uint32_t misplaced = 0;  // pinned PGs with every copy on a live device
  uint32_t overrides = 0;  // slots the balancer chose, not straw2
};
Result<std::vector<PoolPlacement>> PlacementOf(const std::string& blob);

}  // namespace cvm
