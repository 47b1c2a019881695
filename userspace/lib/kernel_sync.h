#pragma once

// Keeps the kernel modules in step with the metadata store: pushes the
// current map into cvm.ko, attaches and detaches volumes (fencing with a new
// attach epoch each time), adds target devices and listeners to cvm_target,
// and on cvmd start re-creates whatever the store records but the kernel
// lacks. The store is the truth; the kernel is brought to it.
//
// "This host" is cvmd's --host name: volumes attach here and are recorded
// as attached to it. With the single-node RocksDB store one cvmd drives the
// local kernel, so target devices and listeners recorded as served are
// re-added here whichever host record they belong to. In a cluster (etcd,
// SetCluster) every cvmd applies only its own host's part: its devices and
// listeners, and the volumes recorded as attached to it (attached when the
// record appears, detached when it goes), whichever node made the change
// (StoreFollower runs Reconcile on every change).
//
// Fencing across nodes: every attach, re-attach and hand-over of a volume
// has a new attach epoch, and no kernel device serves it until every
// storage node whose cvmd is up has set it on its targets (each cvmd does
// that for its own targets as it follows the store, before it listens, and
// records it in the volume's `fenced`). From then on no request of an
// older attachment is accepted by any storage node whose cvmd is up. One
// whose cvmd is down is not waited for: its targets (still serving, if
// the machine is up) learn the new epoch from the new attachment's first
// request, and its cvmd sets them all when it starts. A device added to a
// target gets every volume's epoch at once.
//
// Migration: the volume's attached host is asked to hand it over
// (`migrate_to`); its cvmd detaches the device unless it is open, and then
// records the new host with a new attach epoch, or records why not. The
// new host's cvmd attaches it once the epoch is fenced everywhere.

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "host_keys.h"
#include "metadata_store.h"
#include "netlink_client.h"
#include "status.h"

namespace cvm {

// CVM_ATTR_MAP_PATHS for the devices of a sealed map: each device is reached
// at the first address of its host, with the host's transport. A device the
// map has but the records lack, or a host address that is not a numeric
// IP:PORT, is an error naming it.
Result<std::vector<MapPath>> BuildMapPaths(const std::string& blob,
                                           const std::vector<Host>& hosts,
                                           const std::vector<Device>& devices);

// Records one of cvm.ko's path events, as seen by initiator `host`, as the
// device's path state (no new map epoch) and logs it: a lost path as a warning,
// a made one as info. An event for a device the store lacks is logged and not
// recorded.
Status RecordPathEvent(MetadataStore& store, const std::string& host,
                       const PathEvent& event);

class KernelSync {
 public:
  KernelSync(MetadataStore& store, Kernel& kernel, std::string host)
      : store_(store), kernel_(kernel), host_(std::move(host)) {}

  const std::string& host() const { return host_; }
  void SetCluster(bool cluster) { cluster_ = cluster; }
  bool cluster() const { return cluster_; }
  // In a cluster: the hosts whose cvmd is up (the presence's nodes).
  void SetLiveHosts(std::function<Result<std::set<std::string>>()> live) {
    live_hosts_ = std::move(live);
  }
  // In a cluster: whether this cvmd has joined as its host; until then it
  // applies nothing (node_identity.h).
  void SetJoined(std::function<bool()> joined) { joined_ = std::move(joined); }
  // Called with the map epoch cvm.ko holds whenever it changes.
  // (`fn` false: not published, tried again at the next reconcile).
  void SetMapInstalled(std::function<bool(uint64_t)> fn) {
    map_installed_ = std::move(fn);
  }
  // How long an attach waits for the other nodes to fence its epoch, and a
  // migration for each of its steps.
  void SetClusterTimeout(std::chrono::milliseconds t) { cluster_timeout_ = t; }
  // This host's secrets (host_keys.h); without them cvm.ko and cvmd's
  // copies cannot authenticate, and no host keys are published or loaded.
  void SetHostSecrets(HostSecrets* secrets) { secrets_ = secrets; }
  // The host whose cvmd copies detached volumes (the leader; "" when
  // unknown): the targets let it at every volume. Default: this host.
  void SetAgent(std::function<std::string()> agent) {
    agent_ = std::move(agent);
  }
  // Cluster: tells the others, for each host, the newest key id every
  // device served here has loaded (`fn` gets {"<host id>": key id}).
  void SetPublishKeysLoaded(std::function<void(const nlohmann::json&)> fn) {
    publish_keys_loaded_ = std::move(fn);
  }
  // Cluster: whether every storage node that is up has loaded key_id of
  // host_id for all its devices.
  void SetKeysLoadedEverywhere(
      std::function<Result<bool>(uint64_t host_id, uint32_t key_id)> fn) {
    keys_loaded_everywhere_ = std::move(fn);
  }
  // Who this host is at the targets (cvmd's copies).
  wire::Credentials Credentials();
  // Records this host's key for every device, and loads into cvm_target
  // the keys of the hosts each device served here lets in (Reconcile runs
  // it; call it too when the leader may have changed).
  Status SyncHostKeys(nlohmann::json* report = nullptr);
  // cvmadm host rotate-key: a new secret, its keys recorded next to the
  // old ones, cvm.ko switched to it once the targets of this node's
  // devices have it, then the old one retired. Live connections stay up.
  Result<nlohmann::json> RotateKey();

  // Installs the store's current map in cvm.ko unless the kernel's is as
  // new. Returns the epoch the kernel holds afterwards.
  Result<uint64_t> PushMap();
  uint64_t AttachedHostId(const Volume& v);
  // Records in the store how far cvm.ko has copied the pinned PGs of the
  // volumes attached here (backfill.h); the leader cuts the pins on it.
  void ReportBackfill();
  // PushMap when cvm.ko is loaded; failures are logged, never returned (the
  // store change that prompted it stands).
  void PushMapBestEffort(std::string_view why);

  Result<nlohmann::json> Attach(std::string_view volume);
  Result<nlohmann::json> Detach(std::string_view volume, bool force);
  Result<nlohmann::json> Listen(std::string_view address);
  Result<nlohmann::json> Unlisten(std::string_view address);
  Result<nlohmann::json> DeviceAdd(uint64_t id, bool format, bool force);
  Result<nlohmann::json> DeviceRemove(uint64_t id);

  // What the local cvm_target says of the devices it serves (id -> usage);
  // empty when the module is not loaded. Only this node's devices appear.
  Result<std::map<uint64_t, TargetDeviceUsage>> TargetUsage();
  // The volumes cvm.ko has attached here; empty when it is not loaded.
  Result<std::vector<KernelVolume>> AttachedVolumes();

  // cvmd start, and in a cluster every store change: re-add served target
  // devices and listeners, push the map, re-attach this host's volumes the
  // kernel lacks (in a cluster also detach those no longer recorded here).
  // Never fails as a whole: the answer lists what was done and what failed
  // ("errors").
  nlohmann::json Reconcile();

  // Records `volume` as attached to another `host`, whose cvmd attaches it
  // (any-node administration); kInUse when attached elsewhere.
  Result<nlohmann::json> AttachRemote(std::string_view volume,
                                      std::string_view host);
  // Records `volume` as detached from the other host it is attached to;
  // that host's cvmd detaches it once its device is closed.
  Result<nlohmann::json> DetachRemote(std::string_view volume);

  // Moves an attached volume to host `to` (cluster only) and returns once
  // the device serves there: refused while the device is open on its host
  // unless `force` (the old host's I/O is then refused by the targets and
  // its device let go of once closed).
  Result<nlohmann::json> Migrate(std::string_view volume, std::string_view to,
                                 bool force);

 private:
  Result<Host> HostWithAddress(std::string_view address);
  // Sets v's attach epoch on this node's targets (when it serves any) and,
  // in a cluster, records it in the volume.
  // `again`: also when the record says this host did (a device added
  // since).
  Status FenceHere(const Volume& v, bool again = false);
  // The storage nodes that are up and have not fenced v's epoch yet.
  Result<std::vector<std::string>> Unfenced(const Volume& v);
  // Waits (cluster_timeout_) until v's host records v's attach epoch
  // served; kUnavailable naming the storage nodes that have not fenced it.
  // Returns the record as served.
  Result<Volume> WaitServed(const Volume& v);
  // The kernel attach of v (fenced everywhere), then records it served.
  Result<KernelVolume> KernelAttach(const Volume& v);
  // This host's id in the store (0 while it has none).
  uint64_t MyHostId();
  // Reconcile's part for volumes this host is asked to hand over.
  void HandOverRequested(const std::vector<Volume>& volumes,
                         const std::vector<KernelVolume>& kvols,
                         nlohmann::json& report);

  MetadataStore& store_;
  Kernel& kernel_;
  std::string host_;
  bool cluster_ = false;
  std::function<Result<std::set<std::string>>()> live_hosts_;
  std::function<bool()> joined_;
  std::function<bool(uint64_t)> map_installed_;
  std::optional<uint64_t> published_epoch_;  // none: nothing published
  // ReportBackfill: volume -> (attach epoch, map epoch) the store already
  // holds, so an unchanged report costs no store transaction each round.
  std::map<std::string, std::pair<uint64_t, uint64_t>> backfill_reported_;
  void NoteInstalled(uint64_t epoch);
  std::chrono::milliseconds cluster_timeout_{20000};
  uint64_t my_host_id_ = 0;
  // Volume id -> the attach epoch whose wait for fences was logged.
  std::map<uint64_t, uint64_t> fence_wait_logged_;
  // The API thread and the store follower both drive the kernel.
  std::recursive_mutex mutex_;
  std::set<uint64_t> busy_logged_;  // volumes whose busy detach was logged
  // Volume id -> when a failed reconcile attach may be tried again.
  std::map<uint64_t, std::chrono::steady_clock::time_point> attach_retry_after_;
  HostSecrets* secrets_ = nullptr;  // not owned
  // Each host's sealing key as first seen (SyncHostKeys), under mutex_.
  std::map<uint64_t, SealPublic> pinned_seal_keys_;
  // Warnings said once each (a round runs every few seconds).
  std::set<std::string> warned_;
  void WarnOnce(const std::string& message);
  std::function<std::string()> agent_;
  std::function<void(const nlohmann::json&)> publish_keys_loaded_;
  std::function<Result<bool>(uint64_t, uint32_t)> keys_loaded_everywhere_;
  nlohmann::json keys_loaded_published_;
  // Device id -> the hosts last loaded into cvm_target for it.
  std::map<uint64_t, std::vector<TargetHost>> loaded_hosts_;
};

}  // namespace cvm
