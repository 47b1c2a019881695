#pragma once

// Recovery progress: what the leader's backfill rounds (backfill.h) have
// done since the cluster last had nothing to move. Kept in the store, so
// any node's `recovery.status` shows it; its start, its end and a stall
// (no PG moved for `stall_after` seconds) are logged once each.
//
// PGs are the unit of progress, as the pins the rounds cut: the rate and
// the ETA are in PGs. Bytes are those cvmd's own copies wrote (detached
// volumes, rebuilt EC shards); cvm.ko's copies of attached volumes are not
// counted in bytes, only in PGs.

#include <cstdint>

#include "backfill.h"
#include "metadata_store.h"
#include "status.h"

namespace cvm {

struct RecoveryProgress {
  int64_t started = 0;  // unix seconds; 0: nothing moving
  uint64_t start_epoch = 0;
  uint64_t pgs_total = 0;     // to move since it started (new changes add)
  uint64_t pgs_moving = 0;    // still pinned at the last round
  uint64_t pgs_degraded = 0;  // with fewer live copies than the pool wants
  int64_t last_moved = 0;     // when the moving count last fell
  uint64_t bytes_copied = 0;  // by cvmd's backfill
  uint64_t shards_copied = 0;
  uint64_t shards_rebuilt = 0;
  bool stalled = false;
  bool operator==(const RecoveryProgress&) const = default;
};

nlohmann::json ToJson(const RecoveryProgress& p);
Result<RecoveryProgress> DecodeRecoveryProgress(std::string_view bytes);

// The moving and degraded PG counts of the current epoch's map.
struct PgCounts {
  uint64_t moving = 0;
  uint64_t degraded = 0;
  uint64_t misplaced = 0;
  uint64_t total = 0;
};
Result<PgCounts> CountPgs(MetadataStore& store);

// What the leader last read or wrote, so that a round changing nothing
// touches the store not at all (the leader alone writes the record; clear
// `loaded` when leadership may have moved).
struct RecoveryCache {
  bool loaded = false;
  RecoveryProgress last;
};

// Called by the leader after each backfill round, at `now` (unix seconds).
// The PG counts come from the round when it counted them, else from the
// store (CountPgs).
Status ObserveRecovery(MetadataStore& store, const BackfillRound& round,
                       int64_t now, RecoveryCache* cache = nullptr,
                       int64_t stall_after = 60);

}  // namespace cvm
