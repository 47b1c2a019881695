#include "kernel_sync.h"

#include <fmt/format.h>
#include <linux/cvm.h>

#include <algorithm>
#include <map>
#include <optional>

#include "cluster_map.h"
#include "json_fields.h"
#include "log.h"

namespace cvm {

using nlohmann::json;

namespace {

std::string DevPath(uint32_t minor) { return fmt::format("/dev/cvm{}", minor); }

std::optional<KernelVolume> FindKernelVolume(
    const std::vector<KernelVolume>& vols, uint64_t id) {
  for (const auto& k : vols) {
    if (k.id == id) return k;
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<MapPath>> BuildMapPaths(const std::string& blob,
                                           const std::vector<Host>& hosts,
                                           const std::vector<Device>& devices) {
  cvm_map* raw = nullptr;
  cvm_err err{};
  if (cvm_map_decode(blob.data(), blob.size(), &raw, &err) < 0) {
    return Corruption(fmt::format("sealed map does not decode: {}",
                                  err.why ? err.why : "unknown reason"));
  }
  CMapPtr map(raw);
  std::map<uint64_t, const Host*> host_by_id;
  for (const Host& h : hosts) host_by_id[h.id] = &h;
  std::map<uint64_t, const Device*> device_by_id;
  for (const Device& d : devices) device_by_id[d.id] = &d;
  std::vector<MapPath> paths;
  for (uint32_t i = 0; i < map->nr_devices; ++i) {
    const uint32_t id = map->devices[i].id;
    auto d = device_by_id.find(id);
    if (d == device_by_id.end()) {
      return NotFound(fmt::format("map device {} has no device record", id));
    }
    auto h = host_by_id.find(d->second->host_id);
    if (h == host_by_id.end() || h->second->addresses.empty()) {
      return NotFound(fmt::format("device {} has no host with an address", id));
    }
    const Host& host = *h->second;
    auto hp = ParseHostPort(host.addresses.front());
    if (!hp.ok()) {
      return InvalidArgument(fmt::format("device {} on host '{}': {}", id,
                                         host.name, hp.status().message()));
    }
    paths.push_back(
        {id, hp->addr, hp->port, std::string(ToString(host.transport))});
  }
  return paths;
}

Status RecordPathEvent(MetadataStore& store, const PathEvent& event) {
  PathState state;
  state.device_id = event.device_id;
  state.up = event.kind == PathEventKind::kUp;
  state.stale_objects = event.stale_objects;
  state.address = event.address;
  auto recorded = store.RecordPathState(state);
  if (!recorded.ok()) {
    LogWarn("path {} of device {} at {} not recorded: {}", ToString(event.kind),
            event.device_id, event.address, recorded.status().message());
    return recorded.status();
  }
  if (state.up) {
    LogInfo("device {}: path up at {} ({} stale objects to resync)",
            event.device_id, event.address, event.stale_objects);
  } else {
    LogWarn("device {}: path down at {} ({} stale objects so far)",
            event.device_id, event.address, event.stale_objects);
  }
  return {};
}

Result<uint64_t> KernelSync::PushMap() {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(uint64_t epoch, store_.CurrentEpoch());
  if (epoch == 0) return NotFound("no map yet: add a host and a device");
  CVM_ASSIGN_OR_RETURN(ModuleStatus st, kernel_.Query(CVM_GENL_NAME));
  if (!st.loaded) return Unavailable("cvm module not loaded");
  if (st.map_epoch >= epoch) return st.map_epoch;
  CVM_ASSIGN_OR_RETURN(std::string blob, store_.GetMap(epoch));
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  CVM_ASSIGN_OR_RETURN(auto devices, store_.ListDevices());
  CVM_ASSIGN_OR_RETURN(auto paths, BuildMapPaths(blob, hosts, devices));
  MapSetRequest req;
  req.blob = blob;
  req.paths = std::move(paths);
  for (const Host& h : hosts) {
    if (h.name == host_) req.host_id = h.id;
  }
  CVM_RETURN_IF_ERROR(
      kernel_.MapSet(req).WithContext(fmt::format("map epoch {}", epoch)));
  LogInfo("map epoch {} installed in cvm.ko ({} bytes, {} paths)", epoch,
          blob.size(), req.paths.size());
  return epoch;
}

void KernelSync::PushMapBestEffort(std::string_view why) {
  std::lock_guard lock(mutex_);
  auto st = kernel_.Query(CVM_GENL_NAME);
  if (!st.ok()) {
    LogWarn("after {}: cannot query cvm.ko: {}", why, st.status().message());
    return;
  }
  if (!st->loaded) return;
  auto pushed = PushMap();
  if (!pushed.ok()) {
    LogWarn("after {}: map not pushed: {}", why, pushed.status().message());
  }
}

Result<KernelVolume> KernelSync::KernelAttach(const Volume& v) {
  // The new epoch reaches the targets before the new attachment's first
  // request, so none of an older attachment's lands after it (fencing).
  // This node's targets only; other nodes' cvmd fence theirs.
  CVM_ASSIGN_OR_RETURN(ModuleStatus target,
                       kernel_.Query(CVM_TARGET_GENL_NAME));
  if (target.loaded) {
    Status fenced = kernel_.TargetVolumeFence(v.id, v.attach_epoch);
    if (!fenced.ok()) {
      return Status(fenced.code(),
                    fmt::format("volume '{}': attach epoch {} not set on the "
                                "targets: {}",
                                v.name, v.attach_epoch, fenced.message()));
    }
  }
  KernelVolume k;
  k.id = v.id;
  k.pool_id = static_cast<uint32_t>(v.pool_id);
  k.size = v.size;
  k.object_size = static_cast<uint32_t>(v.object_size);
  k.attach_epoch = v.attach_epoch;
  k.name = v.name;
  CVM_ASSIGN_OR_RETURN(Pool pool, store_.GetPoolById(v.pool_id));
  if (pool.policy.kind == Policy::Kind::kErasure)
    k.stripe_unit = static_cast<uint32_t>(v.stripe_unit);
  return kernel_.VolumeAttach(k);
}

Result<json> KernelSync::Attach(std::string_view name) {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  CVM_ASSIGN_OR_RETURN(auto kvols, kernel_.VolumeList());
  if (auto k = FindKernelVolume(kvols, v.id)) {
    return InUse(fmt::format("volume '{}' is attached to {} already", v.name,
                             DevPath(k->minor)));
  }
  if (!v.attached_host.empty() && v.attached_host != host_) {
    return InUse(fmt::format(
        "volume '{}' is attached to host '{}'; detach it there first", v.name,
        v.attached_host));
  }
  CVM_ASSIGN_OR_RETURN(Pool pool, store_.GetPoolById(v.pool_id));
  if (pool.policy.kind == Policy::Kind::kErasure && v.stripe_unit < 4096) {
    return InvalidArgument(fmt::format(
        "volume '{}' is in pool '{}' ({}): its stripe unit {} is below "
        "4 KiB, which the kernel needs for erasure-coded volumes",
        v.name, pool.name, ToString(pool.policy), v.stripe_unit));
  }
  if (v.size % 4096 != 0 || v.pool_id > UINT32_MAX) {
    return InvalidArgument(fmt::format(
        "volume '{}': size {} is not a multiple of 4096, which the kernel "
        "needs",
        v.name, v.size));
  }
  CVM_ASSIGN_OR_RETURN(uint64_t map_epoch, PushMap());
  CVM_ASSIGN_OR_RETURN(Volume attached, store_.AttachVolume(name, host_));
  auto k = KernelAttach(attached);
  if (!k.ok()) {
    // Roll the record back; the epoch stays spent (epochs only grow).
    if (auto undo = store_.DetachVolume(name); !undo.ok()) {
      LogError(
          "volume '{}': kernel attach failed and the record could not "
          "be rolled back: {}",
          name, undo.status().message());
    }
    return k.status();
  }
  LogInfo("volume '{}' attached as {} (attach epoch {}, map epoch {})",
          attached.name, DevPath(k->minor), attached.attach_epoch, map_epoch);
  json out = ToJson(attached);
  out["pool"] = pool.name;
  out["minor"] = k->minor;
  out["device"] = DevPath(k->minor);
  out["map_epoch"] = map_epoch;
  return out;
}

Result<json> KernelSync::Detach(std::string_view name, bool force) {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  if (v.attached_host.empty()) {
    return InvalidArgument(fmt::format("volume '{}' is not attached", v.name));
  }
  if (v.attached_host != host_) {
    return InUse(fmt::format(
        "volume '{}' is attached to host '{}', not to this host '{}'", v.name,
        v.attached_host, host_));
  }
  json out = {{"detached", v.name}, {"device", nullptr}};
  auto kvols = kernel_.VolumeList();
  if (!kvols.ok() && !force) return kvols.status();
  if (kvols.ok()) {
    if (auto k = FindKernelVolume(*kvols, v.id)) {
      Status s = kernel_.VolumeDetach(v.id, force);
      if (!s.ok()) {
        if (s.code() == Code::kInUse && !force) {
          return s.WithContext(fmt::format(
              "{} is open (--force detaches anyway)", DevPath(k->minor)));
        }
        return s;
      }
      out["device"] = DevPath(k->minor);
    }
  }
  CVM_ASSIGN_OR_RETURN(Volume detached, store_.DetachVolume(name));
  LogInfo("volume '{}' detached", detached.name);
  return out;
}

Result<Host> KernelSync::HostWithAddress(std::string_view address) {
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  for (Host& h : hosts) {
    if (std::find(h.addresses.begin(), h.addresses.end(), address) !=
        h.addresses.end()) {
      return std::move(h);
    }
  }
  return NotFound(fmt::format(
      "no host has address '{}' (listeners serve a host's addresses: see "
      "'host list')",
      Printable(address)));
}

Result<json> KernelSync::Listen(std::string_view address) {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(address));
  CVM_ASSIGN_OR_RETURN(Host host, HostWithAddress(address));
  Listener l;
  l.addr = hp.addr;
  l.port = hp.port;
  l.transport = std::string(ToString(host.transport));
  Status s = kernel_.TargetListen(l);
  if (!s.ok() && s.code() != Code::kAlreadyExists) return s;
  CVM_ASSIGN_OR_RETURN(Host h, store_.SetListener(address, true));
  return json{{"host", h.name},
              {"address", std::string(address)},
              {"transport", l.transport},
              {"already", !s.ok()}};
}

Result<json> KernelSync::Unlisten(std::string_view address) {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(HostPort hp, ParseHostPort(address));
  CVM_ASSIGN_OR_RETURN(Host host, HostWithAddress(address));
  Status s = kernel_.TargetUnlisten(hp.addr, hp.port);
  const bool recorded = std::find(host.listeners.begin(), host.listeners.end(),
                                  address) != host.listeners.end();
  // A listener the kernel lost (module reloaded) is only forgotten.
  if (!s.ok() && !(s.code() == Code::kNotFound && recorded)) return s;
  CVM_ASSIGN_OR_RETURN(Host h, store_.SetListener(address, false));
  return json{{"host", h.name}, {"address", std::string(address)}};
}

Result<json> KernelSync::DeviceAdd(uint64_t id, bool format, bool force) {
  std::lock_guard lock(mutex_);
  if (force && !format) {
    return InvalidArgument("--force only goes with --format");
  }
  CVM_ASSIGN_OR_RETURN(Device d, store_.GetDevice(id));
  if (d.id > UINT32_MAX) {
    return InvalidArgument(fmt::format("device id {} exceeds 32 bits", d.id));
  }
  CVM_RETURN_IF_ERROR(
      kernel_
          .TargetDeviceAdd(static_cast<uint32_t>(d.id), d.path, format, force)
          .WithContext(fmt::format("device {} ({})", d.id, d.path)));
  CVM_ASSIGN_OR_RETURN(Device served, store_.SetDeviceServed(d.id, true));
  LogInfo("target serves device {} ({}){}", d.id, d.path,
          format ? ", formatted" : "");
  json out = ToJson(served);
  out["formatted"] = format;
  return out;
}

Result<json> KernelSync::DeviceRemove(uint64_t id) {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(Device d, store_.GetDevice(id));
  Status s = kernel_.TargetDeviceRemove(static_cast<uint32_t>(d.id));
  if (!s.ok() && !(s.code() == Code::kNotFound && d.served)) {
    return s.WithContext(fmt::format("device {} ({})", d.id, d.path));
  }
  CVM_ASSIGN_OR_RETURN(Device removed, store_.SetDeviceServed(d.id, false));
  return ToJson(removed);
}

Result<std::map<uint64_t, TargetDeviceUsage>> KernelSync::TargetUsage() {
  std::map<uint64_t, TargetDeviceUsage> out;
  CVM_ASSIGN_OR_RETURN(ModuleStatus target,
                       kernel_.Query(CVM_TARGET_GENL_NAME));
  if (!target.loaded) return out;
  CVM_ASSIGN_OR_RETURN(auto list, kernel_.TargetDeviceList());
  for (auto& u : list) out[u.id] = std::move(u);
  return out;
}

json KernelSync::Reconcile() {
  std::lock_guard lock(mutex_);
  json report = {{"host", host_},
                 {"detached", json::array()},
                 {"devices", json::array()},
                 {"listeners", json::array()},
                 {"attached", json::array()},
                 {"errors", json::array()}};
  const auto error = [&](std::string what, const Status& s) {
    LogWarn("reconcile: {}: {}", what, s.message());
    report["errors"].push_back(fmt::format("{}: {}", what, s.message()));
  };
  auto target = kernel_.Query(CVM_TARGET_GENL_NAME);
  if (target.ok() && target->loaded) {
    auto devices = store_.ListDevices();
    if (!devices.ok()) error("devices", devices.status());
    // In a cluster only this host's devices and listeners are served here.
    uint64_t my_host_id = 0;
    if (cluster_) {
      auto me = store_.GetHost(host_);
      if (me.ok()) my_host_id = me->id;
    }
    for (const Device& d : devices.ok() ? *devices : std::vector<Device>{}) {
      if (!d.served || (cluster_ && d.host_id != my_host_id)) continue;
      Status s = kernel_.TargetDeviceAdd(static_cast<uint32_t>(d.id), d.path,
                                         false, false);
      if (s.ok()) report["devices"].push_back(d.id);
      if (!s.ok() && s.code() != Code::kAlreadyExists) {
        error(fmt::format("device {}", d.id), s);
      }
    }
    auto hosts = store_.ListHosts();
    if (!hosts.ok()) error("hosts", hosts.status());
    for (const Host& h : hosts.ok() ? *hosts : std::vector<Host>{}) {
      if (cluster_ && h.name != host_) continue;
      for (const std::string& a : h.listeners) {
        auto hp = ParseHostPort(a);
        if (!hp.ok()) {
          error(fmt::format("listener {}", a), hp.status());
          continue;
        }
        Status s = kernel_.TargetListen(
            {hp->addr, hp->port, std::string(ToString(h.transport)), 0, ""});
        if (s.ok()) report["listeners"].push_back(a);
        if (!s.ok() && s.code() != Code::kAlreadyExists) {
          error(fmt::format("listener {}", a), s);
        }
      }
    }
  } else if (!target.ok()) {
    error("cvm_target", target.status());
  }

  auto initiator = kernel_.Query(CVM_GENL_NAME);
  if (!initiator.ok()) {
    error("cvm", initiator.status());
    return report;
  }
  if (!initiator->loaded) return report;
  auto epoch = store_.CurrentEpoch();
  if (epoch.ok() && *epoch > 0) {
    auto pushed = PushMap();
    if (pushed.ok()) {
      report["map_epoch"] = *pushed;
    } else {
      error("map", pushed.status());
    }
  }
  auto kvols = kernel_.VolumeList();
  auto volumes = store_.ListVolumes();
  if (!kvols.ok() || !volumes.ok()) {
    error("volumes", kvols.ok() ? volumes.status() : kvols.status());
    return report;
  }
  const auto now = std::chrono::steady_clock::now();
  for (const Volume& v : *volumes) {
    if (v.attached_host != host_ || FindKernelVolume(*kvols, v.id)) continue;
    // A failed attach is tried again after a pause, not at once: its epoch
    // bump is itself a store change that would run this again.
    auto retry = attach_retry_after_.find(v.id);
    if (retry != attach_retry_after_.end() && now < retry->second) continue;
    attach_retry_after_[v.id] = now + std::chrono::seconds(10);
    // Every attach is a new epoch, re-attaches too (fencing).
    auto bumped = store_.AttachVolume(v.name, host_, /*reattach_only=*/true);
    if (!bumped.ok()) {
      error(fmt::format("volume '{}'", v.name), bumped.status());
      continue;
    }
    auto k = KernelAttach(*bumped);
    if (!k.ok()) {
      error(fmt::format("volume '{}'", v.name), k.status());
      continue;
    }
    attach_retry_after_.erase(v.id);
    LogInfo("reconcile: volume '{}' attached as {} (attach epoch {})", v.name,
            DevPath(k->minor), bumped->attach_epoch);
    report["attached"].push_back(
        json{{"name", v.name}, {"device", DevPath(k->minor)}});
  }
  for (const KernelVolume& k : *kvols) {
    const bool known =
        std::any_of(volumes->begin(), volumes->end(), [&](const Volume& v) {
          return v.id == k.id && v.attached_host == host_;
        });
    if (known) continue;
    // A store that does not know this host (a wrong --store prefix, a
    // new cluster) is no reason to pull devices away.
    if (!cluster_ || !store_.GetHost(host_).ok()) {
      LogWarn(
          "reconcile: {} (volume id {}) is attached in the kernel but "
          "not recorded as attached here; left alone",
          DevPath(k.minor), k.id);
      continue;
    }
    // Detached (or moved) by another node: let go of it once it is closed;
    // an open device stays and is tried again at the next change or resync.
    Status s = kernel_.VolumeDetach(k.id, /*force=*/false);
    if (s.ok()) {
      LogInfo(
          "reconcile: {} (volume id {}) detached: no longer recorded "
          "as attached to this host",
          DevPath(k.minor), k.id);
      busy_logged_.erase(k.id);
      report["detached"].push_back(DevPath(k.minor));
    } else if (busy_logged_.insert(k.id).second) {
      error(fmt::format("{} (volume id {}) is no longer attached here but "
                        "cannot be detached yet",
                        DevPath(k.minor), k.id),
            s);
    }
  }
  return report;
}

Result<json> KernelSync::AttachRemote(std::string_view name,
                                      std::string_view host) {
  std::lock_guard lock(mutex_);
  if (!cluster_) {
    return InvalidArgument(fmt::format(
        "attaching on host '{}' needs the cluster store (cvmd --store "
        "etcd://...): with RocksDB no other cvmd would bring it up",
        host));
  }
  CVM_ASSIGN_OR_RETURN(Host h, store_.GetHost(host));
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  if (v.attached_host == h.name) {
    return InUse(fmt::format("volume '{}' is attached to host '{}' already",
                             v.name, h.name));
  }
  CVM_ASSIGN_OR_RETURN(Volume attached, store_.AttachVolume(name, h.name));
  LogInfo(
      "volume '{}' recorded as attached to host '{}' (attach epoch {}); "
      "its cvmd attaches it",
      attached.name, h.name, attached.attach_epoch);
  json out = ToJson(attached);
  out["device"] = nullptr;  // known on that host once it attached it
  return out;
}

Result<json> KernelSync::DetachRemote(std::string_view name) {
  std::lock_guard lock(mutex_);
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  if (v.attached_host.empty()) {
    return InvalidArgument(fmt::format("volume '{}' is not attached", v.name));
  }
  CVM_ASSIGN_OR_RETURN(Volume detached, store_.DetachVolume(name));
  LogInfo(
      "volume '{}' recorded as detached from host '{}'; its cvmd "
      "detaches it",
      detached.name, v.attached_host);
  return json{{"detached", detached.name},
              {"host", v.attached_host},
              {"device", nullptr}};
}

}  // namespace cvm
