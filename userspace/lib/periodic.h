#pragma once

// A thread that runs a function every period until stopped: the loop that
// node presence (lease renewal, the leader's work) and the store follower
// each need, written once.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "log.h"

namespace cvm {

class Periodic {
 public:
  Periodic() = default;
  ~Periodic() { Stop(); }
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  // Runs `fn` every `period` on a thread of its own, the first time at once
  // when `at_once`, else after one period.
  void Start(std::chrono::milliseconds period, std::function<void()> fn,
             bool at_once = false) {
    thread_ = std::thread([this, period, fn = std::move(fn), at_once] {
      // The boundary: a round that throws (a reply of an odd shape) is
      // logged and the next one runs; it never ends the daemon.
      const auto round = [&fn] {
        try {
          fn();
        } catch (const std::exception& e) {
          LogError("periodic work failed: {}", e.what());
        }
      };
      if (at_once) round();
      std::unique_lock lock(mutex_);
      while (!wake_.wait_for(lock, period, [this] { return stop_; })) {
        lock.unlock();
        round();
        lock.lock();
      }
    });
  }

  // Wakes the thread and waits for it; a round under way finishes first.
  void Stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cvm
