#include "store_follower.h"

#include "log.h"

namespace cvm {

StoreFollower::StoreFollower(MetadataStore& store, std::function<void()> apply,
                             std::chrono::milliseconds poll,
                             std::chrono::milliseconds resync)
    : store_(store), apply_(std::move(apply)), poll_(poll), resync_(resync) {}

StoreFollower::~StoreFollower() { Stop(); }

void StoreFollower::Start() {
  thread_ = std::thread([this] { Run(); });
}

void StoreFollower::Stop() {
  {
    std::lock_guard lock(mutex_);
    if (stop_) return;
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StoreFollower::Run() {
  using Clock = std::chrono::steady_clock;
  int64_t applied_mark = -1;
  Clock::time_point last_round;
  bool warned = false;
  std::unique_lock lock(mutex_);
  do {
    lock.unlock();
    auto mark = store_.ChangeMark();
    if (!mark.ok()) {
      // The store is away (etcd without quorum): the kernel keeps what it
      // has, and this catches up once it answers.
      if (!warned) LogWarn("following the store: {}", mark.status().message());
      warned = true;
    } else {
      warned = false;
      if (*mark != applied_mark || Clock::now() - last_round >= resync_) {
        apply_();
        ++rounds_;
        applied_mark = *mark;
        last_round = Clock::now();
      }
    }
    lock.lock();
  } while (!wake_.wait_for(lock, poll_, [this] { return stop_; }));
}

}  // namespace cvm
