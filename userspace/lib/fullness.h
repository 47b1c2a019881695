#pragma once

// Device fullness. Each node's cvmd measures the devices its cvm_target
// serves against the cluster's nearfull_ratio and full_ratio (model.h
// ClusterSettings) and records the result in the device record:
//  - nearfull: a warning (cvmadm status, df) and backfill (backfill.h)
//    places no data there;
//  - full: the map marks the device full (CVM_DEV_FULL), and cvm.ko
//    refuses a write whose object's row has a full device with NO_SPACE
//    before sending it, so no replica takes it and none goes stale
//    because one device filled first. Discards still go through; once
//    they free space the mark is cleared (below the ratio by a margin, so
//    a device at the edge does not flap) and writes resume.
// The target's own hard limit (its extent bitmap) remains the backstop
// for a burst faster than a round.

#include <cstdint>
#include <map>
#include <vector>

#include "metadata_store.h"
#include "netlink_client.h"
#include "status.h"

namespace cvm {

struct FillChange {
  uint64_t device_id = 0;
  bool nearfull = false;
  bool full = false;
  double used = 0;  // share of its space in use
};

// A mark is cleared only this far below its ratio (hysteresis).
inline constexpr double kFillMargin = 0.02;
// Seconds between reads of the settings and the devices' marks: a changed
// ratio takes effect within this.
inline constexpr int64_t kFillRefresh = 10;
// Seconds the store is left alone after it failed a call.
inline constexpr int64_t kFillQuiet = 60;

class FullnessMonitor {
 public:
  explicit FullnessMonitor(MetadataStore& store);
  // Records the fullness of the devices in `usage` (this node's target) at
  // `now` (unix seconds); returns the devices whose marks changed. The
  // store is written only on a change, and read every kFillRefresh s.
  Result<std::vector<FillChange>> Round(
      const std::map<uint64_t, TargetDeviceUsage>& usage, int64_t now);

 private:
  MetadataStore& store_;
  ClusterSettings settings_;
  int64_t read_at_ = 0;
  int64_t quiet_until_ = 0;
  std::map<uint64_t, std::pair<bool, bool>> marks_;  // nearfull, full
};

}  // namespace cvm
