#include "fullness.h"

#include "log.h"

namespace cvm {

FullnessMonitor::FullnessMonitor(MetadataStore& store) : store_(store) {}

Result<std::vector<FillChange>> FullnessMonitor::Round(
    const std::map<uint64_t, TargetDeviceUsage>& usage, int64_t now) {
  std::vector<FillChange> changes;
  if (usage.empty() || now < quiet_until_) return changes;
  // The store is read now and then, not every round: a store that cannot
  // take requests (etcd without quorum) must not hold up every round.
  // A device not seen yet is worth an early read (at most one a second).
  bool unknown = false;
  for (const auto& [id, u] : usage) unknown |= !marks_.count(id);
  if (read_at_ == 0 || now - read_at_ >= kFillRefresh ||
      (unknown && now != read_at_)) {
    // A store that cannot answer (etcd without quorum: each call waits out
    // its timeout, holding the client) is left alone for a while.
    auto settings = store_.GetSettings();
    auto devices = settings.ok()
                       ? store_.ListDevices()
                       : Result<std::vector<Device>>(settings.status());
    if (!devices.ok()) {
      quiet_until_ = now + kFillQuiet;
      return devices.status();
    }
    settings_ = *settings;
    marks_.clear();
    for (const Device& d : *devices) marks_[d.id] = {d.nearfull, d.full};
    read_at_ = now;
  }
  for (const auto& [id, u] : usage) {
    auto known = marks_.find(id);
    if (known == marks_.end() || u.capacity == 0) continue;
    const auto [was_nearfull, was_full] = known->second;
    const double used =
        static_cast<double>(u.used) / static_cast<double>(u.capacity);
    // Set at the ratio, cleared only below it by the margin.
    const auto mark = [&](bool was, double ratio) {
      return was ? used >= ratio - kFillMargin : used >= ratio;
    };
    const bool nearfull = mark(was_nearfull, settings_.nearfull_ratio);
    const bool full = mark(was_full, settings_.full_ratio);
    if (nearfull == was_nearfull && full == was_full) continue;
    auto set = store_.SetDeviceFill(id, nearfull, full);
    if (!set.ok()) {
      LogWarn("device {}: recording its fullness failed: {}", id,
              set.status().message());
      quiet_until_ = now + kFillQuiet;
      break;
    }
    known->second = {nearfull, full};
    const double pct = used * 100;
    if (full && !was_full) {
      LogInfo(
          "device {} is full ({:.0f}% used, full_ratio {}): writes "
          "reaching it are refused with NO_SPACE",
          id, pct, settings_.full_ratio);
    } else if (!full && was_full) {
      LogInfo(
          "device {} is no longer full ({:.0f}% used, full_ratio {}): "
          "writes reaching it resume",
          id, pct, settings_.full_ratio);
    } else if (nearfull && !was_nearfull) {
      LogInfo(
          "device {} is nearfull ({:.0f}% used, nearfull_ratio {}): "
          "backfill places no data there",
          id, pct, settings_.nearfull_ratio);
    } else if (!nearfull && was_nearfull) {
      LogInfo(
          "device {} is no longer nearfull ({:.0f}% used, "
          "nearfull_ratio {})",
          id, pct, settings_.nearfull_ratio);
    }
    changes.push_back({id, nearfull, full, used});
  }
  return changes;
}

}  // namespace cvm
