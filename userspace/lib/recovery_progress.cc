#include "recovery_progress.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cluster_map.h"
#include "json_fields.h"
#include "log.h"

namespace cvm {

using nlohmann::json;

json ToJson(const RecoveryProgress& p) {
  return {{"started", p.started},
          {"start_epoch", p.start_epoch},
          {"pgs_total", p.pgs_total},
          {"pgs_moving", p.pgs_moving},
          {"pgs_degraded", p.pgs_degraded},
          {"last_moved", p.last_moved},
          {"bytes_copied", p.bytes_copied},
          {"shards_copied", p.shards_copied},
          {"shards_rebuilt", p.shards_rebuilt},
          {"stalled", p.stalled}};
}

Result<RecoveryProgress> DecodeRecoveryProgress(std::string_view bytes) {
  RecoveryProgress p;
  if (bytes.empty()) return p;
  const json j = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Corruption("recovery record is not an object");
  JsonFields f(j, "recovery record field", Code::kCorruption);
  f.Expect({"started", "start_epoch", "pgs_total", "pgs_moving", "pgs_degraded",
            "last_moved", "bytes_copied", "shards_copied", "shards_rebuilt",
            "stalled"});
  p.started = f.I64("started");
  p.start_epoch = f.U64("start_epoch");
  p.pgs_total = f.U64("pgs_total");
  p.pgs_moving = f.U64("pgs_moving");
  p.pgs_degraded = f.U64("pgs_degraded");
  p.last_moved = f.I64("last_moved");
  p.bytes_copied = f.U64("bytes_copied");
  p.shards_copied = f.U64("shards_copied");
  p.shards_rebuilt = f.U64("shards_rebuilt");
  p.stalled = f.Bool("stalled");
  CVM_RETURN_IF_ERROR(f.status());
  return p;
}

Result<PgCounts> CountPgs(MetadataStore& store) {
  PgCounts c;
  CVM_ASSIGN_OR_RETURN(uint64_t epoch, store.CurrentEpoch());
  if (epoch == 0) return c;
  CVM_ASSIGN_OR_RETURN(MapEpoch e, store.GetEpoch(epoch));
  if (!e.problem.empty()) return c;
  CVM_ASSIGN_OR_RETURN(std::string blob, store.GetMap(epoch));
  CVM_ASSIGN_OR_RETURN(auto placements, PlacementOf(blob));
  for (const PoolPlacement& p : placements) {
    c.moving += p.pinned;
    c.degraded += p.degraded;
    c.misplaced += p.misplaced;
    c.total += p.pg_num;
  }
  return c;
}

Status ObserveRecovery(MetadataStore& store, const BackfillRound& round,
                       int64_t now, RecoveryCache* cache, int64_t stall_after) {
  PgCounts counts;
  if (round.counted) {
    counts.moving = round.pgs_moving;
    counts.degraded = round.pgs_degraded;
  } else {
    CVM_ASSIGN_OR_RETURN(counts, CountPgs(store));
  }
  RecoveryCache local;
  if (!cache) cache = &local;
  if (!cache->loaded) {
    CVM_ASSIGN_OR_RETURN(std::string raw, store.GetRecoveryRecord());
    CVM_ASSIGN_OR_RETURN(cache->last, DecodeRecoveryProgress(raw));
    cache->loaded = true;
  }
  RecoveryProgress p = cache->last;
  const RecoveryProgress before = p;
  if (counts.moving == 0) {
    if (p.started == 0) return {};
    LogInfo(
        "recovery done: {} PGs moved in {} s (cvmd copied {} MiB, {} shards, "
        "{} rebuilt)",
        p.pgs_total, now - p.started, p.bytes_copied >> 20, p.shards_copied,
        p.shards_rebuilt);
    CVM_RETURN_IF_ERROR(store.PutRecoveryRecord(""));
    cache->last = RecoveryProgress{};
    return {};
  }
  if (p.started == 0) {
    p.started = p.last_moved = now;
    p.start_epoch = round.epoch;
    p.pgs_total = p.pgs_moving = counts.moving;
    LogInfo(
        "recovery started: {} PGs to move, {} of them degraded (map epoch {})",
        counts.moving, counts.degraded, round.epoch);
  } else {
    if (counts.moving < p.pgs_moving) {
      p.last_moved = now;
      if (p.stalled) {
        LogInfo("recovery moves again: {} PGs left", counts.moving);
      }
      p.stalled = false;
    } else if (counts.moving > p.pgs_moving) {
      p.pgs_total += counts.moving - p.pgs_moving;  // a new change
    }
    p.pgs_moving = counts.moving;
  }
  p.pgs_degraded = counts.degraded;
  p.bytes_copied += round.bytes_copied;
  p.shards_copied += round.shards_copied;
  p.shards_rebuilt += round.shards_rebuilt;
  if (!p.stalled && now - p.last_moved >= stall_after) {
    p.stalled = true;
    LogWarn("recovery stalled: no PG moved for {} s, {} left; waiting: {}",
            now - p.last_moved, p.pgs_moving,
            round.waiting.empty()
                ? std::string("cvm.ko's copies")
                : fmt::format("{}", fmt::join(round.waiting, "; ")));
  }
  if (p == before) return {};
  CVM_RETURN_IF_ERROR(store.PutRecoveryRecord(ToJson(p).dump()));
  cache->last = p;
  return {};
}

}  // namespace cvm
