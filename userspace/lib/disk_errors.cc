#include "disk_errors.h"

#include "log.h"

namespace cvm {

Result<std::vector<uint64_t>> DiskErrorMonitor::Round(
    const std::map<uint64_t, TargetDeviceUsage>& usage, int64_t now) {
  std::vector<uint64_t> failing;
  for (const auto& [id, u] : usage) {
    auto [it, first] = seen_.try_emplace(id);
    Seen& s = it->second;
    const uint64_t fresh =
        first ? 0 : (u.io_errors >= s.count ? u.io_errors - s.count : 0);
    if (!first && u.io_errors < s.count) {  // served again: a new counter
      s.recent.clear();
      s.in_window = 0;
    }
    s.count = u.io_errors;
    if (fresh) {
      s.recent.emplace_back(now, fresh);
      s.in_window += fresh;
    }
    while (!s.recent.empty() && now - s.recent.front().first >= kErrorWindow) {
      s.in_window -= s.recent.front().second;
      s.recent.pop_front();
    }
    if (s.in_window) failing.push_back(id);
  }
  for (auto it = seen_.begin(); it != seen_.end();) {
    it = usage.count(it->first) ? std::next(it) : seen_.erase(it);
  }
  std::vector<uint64_t> marked;
  if (failing.empty()) return marked;

  CVM_ASSIGN_OR_RETURN(ClusterSettings settings, store_.GetSettings());
  if (settings.io_error_limit == 0) return marked;
  CVM_ASSIGN_OR_RETURN(auto devices, store_.ListDevices());
  size_t in = 0;
  for (const Device& d : devices) in += d.in;
  for (uint64_t id : failing) {
    Seen& s = seen_[id];
    if (s.in_window < settings.io_error_limit) continue;
    auto d = std::find_if(devices.begin(), devices.end(),
                          [&](const Device& x) { return x.id == id; });
    if (d == devices.end() || (!d->in && !d->up)) continue;
    // As down_out.h: never more than half of the devices out this way.
    const bool may_go_out = d->in && 2 * (in - 1) >= devices.size();
    auto set = store_.SetDeviceState(
        id, /*up=*/false,
        may_go_out ? std::optional<bool>(false) : std::nullopt);
    if (!set.ok() && set.status().code() == Code::kInUse) {
      // Out would leave a pool unplaceable: down only, tried again later.
      set = store_.SetDeviceState(id, false, std::nullopt);
    }
    if (!set.ok()) {
      LogWarn(
          "device {}: {} failed requests in {} s, but marking it out "
          "failed: {}",
          id, s.in_window, kErrorWindow, set.status().message());
      continue;
    }
    if (set->in) {
      LogWarn(
          "device {}: {} failed requests in {} s (io_error_limit {}): "
          "marked down; it stays in (too few devices would be left)",
          id, s.in_window, kErrorWindow, settings.io_error_limit);
      continue;
    }
    if (d->in) --in;
    d->in = false;
    d->up = false;
    LogInfo(
        "device {} marked down and out: its disk failed {} requests in "
        "{} s (io_error_limit {}); its data is rebuilt on the other "
        "devices",
        id, s.in_window, kErrorWindow, settings.io_error_limit);
    marked.push_back(id);
  }
  return marked;
}

}  // namespace cvm
