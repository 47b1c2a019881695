#pragma once

// Self-healing: the leader marks a device down and out once every
// initiator that reported on its path has seen it down for the cluster's
// down_out_interval (model.h ClusterSettings). Placement then gives its
// PGs to the other devices, their pins keep them readable from the
// survivors meanwhile, and backfill (backfill.h) rebuilds the copies it
// held: the cluster returns to full redundancy with no command.
//
// A device whose going out would leave a pool with volumes unplaceable
// (fewer failure domains than its width) is marked down only: its PGs stay
// degraded in place, and out is tried again each round. And never more than
// half of the devices go out this way: an outage of the initiators' own
// network looks like every device dying (Ceph's mon_osd_min_in_ratio).
//
// Only path events count (cvm.ko's PATH_DOWN/PATH_UP, as KernelSync
// records them): a device no initiator has reported on is never marked
// out, and one path still up keeps it in. But only the reports of live
// initiators count: a host powered off for good never reports its paths
// down, and its last word ("up", for the disk in the same box above all)
// must not keep its device in forever.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "metadata_store.h"
#include "status.h"

namespace cvm {

struct DownOut {
  uint64_t device_id = 0;
  int64_t down_for = 0;  // seconds its path had been down
};

// Marks out (and down) every device in placement whose path has been down
// from every reporting initiator for at least the interval at `now` (unix
// seconds). With `live` (the cvmds up, on etcd), reports of other hosts are
// ignored. Returns those it marked.
Result<std::vector<DownOut>> MarkDownDevicesOut(
    MetadataStore& store, int64_t now,
    const std::optional<std::set<std::string>>& live = std::nullopt);

}  // namespace cvm
