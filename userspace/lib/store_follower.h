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
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "metadata_store.h"

namespace cvm {

class StoreFollower {
 public:
  StoreFollower(MetadataStore& store, std::function<void()> apply,
                std::chrono::milliseconds poll = std::chrono::milliseconds(250),
                std::chrono::milliseconds resync = std::chrono::seconds(10));
  ~StoreFollower();  // Stop()
  StoreFollower(const StoreFollower&) = delete;
  StoreFollower& operator=(const StoreFollower&) = delete;

  void Start();
  void Stop();
  // Rounds of `apply` run so far.
  uint64_t rounds() const { return rounds_; }

 private:
  void Run();

  MetadataStore& store_;
  std::function<void()> apply_;
  std::chrono::milliseconds poll_, resync_;
  std::atomic<uint64_t> rounds_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cvm
