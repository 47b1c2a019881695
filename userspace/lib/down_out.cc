#include "down_out.h"

#include <algorithm>
#include <map>

#include "log.h"

namespace cvm {

Result<std::vector<DownOut>> MarkDownDevicesOut(MetadataStore& store,
                                                int64_t now) {
  std::vector<DownOut> marked;
  CVM_ASSIGN_OR_RETURN(ClusterSettings settings, store.GetSettings());
  if (settings.down_out_interval == 0) return marked;
  const auto interval = static_cast<int64_t>(settings.down_out_interval);
  CVM_ASSIGN_OR_RETURN(auto paths, store.ListPathStates());
  std::map<uint64_t, PathState> by_device;
  for (PathState& p : paths) by_device[p.device_id] = std::move(p);
  CVM_ASSIGN_OR_RETURN(auto devices, store.ListDevices());
  for (const Device& d : devices) {
    if (!d.in) continue;
    auto p = by_device.find(d.id);
    if (p == by_device.end() || p->second.initiators.empty()) continue;
    // Down since the last initiator lost it; any path up keeps it in.
    bool down = true;
    int64_t since = 0;
    for (const auto& [host, ip] : p->second.initiators) {
      down &= !ip.up;
      since = std::max(since, ip.since);
    }
    if (!down || now - since < interval) continue;
    auto set = store.SetDeviceState(d.id, /*up=*/false, /*in=*/false);
    if (!set.ok()) {
      LogWarn("device {}: marking it out failed: {}", d.id,
              set.status().message());
      continue;
    }
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
