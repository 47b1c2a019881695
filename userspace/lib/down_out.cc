#include "down_out.h"

#include <algorithm>
#include <map>

#include "log.h"

namespace cvm {

Result<std::vector<DownOut>> MarkDownDevicesOut(
    MetadataStore& store, int64_t now,
    const std::optional<std::set<std::string>>& live) {
  std::vector<DownOut> marked;
  CVM_ASSIGN_OR_RETURN(ClusterSettings settings, store.GetSettings());
  if (settings.down_out_interval == 0) return marked;
  const auto interval = static_cast<int64_t>(settings.down_out_interval);
  CVM_ASSIGN_OR_RETURN(auto paths, store.ListPathStates());
  std::map<uint64_t, PathState> by_device;
  for (PathState& p : paths) by_device[p.device_id] = std::move(p);
  CVM_ASSIGN_OR_RETURN(auto devices, store.ListDevices());
  size_t in = 0;
  for (const Device& d : devices) in += d.in;
  for (const Device& d : devices) {
    if (!d.in) continue;
    auto p = by_device.find(d.id);
    if (p == by_device.end()) continue;
    // Down since the last live initiator lost it; any path up keeps it in.
    bool down = true;
    size_t reporters = 0;
    int64_t since = 0;
    for (const auto& [host, ip] : p->second.initiators) {
      if (live && !live->count(host)) continue;
      ++reporters;
      down &= !ip.up;
      since = std::max(since, ip.since);
    }
    if (reporters == 0 || !down || now - since < interval) continue;
    // An outage of the initiators' own network looks like every device
    // dying: never more than half of the devices go out this way.
    if (2 * (in - 1) < devices.size()) {
      if (d.up) {
        LogWarn(
            "device {}: its path has been down for {} s, but it stays in: "
            "only {} of {} devices are in (marked down instead)",
            d.id, now - since, in, devices.size());
        static_cast<void>(store.SetDeviceState(d.id, false, std::nullopt));
      }
      continue;
    }
    auto set = store.SetDeviceState(d.id, /*up=*/false, /*in=*/false);
    if (!set.ok() && set.status().code() == Code::kInUse) {
      // Out would leave a pool unplaceable (too few failure domains
      // left): marked down only, its PGs stay degraded where they are;
      // out is tried again each round (placement may allow it later).
      if (d.up) {
        auto down_only = store.SetDeviceState(d.id, false, std::nullopt);
        LogWarn(
            "device {}: its path has been down for {} s, but it stays "
            "in: {}; {}",
            d.id, now - since, set.status().message(),
            down_only.ok() ? "marked down, its PGs stay degraded"
                           : "marking it down failed too: " +
                                 down_only.status().message());
      }
      continue;
    }
    if (!set.ok()) {
      LogWarn("device {}: marking it out failed: {}", d.id,
              set.status().message());
      continue;
    }
    --in;
    LogInfo(
        "device {} marked down and out: its path has been down for {} s "
        "from every initiator (down_out_interval {} s); its data is rebuilt "
        "on the other devices",
        d.id, now - since, interval);
    marked.push_back({d.id, now - since});
  }
  return marked;
}

}  // namespace cvm
