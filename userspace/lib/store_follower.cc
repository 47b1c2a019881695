#include "store_follower.h"

#include "log.h"

namespace cvm {

StoreFollower::StoreFollower(MetadataStore& store, std::function<void()> apply,
                             std::chrono::milliseconds poll,
                             std::chrono::milliseconds resync)
    : store_(store), apply_(std::move(apply)), poll_(poll), resync_(resync) {}

StoreFollower::~StoreFollower() { Stop(); }

void StoreFollower::Start() {
  thread_.Start(
      poll_, [this] { Round(); }, /*at_once=*/true);
}

void StoreFollower::Stop() { thread_.Stop(); }

void StoreFollower::Round() {
  auto mark = store_.ChangeMark();
  if (!mark.ok()) {
    // The store is away (etcd without quorum): the kernel keeps what it
    // has, and this catches up once it answers.
    if (!warned_) LogWarn("following the store: {}", mark.status().message());
    warned_ = true;
    return;
  }
  warned_ = false;
  const auto now = std::chrono::steady_clock::now();
  if (*mark != applied_mark_ || now - last_round_ >= resync_) {
    apply_();
    ++rounds_;
    applied_mark_ = *mark;
    last_round_ = std::chrono::steady_clock::now();
  }
}

}  // namespace cvm
