#pragma once

// The cluster metadata store, over a KvStore (kv_store.h): embedded RocksDB
// on one node, etcd for a cluster. One key family per record kind (hosts,
// devices, pools, volumes, snapshots, map_epochs, maps, paths) plus "meta"
// for the schema version, id counters and the current map epoch.
//
// Every change is one atomic batch: the record, the id counter it used and,
// for topology changes (hosts, devices, pools), the map-epoch bump and its
// history record commit together or not at all. Its checks (names unique,
// references exist, nothing still in use) read one state of the store, and
// the batch commits only if no other writer committed since: otherwise the
// checks run again on the new state (Transact). Within one process a mutex
// keeps changes in turn; across cvmds sharing etcd, the compare does.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cluster_map.h"
#include "kv_store.h"
#include "model.h"
#include "sealed_box.h"
#include "status.h"

namespace cvm {

struct HostKeyRow;

inline constexpr uint64_t kSchemaVersion = 1;

// Records are keyed by their id, 8 bytes big-endian, so iteration is id order.
std::string EncodeIdKey(uint64_t id);

struct StoreOptions {
  // Seconds since the epoch, for "created" fields; tests pin it.
  std::function<int64_t()> clock;
  // Test hook: when set and it returns true, the next commit fails with an
  // I/O error instead of writing (proves a failed commit leaves nothing).
  std::function<bool()> fail_commit;
  // fsync every commit (metadata is small and rare; losing it is not).
  bool sync = true;
  // A cluster (etcd): a topology change is checked against the map it
  // would make, but only recorded as pending; the leader cuts one epoch for
  // all pending changes (CutPendingEpoch), so changes that arrive together
  // share it. Off (one node): every change cuts its own epoch at once.
  bool defer_epochs = false;
};

struct DeviceSpec {
  std::string host;  // host name
  std::string path;
  uint64_t capacity = 0;
  double weight = 1.0;
  std::string device_class = "nvme";
};

struct VolumeSpec {
  std::string name;
  std::string pool;  // pool name
  uint64_t size = 0;
  uint64_t object_size = kDefaultObjectSize;
  std::optional<uint64_t> stripe_unit;  // default: the object size
  Provisioning provisioning = Provisioning::kThin;
};

// Raw bytes of the devices that are in, and what thick volumes reserve of
// them (their size times their pool's overhead).
struct RawSpace {
  uint64_t capacity = 0;
  uint64_t thick_reserved = 0;
};

struct Counts {
  uint64_t hosts = 0, devices = 0, pools = 0, volumes = 0, snapshots = 0;
};

class MetadataStore {
 public:
  // Opens `location` (OpenKvStore: a RocksDB directory, created if needed,
  // or etcd://HOST:PORT,...[/PREFIX]). Fails with kUnavailable when another
  // process holds the RocksDB directory or etcd cannot be reached,
  // kCorruption on a bad schema.
  static Result<std::unique_ptr<MetadataStore>> Open(
      const std::string& location, StoreOptions options = {});
  ~MetadataStore();
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  // What Open was given: the directory or the etcd URI.
  const std::string& location() const { return location_; }

  // Hosts. `spec.id` and `spec.created` are assigned.
  Result<Host> AddHost(Host spec);
  // Joining (node_identity.h). SetJoinHash: host `name` may join once with
  // the token whose digest is `join_hash`; any key it held is void.
  // JoinHost: the token's digest must match the pending one; the host then
  // holds the key whose digest is `key_hash`.
  Result<Host> SetJoinHash(std::string_view name, std::string_view join_hash);
  Result<Host> JoinHost(std::string_view name, std::string_view token_hash,
                        std::string_view key_hash);
  Result<Host> GetHost(std::string_view name);
  Result<Host> GetHostById(uint64_t id);
  Result<std::vector<Host>> ListHosts();
  Status RemoveHost(std::string_view name);
  // Records (or forgets) that the target listens on `address`, which must
  // be one of a host's addresses; returns that host. No new epoch.
  Result<Host> SetListener(std::string_view address, bool listening);

  // Devices, identified by id; (host, path) is unique.
  Result<Device> AddDevice(const DeviceSpec& spec);
  Result<Device> GetDevice(uint64_t id);
  Result<std::vector<Device>> ListDevices();
  // Refused while PGs still keep data on the device (kInUse, with which),
  // or while its target serves it. `force`: a dead device (marked down, or
  // unreachable from every initiator that reported on it) goes anyway, and
  // its copies are given up: pins name no device in their place, and
  // backfill rebuilds them from the others; still refused if a PG would
  // keep too few copies to rebuild from.
  Status RemoveDevice(uint64_t id, bool force = false);
  // Changes up/down and in/out; bumps the epoch only if something changed.
  Result<Device> SetDeviceState(uint64_t id, std::optional<bool> up,
                                std::optional<bool> in);
  // Every device of host `name` in or out (`in` also marks it up, as
  // `device in` does), in one epoch: `host drain`. The devices changed.
  Result<std::vector<Device>> SetHostIn(std::string_view name, bool in);
  // Records how full the device is (model.h Device); a new epoch only
  // when `full` changes (the map carries it).
  Result<Device> SetDeviceFill(uint64_t id, bool nearfull, bool full);
  // Records whether cvm_target serves the device. No new epoch.
  Result<Device> SetDeviceServed(uint64_t id, bool served);

  // Cluster settings (model.h); the defaults until one is set.
  Result<ClusterSettings> GetSettings();
  Result<ClusterSettings> SetSetting(std::string_view key,
                                     std::string_view value);

  // Path state per device, from cvm.ko's path events: one record per device,
  // replaced by each event; `state.since` is assigned. Not topology: no new
  // epoch. Refused (kNotFound) for a device the store lacks; removing a
  // device removes its record.
  Result<PathState> RecordPathState(PathState state);
  Result<std::optional<PathState>> GetPathState(uint64_t device_id);
  Result<std::vector<PathState>> ListPathStates();

  // Pools.
  Result<Pool> CreatePool(Pool spec);
  Result<Pool> GetPool(std::string_view name);
  Result<Pool> GetPoolById(uint64_t id);
  Result<std::vector<Pool>> ListPools();
  Status DeletePool(std::string_view name);
  // Why the current epoch's map cannot place `pool` ("" when it can).
  Result<std::string> PoolPlacementProblem(const Pool& pool);
  // Changes a pool's min_size (0: the policy's default); a new map epoch.
  Result<Pool> SetPoolMinSize(std::string_view name, uint32_t min_size);

  // Backfill (backfill.h): the pins of the pools of `copied` in map
  // `epoch` are cut in one new epoch, their PGs taking their up rows, if the
  // store is still at `epoch` with no change pending and each pool's volumes
  // are exactly its `copied` ones (volume id -> the attach epoch its data was
  // copied under), an attached one also reported copied by its host
  // (RecordBackfilled) for `epoch`. Returns the new epoch. `leader_lease`
  // (etcd): the commit requires it. Refusals are kUnavailable with why.
  using CopiedVolumes = std::map<uint64_t, uint64_t>;
  // The rows of the PGs whose pins were cut, not swept yet: a JSON array of
  // {pool, pg, devs} ("" when none). ClearBackfillMoved forgets them if
  // the record is still `swept` (what the sweep read), keeping `left` (what
  // down devices still hold; "": nothing).
  Result<std::string> GetBackfillMoved();
  Status ClearBackfillMoved(const std::string& swept,
                            const std::string& left = "");
  // Hosts' per-device keys (host_keys.h): one row per device and host.
  Status PutHostKeys(const HostKeyRow& row);
  Result<std::vector<HostKeyRow>> ListHostKeys();
  // Each host's sealing public key (sealed_box.h), written by its cvmd.
  Status PutSealKey(uint64_t host_id, const SealPublic& key);
  Result<std::map<uint64_t, SealPublic>> ListSealKeys();
  // Remote API tokens' records (api_tokens.h), by token id.
  Status CreateApiToken(std::string_view id, std::string_view record);
  Result<std::optional<std::string>> GetApiToken(std::string_view id);
  Result<std::vector<std::string>> ListApiTokens();
  Status DeleteApiToken(std::string_view id);

  // The leader's recovery progress record (recovery_progress.h), "" when
  // nothing moves; putting "" removes it.
  Result<std::string> GetRecoveryRecord();
  Status PutRecoveryRecord(const std::string& record);
  // Devices removed with --force (their copies were given up).
  Result<std::set<uint32_t>> ForcedRemovals();
  // The attached host's report: its cvm.ko has copied volume `name`'s
  // pinned PGs of map `map_epoch` under `attach_epoch`. Ignored (returns
  // false) unless the volume is attached to `host` with that epoch.
  Result<bool> RecordBackfilled(std::string_view name, std::string_view host,
                                uint64_t attach_epoch, uint64_t map_epoch);
  Result<uint64_t> SettlePins(uint64_t epoch,
                              const std::map<uint32_t, CopiedVolumes>& copied,
                              int64_t leader_lease);

  // Volumes.
  Result<Volume> CreateVolume(const VolumeSpec& spec);
  Result<Volume> GetVolume(std::string_view name);
  Result<std::vector<Volume>> ListVolumes();
  Status DeleteVolume(std::string_view name);
  // Records the volume as attached to `host` with the next attach epoch.
  // Refused (kInUse) when it is attached to another host; attaching again
  // to the same host (the kernel lost it) bumps the epoch once more.
  Result<Volume> AttachVolume(std::string_view name, std::string_view host);
  // Records the volume as detached; kInvalidArgument when it is not
  // attached, kInUse when `expected_host` is given and it is attached to
  // another (a detach racing a newer attach elsewhere must not undo it).
  Result<Volume> DetachVolume(std::string_view name,
                              std::string_view expected_host = "");

  // Fencing across nodes and migration (kernel_sync.h says who calls what).
  // The volume's next attach on its host: a new attach epoch unless the
  // current one was never served (a hand-over cut it), kInvalidArgument
  // once the volume is no longer attached to `host`.
  Result<Volume> ReattachVolume(std::string_view name, std::string_view host);
  // `host`'s kernel device serves attach epoch `epoch` (if still current).
  Status MarkServed(std::string_view name, std::string_view host,
                    uint64_t epoch);
  // Host `host_id`'s targets refuse the volume's attach epochs below
  // `epoch` (raises the record; never lowers it).
  Status RecordFenced(uint64_t volume_id, uint64_t host_id, uint64_t epoch);
  // Asks the attached host to hand the volume to `to` once its device is
  // closed (kInvalidArgument when not attached or attached to `to`).
  Result<Volume> RequestMigration(std::string_view name, std::string_view to);
  // The volume moves from `from` to `to` under a new attach epoch, if it is
  // still attached to `from` (kInUse otherwise).
  // `requested`: only while a migration to `to` is still asked for (the
  // asker may have withdrawn it).
  Result<Volume> HandOver(std::string_view name, std::string_view from,
                          std::string_view to, bool requested = false);
  // The migration asked of `from` is refused, saying `why`.
  Status RefuseMigration(std::string_view name, std::string_view from,
                         std::string_view why);

  // Snapshots (model only for now: no data path behind them yet).
  Result<Snapshot> CreateSnapshot(std::string_view volume,
                                  std::string_view name);
  Result<std::vector<Snapshot>> ListSnapshots();
  Status DeleteSnapshot(std::string_view volume, std::string_view name);

  // Map epochs: 0 until the first topology change.
  Result<uint64_t> CurrentEpoch();
  Result<MapEpoch> GetEpoch(uint64_t epoch);
  // The sealed map of `epoch`: kNotFound when that epoch's topology could
  // not be served (its record says why).
  Result<std::string> GetMap(uint64_t epoch);
  // The current epoch's sealed map with the hosts and devices it names,
  // all read at one revision: the addresses a map is pushed with are that
  // map's, even while other cvmds change the store. Epoch 0: no map yet.
  struct MapSnapshot {
    uint64_t epoch = 0;
    std::string blob;
    std::vector<Host> hosts;
    std::vector<Device> devices;
  };
  Result<MapSnapshot> ReadMapSnapshot();
  // The newest `limit` epochs, oldest first (limit 0 = all).
  Result<std::vector<MapEpoch>> EpochHistory(size_t limit = 0);

  // Leader work: forgets the sealed maps and history records of epochs
  // older than the newest `keep` (keep >= 1: the current one stays), at
  // most 40 per call; returns how many went. Over etcd the commit requires
  // `leader_lease` to hold the leader key.
  Result<uint64_t> PruneEpochs(uint64_t keep, int64_t leader_lease);
  // Leader work: the pieces of large values no record names
  // (KvStore::SweepPieces).
  Result<uint64_t> SweepPieces() { return kv_->SweepPieces(); }
  // Leader work (defer_epochs): one new epoch carrying every pending
  // change; returns it, or 0 when nothing is pending.
  Result<uint64_t> CutPendingEpoch(int64_t leader_lease);
  // The epoch that carries every change committed so far: the current one,
  // or the next while changes are pending.
  Result<uint64_t> CarryingEpoch();

  Result<Counts> Count();

  // Moves with every change by any cvmd (KvStore::ChangeMark).
  Result<int64_t> ChangeMark() { return kv_->ChangeMark(); }
  // `volumes`: the store's volumes, as the caller listed them;
  // `device_class`: only that class's devices ("": every device).
  Result<RawSpace> GetRawSpace(const std::vector<Volume>& volumes,
                               const std::string& device_class = "");

 private:
  MetadataStore(std::string location, StoreOptions options,
                std::unique_ptr<KvStore> kv);

  // Runs `change` (checks, then one Commit) in turn with this process's other
  // changes, again on the new state while another writer wins (kConflict).
  template <typename F>
  auto Transact(F&& change) -> decltype(change());

  Status InitSchema();
  Result<uint64_t> ReadCounter(std::string_view key);
  Result<uint64_t> NextId(KvBatch& batch, std::string_view kind);
  // Hosts, devices and pools as stored now.
  Result<Topology> LoadTopology();
  // Writes device `d` (in a transaction); a `reason` also cuts an epoch
  // whose map has it ("": the change is not in the map).
  Status PutDevice(const Device& d, std::string reason);
  // Adds the next epoch, its history record and its sealed map, built from
  // `next` (the topology once `batch` commits), to `batch`.
  // `given_up`: devices whose copies this change gives up (a forced
  // removal in the same batch; ForcedRemovals() has the committed ones).
  Status BumpEpoch(KvBatch& batch, std::string reason, const Topology& next,
                   const std::set<uint32_t>& given_up = {});
  // One volume record changed in one transaction (`edit` false: unchanged).
  Result<Volume> UpdateVolume(std::string_view name,
                              const std::function<Result<bool>(Volume&)>& edit);
  // The sealed map of `next` as epoch `epoch` (new rack and row bucket ids
  // go in `batch`). PGs of pools holding volumes stay pinned to the rows of
  // the current epoch's map (cluster_map.h DataPlacement) unless `settled`.
  using PgSet = std::set<std::pair<uint32_t, uint32_t>>;
  Result<SealedMap> SealTopology(KvBatch& batch, uint64_t epoch,
                                 const Topology& next,
                                 const PgSet& settled = {});
  // BumpEpoch's work; `record` false: check only (no epoch, no map). A
  // change that would drop a copy a pin still needs is refused.
  // `moved` (and the targets the change abandons) join the sweep's record.
  Status SealEpoch(KvBatch& batch, std::string reason, const Topology& next,
                   bool record, const PgSet& settled = {},
                   const std::vector<MovedOff>& moved = {},
                   const std::set<uint32_t>& given_up = {});
  Status Commit(const KvBatch& batch);

  Result<std::optional<std::string>> GetRaw(Cf cf, std::string_view key);
  // Calls `fn(key, value)` for every record of `cf`; stops on error.
  Status ScanRaw(
      Cf cf,
      const std::function<Status(std::string_view, std::string_view)>& fn);
  template <typename T>
  Result<std::vector<T>> ScanAll(Cf cf, Result<T> (*decode)(std::string_view));
  template <typename T>
  Result<std::optional<T>> GetById(Cf cf, uint64_t id,
                                   Result<T> (*decode)(std::string_view));
  Result<uint64_t> CountKeys(Cf cf);
  Status CheckThickFits(const Volume& v, const Pool& pool,
                        const std::vector<Volume>& volumes);
  Status CheckPoolsStayPlaceable(uint64_t current, const std::string& reason,
                                 const Topology& next, const SealedMap& sealed);
  int64_t Now() const;

  std::string location_;
  StoreOptions options_;
  std::unique_ptr<KvStore> kv_;
  std::mutex mutex_;  // serializes check-then-write sequences
};

}  // namespace cvm
