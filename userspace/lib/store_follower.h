#pragma once

// Applies this node's part of the cluster store as it changes: whenever a
// commit by any cvmd moves the store's change mark, and at least every
// `resync` (to retry what could not be done, such as detaching a device
// that was still open), it calls `apply` (KernelSync::Reconcile). A cvmd
// that was down catches up at its first round. cvmd runs one over etcd;
// with RocksDB every change goes through the one cvmd, which applies it
// as it makes it.

#include <atomic>
#include <chrono>
#include <functional>

#include "metadata_store.h"
#include "periodic.h"

namespace cvm {

class StoreFollower {
 public:
  StoreFollower(MetadataStore& store, std::function<void()> apply,
                std::chrono::milliseconds poll = std::chrono::milliseconds(100),
                std::chrono::milliseconds resync = std::chrono::seconds(10));
  ~StoreFollower();  // Stop()
  StoreFollower(const StoreFollower&) = delete;
  StoreFollower& operator=(const StoreFollower&) = delete;

  void Start();
  void Stop();
  // Rounds of `apply` run so far.
  uint64_t rounds() const { return rounds_; }

 private:
  void Round();

  MetadataStore& store_;
  std::function<void()> apply_;
  std::chrono::milliseconds poll_, resync_;
  std::atomic<uint64_t> rounds_{0};
  int64_t applied_mark_ = -1;  // the change mark the last round applied
  std::chrono::steady_clock::time_point last_round_;
  bool warned_ = false;
  Periodic thread_;
};

}  // namespace cvm
