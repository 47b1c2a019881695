#pragma once

// The balancer: per-PG overrides (placement.h, struct cvm_pg_override) that
// give every device its weight's share of each pool's PGs, to within one PG,
// and move no more data than a change of the cluster requires.
//
// Straw2 alone leaves devices 20-40 % over their share and, since a new
// device changes the draws of its whole bucket chain, moves 2-3x the least
// data when a device comes or goes (cvm-placement-stats). The balancer does
// not try to correct straw2; it decides every pool's rows itself and writes
// the difference from straw2 as overrides:
//
//  1. Rows start where the data is meant to be: the previous map's up rows
//     (straw2's rows for a new pool or a pool whose pg_num changed).
//  2. A slot whose device can no longer hold data for the pool (gone, out,
//     weighing 0, another class) or shares a failure domain with an earlier
//     slot is refilled with the device furthest below its share that the
//     PG's failure domains allow and that takes new data (up, not nearfull
//     or full); straw2's own choice first, if it is below its share. With
//     none, straw2's choice or any device that may hold the data and fits;
//     with none at all, the PG keeps straw2's row. Those copies must move
//     anyway; nothing else has moved.
//  3. A device more than 1 % over its share (and over it rounded up) gives
//     slots, one at a time, to the device furthest below its share that the
//     PG's failure domains allow (a PG whose straw2 row already has that
//     device first: that move removes an override), until it holds its
//     share rounded up; a device more than 1 % under its share (a new one)
//     takes slots from the fullest devices over their share until it holds
//     its share rounded down (straw2's slots first: a device marked in again
//     gets back the PGs it held). Each move takes one copy from a device
//     over its share to one under it, which any placement that balances
//     must also move, so a change moves close to the least data. PGs with a
//     copy on a down device are not moved by this step.
//
// Moves of step 3 are capped (options.max_moves PGs of pools holding data):
// the leader runs the balancer at every map change, so a large correction is
// made in batches, each cut over before the next starts.

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "placement.h"
#include "status.h"

namespace cvm {

struct BalanceOptions {
  // PGs step 3 may move in pools of `capped_pools` (pools without data move
  // freely: nothing is copied); UINT32_MAX: no cap.
  uint32_t max_moves = UINT32_MAX;
  std::set<uint32_t> capped_pools;
  // Devices past their nearfull or full ratio: never given a slot.
  std::set<uint32_t> no_new_data;
};

struct PoolBalance {
  uint32_t pool_id = 0;
  uint32_t refilled = 0;   // slots of step 2
  uint32_t moved = 0;      // slots of step 3
  uint32_t pgs_moved = 0;  // PGs step 3 changed
  double max_share = 0;    // max over devices of slots / share, after
  bool balanced = false;   // no device above its share rounded up
  uint32_t overrides = 0;  // slots that differ from straw2's row
};

struct Balance {
  std::vector<cvm_pg_override> overrides;  // ascending (pool, pg, slot)
  std::vector<PoolBalance> pools;
  uint32_t pgs_moved = 0;  // step 3's PGs in capped pools
  bool capped = false;     // step 3 stopped at max_moves
};

// `crush`: a finalized map without overrides (straw2's rows). `previous`:
// per pool id, the rows the data is meant to be on (pg_num x width), as
// cvm_place_pg gave them in the previous map; a pool missing, or of another
// size, starts from straw2's rows.
Result<Balance> ComputeBalance(
    const cvm_map& crush,
    const std::map<uint32_t, std::vector<uint32_t>>& previous,
    const BalanceOptions& options);

}  // namespace cvm
