#pragma once

// Backfill: moves the data of pinned PGs (cluster_map.h) to the devices
// placement now gives them, cuts the pins once a pool's data is there, and
// returns the space of the copies no map row names any more.
//
// Where it runs, and why there: the copy of a volume is made by whoever may
// write it, so that a copy can never land over a newer write.
//  - An attached (replicated) volume is copied by its initiator's cvm.ko
//    (kernel/initiator/backfill.c): while a PG is pinned its writes also
//    reach the up row's new devices, and each object is copied under the
//    object fence resync already uses, which holds off the object's writes.
//    The host's cvmd records the epoch cvm.ko reports as copied
//    (KernelSync::ReportBackfill). An attached EC volume waits for a detach.
//  - A detached volume is copied here, in the leader cvmd (the only cvmd of
//    a RocksDB node), over the wire protocol to the targets. Every request
//    speaks for the volume's current attach epoch: a host that attaches it
//    meanwhile has every target fence older epochs first, so no copy lands
//    after its writes begin.
// The cut-over commits only if every volume of the pool still has the
// attach epoch it was copied under (MetadataStore::SettlePins).
//
// One round (RunOnce), for the current map epoch:
//  1. for every pool with pins whose attached volumes are copied: list each
//     detached volume's object shards on the devices of the pins' rows, and
//     copy every shard of a pinned PG to the slot of its up row that lacks it
//     (whole shard, then SET_VERSION to the source's version, so an old copy
//     never lands over a newer version); then SettlePins;
//  2. once every cvmd's kernel holds the current epoch (`all_have`): remove
//     the shards on the devices PGs moved off (recorded by SettlePins, so a
//     copy nobody moved is never touched) that their row no longer names,
//     where the row holds the shard at least as new.
// A round that fails part-way is simply run again: copies are whole-shard
// and idempotent, and nothing is cut or removed before its data is in place.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "metadata_store.h"
#include "status.h"
#include "wire_client.h"

namespace cvm {

struct BackfillRound {
  uint64_t epoch = 0;                // the map epoch it worked on
  uint64_t shards_copied = 0;        // object shards copied to up rows
  uint64_t shards_rebuilt = 0;       // of which rebuilt (EC, source dead)
  uint64_t bytes_copied = 0;         // their bytes
  uint64_t shards_removed = 0;       // copies no row names, removed
  uint64_t pgs_settled = 0;          // pins cut
  uint64_t settled_epoch = 0;        // the epoch that cut them (0: none)
  std::vector<std::string> waiting;  // pools left pinned, each with why
  // The epoch's map: PGs pinned, and PGs with a slot on a down device or
  // none (recovery_progress.h); `counted` once they are.
  bool counted = false;
  uint64_t pgs_moving = 0;
  uint64_t pgs_degraded = 0;
};

class Backfill {
 public:
  // `all_have(epoch)`: every cvmd whose cvm.ko holds a map holds `epoch`
  // or newer. `leader_lease()`: the lease a cut-over commit requires (0 on
  // RocksDB).
  Backfill(MetadataStore& store, std::function<bool(uint64_t)> all_have,
           std::function<int64_t()> leader_lease);

  Result<BackfillRound> RunOnce();
  // Who cvmd's copies speak for at the targets.
  void SetCredentials(const wire::Credentials& c) { creds_ = c; }

 private:
  wire::Credentials creds_;
  MetadataStore& store_;
  std::function<bool(uint64_t)> all_have_;
  std::function<int64_t()> leader_lease_;
};

}  // namespace cvm
