#include "fullness.h"

#include "log.h"

namespace cvm {

Result<std::vector<FillChange>> RecordFullness(
    MetadataStore& store, const std::map<uint64_t, TargetDeviceUsage>& usage) {
  std::vector<FillChange> changes;
  if (usage.empty()) return changes;
  CVM_ASSIGN_OR_RETURN(ClusterSettings settings, store.GetSettings());
  CVM_ASSIGN_OR_RETURN(auto devices, store.ListDevices());
  for (const Device& d : devices) {
    auto u = usage.find(d.id);
    if (u == usage.end() || u->second.capacity == 0) continue;
    const double used = static_cast<double>(u->second.used) /
                        static_cast<double>(u->second.capacity);
    // Set at the ratio, cleared only below it by the margin.
    const auto mark = [&](bool was, double ratio) {
      return was ? used >= ratio - kFillMargin : used >= ratio;
    };
    const bool nearfull = mark(d.nearfull, settings.nearfull_ratio);
    const bool full = mark(d.full, settings.full_ratio);
    if (nearfull == d.nearfull && full == d.full) continue;
    auto set = store.SetDeviceFill(d.id, nearfull, full);
    if (!set.ok()) {
      LogWarn("device {}: recording its fullness failed: {}", d.id,
              set.status().message());
      continue;
    }
    const double pct = used * 100;
    if (full && !d.full) {
      LogInfo(
          "device {} is full ({:.0f}% used, full_ratio {}): writes "
          "reaching it are refused with NO_SPACE",
          d.id, pct, settings.full_ratio);
    } else if (!full && d.full) {
      LogInfo(
          "device {} is no longer full ({:.0f}% used, full_ratio {}): "
          "writes reaching it resume",
          d.id, pct, settings.full_ratio);
    } else if (nearfull && !d.nearfull) {
      LogInfo(
          "device {} is nearfull ({:.0f}% used, nearfull_ratio {}): "
          "backfill places no data there",
          d.id, pct, settings.nearfull_ratio);
    } else if (!nearfull && d.nearfull) {
      LogInfo(
          "device {} is no longer nearfull ({:.0f}% used, "
          "nearfull_ratio {})",
          d.id, pct, settings.nearfull_ratio);
    }
    changes.push_back({d.id, nearfull, full, used});
  }
  return changes;
}

}  // namespace cvm
