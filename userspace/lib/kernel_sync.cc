#include "kernel_sync.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/cvm.h>

#include <algorithm>
#include <map>
#include <optional>
#include <thread>

#include "cluster_map.h"
#include "hex.h"
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

Status RecordPathEvent(MetadataStore& store, const std::string& host,
                       const PathEvent& event) {
  PathState state;
  state.host = host;
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
  if (st.map_epoch >= epoch) {
    NoteInstalled(st.map_epoch);
    return st.map_epoch;
  }
  // The map and its devices' addresses from one revision of the store.
  CVM_ASSIGN_OR_RETURN(MetadataStore::MapSnapshot snap,
                       store_.ReadMapSnapshot());
  epoch = snap.epoch;
  CVM_ASSIGN_OR_RETURN(auto paths,
                       BuildMapPaths(snap.blob, snap.hosts, snap.devices));
  MapSetRequest req;
  req.blob = snap.blob;
  req.paths = std::move(paths);
  for (const Host& h : snap.hosts) {
    if (h.name == host_) req.host_id = h.id;
  }
  if (secrets_) {
    const HostSecret cur = secrets_->Current();
    req.host_key.assign(cur.secret.begin(), cur.secret.end());
    req.key_id = cur.key_id;
  }
  CVM_RETURN_IF_ERROR(
      kernel_.MapSet(req).WithContext(fmt::format("map epoch {}", epoch)));
  LogInfo("map epoch {} installed in cvm.ko ({} bytes, {} paths)", epoch,
          snap.blob.size(), req.paths.size());
  NoteInstalled(epoch);
  return epoch;
}

void KernelSync::ReportBackfill() {
  auto volumes = kernel_.VolumeList();
  if (!volumes.ok()) return;  // cvm.ko not loaded: nothing attached here
  std::map<std::string, std::pair<uint64_t, uint64_t>> seen;
  for (const KernelVolume& kv : *volumes) {
    if (kv.backfilled_epoch == 0) continue;
    const std::pair<uint64_t, uint64_t> report{kv.attach_epoch,
                                               kv.backfilled_epoch};
    // Recorded (or found recorded) already: no transaction every round.
    if (auto it = backfill_reported_.find(kv.name);
        it != backfill_reported_.end() && it->second == report) {
      seen[kv.name] = report;
      continue;
    }
    auto recorded = store_.RecordBackfilled(kv.name, host_, kv.attach_epoch,
                                            kv.backfilled_epoch);
    if (!recorded.ok()) {
      LogWarn("volume '{}': recording its backfill: {}", kv.name,
              recorded.status().message());
      continue;
    }
    seen[kv.name] = report;
    if (*recorded) {
      LogInfo("volume '{}': copied for map epoch {}", kv.name,
              kv.backfilled_epoch);
    }
  }
  backfill_reported_ = std::move(seen);
}

void KernelSync::NoteInstalled(uint64_t epoch) {
  if (published_epoch_ == epoch || !map_installed_) return;
  if (map_installed_(epoch)) published_epoch_ = epoch;
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

wire::Credentials KernelSync::Credentials() {
  wire::Credentials c;
  c.host_id = MyHostId();  // 0: this RocksDB node is none of its hosts
  if (secrets_) {
    const HostSecret cur = secrets_->Current();
    c.key_id = cur.key_id;
    c.secret = cur.secret;
  }
  return c;
}

void KernelSync::WarnOnce(const std::string& message) {
  if (warned_.insert(message).second) LogWarn("host keys: {}", message);
}

Status KernelSync::SyncHostKeys(json* report) {
  std::lock_guard lock(mutex_);
  Status first;
  const auto error = [&](std::string what, const Status& s) {
    LogWarn("host keys: {}: {}", what, s.message());
    if (report) {
      (*report)["errors"].push_back(
          fmt::format("host keys: {}: {}", what, s.message()));
    }
    if (first.ok()) first = s.WithContext("host keys: " + what);
    return first;
  };
  // With RocksDB this node may not be one of the hosts it manages: it
  // speaks as host 0 (cvm.ko's HELLO says what PushMap gave it).
  const uint64_t me = MyHostId();
  if (!secrets_ || (cluster_ && me == 0)) return first;
  auto rows = store_.ListHostKeys();
  auto devices = store_.ListDevices();
  auto hosts = store_.ListHosts();
  auto seal_keys = store_.ListSealKeys();
  if (!rows.ok()) return error("reading", rows.status());
  if (!devices.ok()) return error("devices", devices.status());
  if (!hosts.ok()) return error("hosts", hosts.status());
  if (!seal_keys.ok()) return error("sealing keys", seal_keys.status());

  // This host's sealing key, published for the nodes that seal to it and
  // check rows from it.
  const wire::Key seal_key = secrets_->SealKey();
  if (seal_key == wire::Key{})
    return error("sealing key", Corruption("the host secret file has none"));
  auto my_public = SealPublicKey(seal_key);
  if (!my_public.ok()) return error("sealing key", my_public.status());
  if (auto it = seal_keys->find(me);
      it == seal_keys->end() || it->second != *my_public) {
    if (it != seal_keys->end())
      WarnOnce(
          fmt::format("the store held another sealing key for this host "
                      "({}): it was replaced; republishing ours",
                      HexEncode(it->second)));
    if (Status s = store_.PutSealKey(me, *my_public); !s.ok())
      return error("publishing the sealing key", s);
  }
  // Trust on first use: the key first seen for a host stays its key while
  // this cvmd runs. Any cvmd may write the store, so a changed key may be
  // another node posing as that host (to read rows sealed to it, or to
  // forge its rows): refused, and said; a node that really got a new key
  // (reinstalled) is taken once the cvmds restart.
  pinned_seal_keys_[me] = *my_public;
  for (auto& [host_id, key] : *seal_keys) {
    if (host_id == me) continue;  // ours, republished above
    const auto [pin, first] = pinned_seal_keys_.emplace(host_id, key);
    if (!first && pin->second != key) {
      WarnOnce(
          fmt::format("host {}'s sealing key changed in the store (to "
                      "{}): keeping the one first seen ({}); restart "
                      "cvmd to take a reinstalled host's new key",
                      host_id, HexEncode(key), HexEncode(pin->second)));
      key = pin->second;
    }
  }
  (*seal_keys)[me] = *my_public;

  // This host's keys, for every device of the cluster, sealed to the node
  // serving it (with RocksDB: this one). A node that has not published its
  // sealing key yet gets its row once it has.
  const std::vector<HostSecret> secrets = secrets_->All();
  for (const Device& d : *devices) {
    const uint64_t serving = cluster_ ? d.host_id : me;
    const auto recipient = seal_keys->find(serving);
    if (recipient == seal_keys->end()) continue;
    HostKeyRow want{d.id, me, {}};
    for (const HostSecret& sec : secrets)
      want.keys.push_back({sec.key_id, DeviceKey(sec, 0, me, d.id)});
    auto it = std::find_if(rows->begin(), rows->end(), [&](const auto& r) {
      return r.device_id == d.id && r.host_id == me;
    });
    if (it != rows->end() && it->recipient == recipient->second &&
        it->sealed_to == serving && OpenHostKeyRow(*it, seal_key).ok() &&
        it->keys == want.keys)
      continue;
    if (Status s = SealHostKeyRow(want, seal_key, recipient->second, serving);
        !s.ok() || !(s = store_.PutHostKeys(want)).ok()) {
      static_cast<void>(error(fmt::format("device {}", d.id), s));
      continue;
    }
    if (it != rows->end()) {
      *it = want;
    } else {
      rows->push_back(want);
    }
  }

  // The hosts each device served here lets in: the rows sealed to this
  // node by the sealing key each host published.
  auto target = kernel_.Query(CVM_TARGET_GENL_NAME);
  if (!target.ok() || !target->loaded) return first;
  const std::string agent = agent_ ? agent_() : host_;
  std::map<uint64_t, bool> live_host;  // id -> the agent
  for (const Host& h : *hosts) live_host[h.id] = h.name == agent;
  if (!cluster_ && me == 0) live_host[0] = true;  // this node, unnamed
  for (const Device& d : *devices) {
    if (!d.served || (cluster_ && d.host_id != me)) continue;
    std::vector<TargetHost> want;
    for (HostKeyRow& r : *rows) {
      auto h = live_host.find(r.host_id);
      if (r.device_id != d.id || h == live_host.end()) continue;
      const auto sender = seal_keys->find(r.host_id);
      Status opened =
          sender == seal_keys->end() || sender->second != r.sender
              ? PermissionDenied("not sealed by the host's published key")
          : r.recipient != *my_public
              ? PermissionDenied("sealed to another node")
              : OpenHostKeyRow(r, seal_key);
      if (!opened.ok()) {
        WarnOnce(fmt::format("device {}: host {}'s keys left out: {}", d.id,
                             r.host_id, opened.message()));
        continue;
      }
      for (const auto& k : r.keys) {
        want.push_back({r.host_id, k.key_id,
                        std::string(k.key.begin(), k.key.end()), h->second});
      }
    }
    auto it = loaded_hosts_.find(d.id);
    if (it != loaded_hosts_.end() && it->second == want) continue;
    if (Status s = kernel_.TargetHostsSet(static_cast<uint32_t>(d.id), want);
        !s.ok()) {
      static_cast<void>(
          error(fmt::format("loading device {}'s hosts", d.id), s));
      continue;
    }
    LogInfo("device {}: {} host key(s) loaded, agent '{}'", d.id, want.size(),
            agent);
    loaded_hosts_[d.id] = std::move(want);
  }
  if (!publish_keys_loaded_) return first;
  // Per host, the newest key id that every device served here holds.
  std::map<uint64_t, uint32_t> everywhere;
  bool first_device = true;
  for (const Device& d : *devices) {
    if (!d.served || (cluster_ && d.host_id != me)) continue;
    auto it = loaded_hosts_.find(d.id);
    std::map<uint64_t, uint32_t> newest;
    if (it != loaded_hosts_.end()) {
      for (const TargetHost& t : it->second)
        newest[t.host_id] = std::max(newest[t.host_id], t.key_id);
    }
    if (first_device) {
      everywhere = newest;
      first_device = false;
      continue;
    }
    for (auto e = everywhere.begin(); e != everywhere.end();) {
      auto n = newest.find(e->first);
      if (n == newest.end()) {
        e = everywhere.erase(e);
        continue;
      }
      e->second = std::min(e->second, n->second);
      ++e;
    }
  }
  json loaded = json::object();
  for (const auto& [h, k] : everywhere) loaded[std::to_string(h)] = k;
  if (loaded != keys_loaded_published_) {
    publish_keys_loaded_(loaded);
    keys_loaded_published_ = loaded;
  }
  return first;
}

Result<json> KernelSync::RotateKey() {
  if (!secrets_) return Unavailable("this cvmd has no host secret");
  // The next secret (an unfinished rotation's, or a new one): its keys are
  // recorded next to the ones in use, which cvm.ko and cvmd's copies keep
  // using until every target has the new ones.
  CVM_ASSIGN_OR_RETURN(HostSecret next, secrets_->Rotate());
  LogInfo("host key rotation: key id {} recorded", next.key_id);
  CVM_RETURN_IF_ERROR(SyncHostKeys());
  const uint64_t me = MyHostId();
  // cvm.ko switches only once every storage node serving a device has
  // loaded the new key (each says so in its presence). One whose cvmd is
  // down still serves with the old keys only: then the rotation waits, and
  // fails after the cluster timeout with both keys still valid.
  if (cluster_ && keys_loaded_everywhere_) {
    const auto deadline = std::chrono::steady_clock::now() + cluster_timeout_;
    for (;;) {
      auto done = keys_loaded_everywhere_(me, next.key_id);
      if (done.ok() && *done) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        return Unavailable(fmt::format(
            "key id {} is recorded but not every storage node has loaded it "
            "({}); key id {} stays in use and both stay valid: run "
            "'host rotate-key' again once every storage node's cvmd is up",
            next.key_id, done.ok() ? "still waiting" : done.status().message(),
            secrets_->Current().key_id));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  json out{{"host", host_}, {"key_id", next.key_id}};
  {
    std::lock_guard lock(mutex_);
    auto st = kernel_.Query(CVM_GENL_NAME);
    if (st.ok() && st->loaded) {
      CVM_RETURN_IF_ERROR(
          kernel_
              .HostKeySet(std::string(next.secret.begin(), next.secret.end()),
                          next.key_id)
              .WithContext("giving cvm.ko the new secret"));
    }
  }
  CVM_RETURN_IF_ERROR(secrets_->Finish());
  CVM_RETURN_IF_ERROR(SyncHostKeys());
  LogInfo("host key rotation: key id {} in use, older ones retired",
          next.key_id);
  out["retired"] = true;
  return out;
}

uint64_t KernelSync::MyHostId() {
  if (my_host_id_ == 0) {
    if (auto me = store_.GetHost(host_); me.ok()) my_host_id_ = me->id;
  }
  return my_host_id_;
}

// The host a volume is attached to, by id (0: detached, or unknown here):
// the only host the targets let at it besides cvmd's agents.
uint64_t KernelSync::AttachedHostId(const Volume& v) {
  if (v.attached_host.empty()) return 0;
  auto h = store_.GetHost(v.attached_host);
  return h.ok() ? h->id : 0;
}

Status KernelSync::FenceHere(const Volume& v, bool again) {
  if (v.attach_epoch == 0) return {};
  const uint64_t me = cluster_ ? MyHostId() : 0;
  if (cluster_) {
    if (me == 0) return {};
    auto it = v.fenced.find(me);
    if (!again && it != v.fenced.end() && it->second >= v.attach_epoch)
      return {};
  }
  CVM_ASSIGN_OR_RETURN(ModuleStatus target,
                       kernel_.Query(CVM_TARGET_GENL_NAME));
  // No cvm_target: nothing here takes requests; its devices are fenced
  // (again) as they are added.
  Status fenced = target.loaded ? kernel_.TargetVolumeFence(
                                      v.id, v.attach_epoch, AttachedHostId(v))
                                : Status();
  if (!fenced.ok()) {
    return Status(fenced.code(),
                  fmt::format("volume '{}': attach epoch {} not set on the "
                              "targets: {}",
                              v.name, v.attach_epoch, fenced.message()));
  }
  if (!cluster_) return {};
  auto it = v.fenced.find(me);
  if (it != v.fenced.end() && it->second >= v.attach_epoch) return {};
  return store_.RecordFenced(v.id, me, v.attach_epoch)
      .WithContext(fmt::format("volume '{}': recording attach epoch {} fenced",
                               v.name, v.attach_epoch));
}

Result<std::vector<std::string>> KernelSync::Unfenced(const Volume& v) {
  std::vector<std::string> missing;
  if (!cluster_) return missing;  // one node: Attach fenced it here
  std::set<std::string> live;
  if (live_hosts_) {
    CVM_ASSIGN_OR_RETURN(live, live_hosts_());
  }
  CVM_ASSIGN_OR_RETURN(auto devices, store_.ListDevices());
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  std::set<uint64_t> storage;
  for (const Device& d : devices) {
    if (d.served) storage.insert(d.host_id);
  }
  for (const Host& h : hosts) {
    if (!storage.count(h.id) || !live.count(h.name)) continue;
    auto it = v.fenced.find(h.id);
    if (it == v.fenced.end() || it->second < v.attach_epoch)
      missing.push_back(h.name);
  }
  return missing;
}

Result<Volume> KernelSync::WaitServed(const Volume& v) {
  const auto deadline = std::chrono::steady_clock::now() + cluster_timeout_;
  for (;;) {
    CVM_ASSIGN_OR_RETURN(Volume now, store_.GetVolume(v.name));
    if (now.attach_epoch != v.attach_epoch ||
        now.attached_host != v.attached_host) {
      return InUse(fmt::format(
          "volume '{}' changed while its attach waited (now host '{}', "
          "attach epoch {})",
          v.name, now.attached_host, now.attach_epoch));
    }
    if (now.served_epoch >= now.attach_epoch) return now;
    if (std::chrono::steady_clock::now() >= deadline) {
      auto missing = Unfenced(now);
      return Unavailable(
          missing.ok() && !missing->empty()
              ? fmt::format("volume '{}': attach epoch {} is not yet set on "
                            "the targets of host(s) {} (their cvmd up but "
                            "not following the store?)",
                            v.name, v.attach_epoch, fmt::join(*missing, ", "))
              : fmt::format("volume '{}': host '{}' has not brought it up "
                            "within {} ms",
                            v.name, v.attached_host, cluster_timeout_.count()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

Result<KernelVolume> KernelSync::KernelAttach(const Volume& v) {
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
  CVM_ASSIGN_OR_RETURN(KernelVolume attached, kernel_.VolumeAttach(k));
  // Served: the next attach needs an epoch of its own.
  if (Status s = store_.MarkServed(v.name, host_, v.attach_epoch); !s.ok()) {
    LogWarn("volume '{}': attach epoch {} not recorded as served: {}", v.name,
            v.attach_epoch, s.message());
  }
  return attached;
}

Result<json> KernelSync::Attach(std::string_view name) {
  std::unique_lock lock(mutex_);
  if (cluster_ && joined_ && !joined_()) {
    return PermissionDenied(fmt::format(
        "this cvmd has not joined the cluster as host '{}' (cvmadm join)",
        host_));
  }
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
  Result<KernelVolume> k = Internal("unset");
  if (cluster_) {
    // The store follower attaches it once every storage node fenced the
    // new epoch; this waits without the lock, which that follower (and the
    // fencing of other nodes' attaches) needs meanwhile.
    lock.unlock();
    Status served = WaitServed(attached).status();
    lock.lock();
    if (served.ok()) {
      CVM_ASSIGN_OR_RETURN(auto now, kernel_.VolumeList());
      auto found = FindKernelVolume(now, attached.id);
      k = found ? Result<KernelVolume>(*found)
                : Result<KernelVolume>(Unavailable(fmt::format(
                      "volume '{}' is recorded as served here but cvm.ko "
                      "does not have it",
                      name)));
    } else {
      k = served;
    }
  } else {
    // The new epoch reaches the targets before the new attachment's first
    // request, so none of an older attachment's lands after it.
    Status fenced = FenceHere(attached);
    k = fenced.ok() ? KernelAttach(attached) : Result<KernelVolume>(fenced);
  }
  if (!k.ok()) {
    // Roll the record back; the epoch stays spent (epochs only grow).
    if (auto undo = store_.DetachVolume(name, host_); !undo.ok()) {
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
  CVM_ASSIGN_OR_RETURN(Volume detached, store_.DetachVolume(name, host_));
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
  // An earlier fence did not reach this device: every volume's current
  // attach epoch, before an initiator's older attachment can use it.
  CVM_ASSIGN_OR_RETURN(auto volumes, store_.ListVolumes());
  for (const Volume& v : volumes) {
    CVM_RETURN_IF_ERROR(FenceHere(v, /*again=*/true));
  }
  // And who may connect to it (its table may be from an earlier life).
  loaded_hosts_.erase(d.id);
  CVM_RETURN_IF_ERROR(SyncHostKeys());
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

Result<std::vector<KernelVolume>> KernelSync::AttachedVolumes() {
  CVM_ASSIGN_OR_RETURN(ModuleStatus initiator, kernel_.Query(CVM_GENL_NAME));
  if (!initiator.loaded) return std::vector<KernelVolume>{};
  return kernel_.VolumeList();
}

json KernelSync::Reconcile() {
  std::lock_guard lock(mutex_);
  json report = {{"host", host_},
                 {"detached", json::array()},
                 {"devices", json::array()},
                 {"listeners", json::array()},
                 {"attached", json::array()},
                 {"waiting", json::array()},
                 {"errors", json::array()}};
  const auto error = [&](std::string what, const Status& s) {
    LogWarn("reconcile: {}: {}", what, s.message());
    report["errors"].push_back(fmt::format("{}: {}", what, s.message()));
  };
  if (cluster_ && joined_ && !joined_()) {
    report["not_joined"] = true;
    return report;
  }
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
    // Before the listeners (when this cvmd starts): the attach epochs cut
    // while it was down. A device just added (again) gets every volume's
    // current epoch: an earlier fence did not reach it.
    const bool added = !report["devices"].empty();
    if ((cluster_ && my_host_id != 0) || added) {
      auto volumes = store_.ListVolumes();
      if (!volumes.ok()) error("volumes", volumes.status());
      for (const Volume& v : volumes.ok() ? *volumes : std::vector<Volume>{}) {
        if (Status s = FenceHere(v, added); !s.ok()) {
          error(fmt::format("volume '{}'", v.name), s);
        }
      }
    }
    // Who may connect, before the listeners let anyone try. A device
    // added again (cvm_target reloaded) has forgotten its hosts.
    if (added) loaded_hosts_.clear();
    static_cast<void>(SyncHostKeys(&report));
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
            {hp->addr, hp->port, std::string(ToString(h.transport))});
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
  // cvm.ko is here: `--wait` waits for this node too, from its first map.
  NoteInstalled(initiator->map_epoch);
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
  HandOverRequested(*volumes, *kvols, report);
  const auto now = std::chrono::steady_clock::now();
  for (const Volume& v : *volumes) {
    if (v.attached_host != host_ || !v.migrate_to.empty()) continue;
    if (auto k = FindKernelVolume(*kvols, v.id)) {
      if (k->attach_epoch >= v.attach_epoch) {
        // Attached; a lost "served" record is written again.
        if (v.served_epoch < k->attach_epoch) {
          static_cast<void>(store_.MarkServed(v.name, host_, k->attach_epoch));
        }
        continue;
      }
      // An older attachment of this host (moved away by force while open,
      // then back): fenced, every request of it fails. Let go of it once
      // it is closed, then attach afresh.
      if (Status s = kernel_.VolumeDetach(k->id, /*force=*/false); !s.ok()) {
        if (busy_logged_.insert(k->id).second) {
          error(fmt::format("{} (volume '{}') holds the fenced attach epoch "
                            "{}; it is attached again once closed",
                            DevPath(k->minor), v.name, k->attach_epoch),
                s);
        }
        continue;
      }
      busy_logged_.erase(k->id);
    }
    // A failed attach is tried again after a pause, not at once: its epoch
    // bump is itself a store change that would run this again.
    auto retry = attach_retry_after_.find(v.id);
    if (retry != attach_retry_after_.end() && now < retry->second) continue;
    const auto failed = [&](const Status& s) {
      attach_retry_after_[v.id] = now + std::chrono::seconds(10);
      error(fmt::format("volume '{}'", v.name), s);
    };
    // Every attach is a new epoch, re-attaches too, unless this one was
    // never served (a hand-over or an attach from another node cut it).
    auto next = store_.ReattachVolume(v.name, host_);
    if (!next.ok()) {
      failed(next.status());
      continue;
    }
    if (Status s = FenceHere(*next); !s.ok()) {
      failed(s);
      continue;
    }
    // The other nodes fence as they follow the store; each of their
    // records is a change that runs this again.
    auto missing = Unfenced(*next);
    if (!missing.ok()) {
      failed(missing.status());
      continue;
    }
    if (!missing->empty()) {
      if (fence_wait_logged_[v.id] != next->attach_epoch) {
        fence_wait_logged_[v.id] = next->attach_epoch;
        LogInfo("volume '{}' waits for host(s) {} to fence attach epoch {}",
                v.name, fmt::join(*missing, ", "), next->attach_epoch);
      }
      report["waiting"].push_back(v.name);
      continue;
    }
    auto k = KernelAttach(*next);
    if (!k.ok()) {
      failed(k.status());
      continue;
    }
    attach_retry_after_.erase(v.id);
    fence_wait_logged_.erase(v.id);
    LogInfo("reconcile: volume '{}' attached as {} (attach epoch {})", v.name,
            DevPath(k->minor), next->attach_epoch);
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
  CVM_ASSIGN_OR_RETURN(Volume detached,
                       store_.DetachVolume(name, v.attached_host));
  LogInfo(
      "volume '{}' recorded as detached from host '{}'; its cvmd "
      "detaches it",
      detached.name, v.attached_host);
  return json{{"detached", detached.name},
              {"host", v.attached_host},
              {"device", nullptr}};
}

void KernelSync::HandOverRequested(const std::vector<Volume>& volumes,
                                   const std::vector<KernelVolume>& kvols,
                                   json& report) {
  for (const Volume& v : volumes) {
    if (v.attached_host != host_ || v.migrate_to.empty()) continue;
    auto k = FindKernelVolume(kvols, v.id);
    if (k) {
      Status s = kernel_.VolumeDetach(v.id, /*force=*/false);
      if (!s.ok()) {
        const std::string why =
            s.code() == Code::kInUse
                ? fmt::format(
                      "{} is open on host '{}' (--force moves it "
                      "anyway: its I/O there is then refused)",
                      DevPath(k->minor), host_)
                : fmt::format("{} on host '{}' could not be detached: {}",
                              DevPath(k->minor), host_, s.message());
        LogWarn("volume '{}' not handed to host '{}': {}", v.name, v.migrate_to,
                why);
        if (Status r = store_.RefuseMigration(v.name, host_, why); !r.ok()) {
          report["errors"].push_back(fmt::format(
              "volume '{}': refusal not recorded: {}", v.name, r.message()));
        }
        continue;
      }
    }
    auto moved = store_.HandOver(v.name, host_, v.migrate_to,
                                 /*requested=*/true);
    if (!moved.ok()) {
      report["errors"].push_back(fmt::format("volume '{}': hand-over: {}",
                                             v.name, moved.status().message()));
      // Say why, so the request neither dangles nor blocks the volume.
      static_cast<void>(store_.RefuseMigration(
          v.name, host_,
          fmt::format("the hand-over failed: {}", moved.status().message())));
      continue;
    }
    LogInfo("volume '{}' handed to host '{}' (attach epoch {}){}", v.name,
            moved->attached_host, moved->attach_epoch,
            k ? fmt::format(", {} detached here", DevPath(k->minor)) : "");
    report["handed_over"].push_back(v.name);
  }
}

Result<json> KernelSync::Migrate(std::string_view name, std::string_view to,
                                 bool force) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  if (!cluster_) {
    return InvalidArgument(fmt::format(
        "moving a volume to host '{}' needs the cluster store (cvmd --store "
        "etcd://...)",
        to));
  }
  CVM_ASSIGN_OR_RETURN(Host target, store_.GetHost(to));
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  const std::string from = v.attached_host;
  if (from.empty()) {
    return InvalidArgument(
        fmt::format("volume '{}' is not attached (attach it with --host {})",
                    v.name, target.name));
  }
  if (from == target.name) {
    return InvalidArgument(fmt::format(
        "volume '{}' is attached to host '{}' already", v.name, from));
  }
  // A step polls the store until `done` says it is over (an error ends it).
  const auto wait_for = [&](auto done, std::string what) -> Result<Volume> {
    const auto deadline = Clock::now() + cluster_timeout_;
    for (;;) {
      CVM_ASSIGN_OR_RETURN(Volume now, store_.GetVolume(name));
      CVM_ASSIGN_OR_RETURN(bool over, done(now));
      if (over) return now;
      if (Clock::now() >= deadline) return Unavailable(what);
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
  };
  std::string old_device;
  if (from == host_) {
    // Here: let go of the device, then hand over.
    std::lock_guard lock(mutex_);
    CVM_ASSIGN_OR_RETURN(auto kvols, kernel_.VolumeList());
    if (auto k = FindKernelVolume(kvols, v.id)) {
      Status s = kernel_.VolumeDetach(v.id, force);
      if (!s.ok()) {
        if (s.code() == Code::kInUse && !force) {
          return s.WithContext(fmt::format(
              "{} is open (--force moves it anyway)", DevPath(k->minor)));
        }
        return s;
      }
      old_device = DevPath(k->minor);
    }
    CVM_ASSIGN_OR_RETURN(v, store_.HandOver(name, from, target.name));
  } else if (force) {
    // The old host may be down or its device open: the new epoch fences
    // its I/O, and its cvmd lets go of the device once it is closed.
    CVM_ASSIGN_OR_RETURN(v, store_.HandOver(name, from, target.name));
  } else {
    CVM_RETURN_IF_ERROR(store_.RequestMigration(name, target.name).status());
    auto handed = wait_for(
        [&](const Volume& now) -> Result<bool> {
          if (now.attached_host == target.name) return true;
          if (now.attached_host != from) {
            return InUse(fmt::format(
                "volume '{}' was detached or moved elsewhere meanwhile",
                v.name));
          }
          if (now.migrate_to.empty()) {
            return InUse(now.migrate_error.empty()
                             ? fmt::format("the move of volume '{}' was "
                                           "cancelled on host '{}'",
                                           v.name, from)
                             : now.migrate_error);
          }
          return false;
        },
        fmt::format("host '{}' did not hand volume '{}' over within {} ms "
                    "(is its cvmd up? --force moves it anyway)",
                    from, v.name, cluster_timeout_.count()));
    if (!handed.ok()) {
      // Withdraw the request, so that host does not act on it later.
      static_cast<void>(
          store_.RefuseMigration(name, from, handed.status().message()));
      return handed.status();
    }
    v = *handed;
  }
  const auto handed_at = Clock::now();
  LogInfo("volume '{}' moves from host '{}' to '{}' (attach epoch {})", v.name,
          from, target.name, v.attach_epoch);
  CVM_ASSIGN_OR_RETURN(Volume served, WaitServed(v));
  const auto ms = [](auto d) {
    return std::chrono::duration<double, std::milli>(d).count();
  };
  json out = ToJson(served);
  out["from"] = from;
  out["old_device"] = old_device.empty() ? json(nullptr) : json(old_device);
  out["handover_ms"] = ms(handed_at - start);
  out["total_ms"] = ms(Clock::now() - start);
  return out;
}

}  // namespace cvm
