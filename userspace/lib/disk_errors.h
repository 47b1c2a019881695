#pragma once

// Self-healing, part two: a disk that keeps failing while its path is up.
// Each node's cvmd reads the I/O error counts of the devices its own
// cvm_target serves (CVM_TARGET_DEVICE_ATTR_IO_ERRORS: requests answered
// IO_ERROR) every backfill round. A device that failed io_error_limit
// requests or more within kErrorWindow seconds (model.h ClusterSettings;
// 0: never) is marked down and out, as down_out.h does for a device whose
// path is lost: its disk is not trusted for reads or as a backfill source,
// and its data is rebuilt on the other devices with no command. As there,
// never more than half of the devices go out this way, and a device whose
// going out would leave a pool unplaceable is marked down only.
//
// A count that goes down (the device was removed from the target and added
// again) starts over; errors from before this cvmd started are not counted.

#include <cstdint>
#include <deque>
#include <map>
#include <utility>
#include <vector>

#include "metadata_store.h"
#include "netlink_client.h"
#include "status.h"

namespace cvm {

inline constexpr int64_t kErrorWindow = 60;

class DiskErrorMonitor {
 public:
  explicit DiskErrorMonitor(MetadataStore& store) : store_(store) {}
  // Takes this round's counts at `now` (unix seconds); returns the devices
  // it marked out. The store is read only when a device has new errors.
  Result<std::vector<uint64_t>> Round(
      const std::map<uint64_t, TargetDeviceUsage>& usage, int64_t now);

 private:
  struct Seen {
    uint64_t count = 0;  // the target's counter when last read
    std::deque<std::pair<int64_t, uint64_t>> recent;  // (when, new errors)
    uint64_t in_window = 0;
  };
  MetadataStore& store_;
  std::map<uint64_t, Seen> seen_;
};

}  // namespace cvm
