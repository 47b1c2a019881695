#include "metadata_store.h"

#include <fmt/format.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "hex.h"
#include "host_keys.h"
#include "json_fields.h"
#include "log.h"
#include "units.h"

namespace cvm {
namespace {

constexpr std::string_view kSchemaKey = "schema_version";
constexpr std::string_view kEpochKey = "map_epoch";
// The reasons of the changes the next epoch will carry (defer_epochs),
// "; "-joined; absent when none is pending.
constexpr std::string_view kPendingKey = "map_epoch_pending";
// The rows PGs moved off when their pins were cut: where the copies the
// sweep may remove are (backfill.h). A JSON array of {pool, pg, devs}.
constexpr std::string_view kMovedKey = "backfill_moved";
constexpr std::string_view kSettingsKey = "settings";
// Devices removed with --force: their copies were given up (dead device).
constexpr std::string_view kForcedKey = "forced_removals";
constexpr std::string_view kRecoveryKey = "recovery";

std::string CounterKey(std::string_view kind) {
  return fmt::format("next_id/{}", kind);
}

Result<uint64_t> ParseDecimal(std::string_view text, std::string_view what) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return Corruption(fmt::format("meta '{}' holds '{}', not a number", what,
                                  Printable(text)));
  }
  return v;
}

Result<uint64_t> DecodeIdKey(std::string_view key, Cf cf) {
  if (key.size() != 8) {
    return Corruption(
        fmt::format("{}: key of {} bytes, expected 8", CfName(cf), key.size()));
  }
  uint64_t id = 0;
  for (unsigned char c : key) id = (id << 8) | c;
  return id;
}

uint64_t RecordId(const Host& r) { return r.id; }
uint64_t RecordId(const Device& r) { return r.id; }
uint64_t RecordId(const Pool& r) { return r.id; }
uint64_t RecordId(const Volume& r) { return r.id; }
uint64_t RecordId(const Snapshot& r) { return r.id; }
uint64_t RecordId(const MapEpoch& r) { return r.epoch; }
uint64_t RecordId(const PathState& r) { return r.device_id; }

// "'a', 'b', 'c' and 4 more": names what blocks a delete, bounded.
std::string ListNames(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) {
    out += (i ? ", " : "") + names[i];
  }
  if (names.size() > kShown) {
    out += fmt::format(" and {} more", names.size() - kShown);
  }
  return out;
}

}  // namespace

std::string_view CfName(Cf cf) {
  switch (cf) {
    case Cf::kMeta:
      return "meta";
    case Cf::kHosts:
      return "hosts";
    case Cf::kDevices:
      return "devices";
    case Cf::kPools:
      return "pools";
    case Cf::kVolumes:
      return "volumes";
    case Cf::kSnapshots:
      return "snapshots";
    case Cf::kMapEpochs:
      return "map_epochs";
    case Cf::kMaps:
      return "maps";
    case Cf::kPaths:
      return "paths";
    case Cf::kHostKeys:
      return "host_keys";
    case Cf::kApiTokens:
      return "api_tokens";
    case Cf::kSealKeys:
      return "seal_keys";
  }
  return "?";
}

std::string EncodeIdKey(uint64_t id) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(id & 0xff);
    id >>= 8;
  }
  return key;
}

MetadataStore::MetadataStore(std::string location, StoreOptions options,
                             std::unique_ptr<KvStore> kv)
    : location_(std::move(location)),
      options_(std::move(options)),
      kv_(std::move(kv)) {}

MetadataStore::~MetadataStore() = default;

Result<std::unique_ptr<MetadataStore>> MetadataStore::Open(
    const std::string& location, StoreOptions options) {
  CVM_ASSIGN_OR_RETURN(auto kv, OpenKvStore(location));
  if (!options.clock)
    options.clock = [] { return int64_t{std::time(nullptr)}; };
  std::unique_ptr<MetadataStore> store(
      new MetadataStore(location, std::move(options), std::move(kv)));
  CVM_RETURN_IF_ERROR(store->InitSchema());
  return store;
}

namespace {

const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}

constexpr int kTransactAttempts = 20;

}  // namespace

template <typename F>
auto MetadataStore::Transact(F&& change) -> decltype(change()) {
  std::lock_guard lock(mutex_);
  for (int attempt = 1;; ++attempt) {
    if (Status s = kv_->Begin(); !s.ok()) return s;
    auto result = change();
    kv_->End();
    if (StatusOf(result).code() != Code::kConflict ||
        attempt == kTransactAttempts) {
      return result;
    }
    // Another cvmd won: a short, growing, jittered pause before the checks
    // run again, so racing writers spread out.
    thread_local std::mt19937 jitter{std::random_device{}()};
    std::this_thread::sleep_for(std::chrono::microseconds(
        (500 + jitter() % 1000) * std::min(attempt, 10)));
  }
}

Status MetadataStore::InitSchema() {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(auto version, GetRaw(Cf::kMeta, kSchemaKey));
    if (version) {
      CVM_ASSIGN_OR_RETURN(uint64_t v, ParseDecimal(*version, kSchemaKey));
      if (v != kSchemaVersion) {
        return Corruption(fmt::format(
            "metadata store {} has schema version {}; this cvmd supports {}",
            location_, v, kSchemaVersion));
      }
      return {};
    }
    // No version: only a brand-new store may get one.
    for (Cf cf : kAllCfs) {
      CVM_ASSIGN_OR_RETURN(uint64_t n, CountKeys(cf));
      if (n != 0) {
        return Corruption(fmt::format(
            "metadata store {} has records but no schema version", location_));
      }
    }
    KvBatch batch;
    batch.Put(Cf::kMeta, kSchemaKey, std::to_string(kSchemaVersion));
    return Commit(batch);
  });
}

int64_t MetadataStore::Now() const { return options_.clock(); }

Status MetadataStore::Commit(const KvBatch& batch) {
  if (options_.fail_commit && options_.fail_commit()) {
    return IoError("commit failed (injected)");
  }
  return kv_->Commit(batch, options_.sync);
}

Result<std::optional<std::string>> MetadataStore::GetRaw(Cf cf,
                                                         std::string_view key) {
  return kv_->Get(cf, key);
}

Status MetadataStore::ScanRaw(
    Cf cf,
    const std::function<Status(std::string_view, std::string_view)>& fn) {
  return kv_->Scan(cf, fn);
}

template <typename T>
Result<std::vector<T>> MetadataStore::ScanAll(
    Cf cf, Result<T> (*decode)(std::string_view)) {
  std::vector<T> out;
  Status s = ScanRaw(cf, [&](std::string_view key, std::string_view value) {
    CVM_ASSIGN_OR_RETURN(uint64_t id, DecodeIdKey(key, cf));
    Result<T> record = decode(value);
    if (!record.ok()) {
      return record.status().WithContext(fmt::format("{}/{}", CfName(cf), id));
    }
    if (RecordId(*record) != id) {
      return Corruption(fmt::format("{}/{}: record says id {}", CfName(cf), id,
                                    RecordId(*record)));
    }
    out.push_back(std::move(record).value());
    return Status();
  });
  CVM_RETURN_IF_ERROR(s);
  return out;
}

template <typename T>
Result<std::optional<T>> MetadataStore::GetById(
    Cf cf, uint64_t id, Result<T> (*decode)(std::string_view)) {
  CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(cf, EncodeIdKey(id)));
  if (!raw) return std::optional<T>();
  Result<T> record = decode(*raw);
  if (!record.ok()) {
    return record.status().WithContext(fmt::format("{}/{}", CfName(cf), id));
  }
  if (RecordId(*record) != id) {
    return Corruption(fmt::format("{}/{}: record says id {}", CfName(cf), id,
                                  RecordId(*record)));
  }
  return std::optional<T>(std::move(record).value());
}

Result<uint64_t> MetadataStore::CountKeys(Cf cf) { return kv_->Count(cf); }

Result<uint64_t> MetadataStore::ReadCounter(std::string_view key) {
  CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, key));
  if (!raw) return uint64_t{0};
  return ParseDecimal(*raw, key);
}

Result<uint64_t> MetadataStore::NextId(KvBatch& batch, std::string_view kind) {
  const std::string key = CounterKey(kind);
  CVM_ASSIGN_OR_RETURN(uint64_t last, ReadCounter(key));
  const uint64_t id = last + 1;
  batch.Put(Cf::kMeta, key, std::to_string(id));
  return id;
}

Result<Topology> MetadataStore::LoadTopology() {
  Topology t;
  CVM_ASSIGN_OR_RETURN(t.hosts, ListHosts());
  CVM_ASSIGN_OR_RETURN(t.devices, ListDevices());
  CVM_ASSIGN_OR_RETURN(t.pools, ListPools());
  return t;
}

namespace {

// Why `pool` cannot be placed in an epoch's map; empty when it can.
std::string Unplaceable(const Pool& pool, const std::string& problem,
                        const std::vector<std::string>& left_out) {
  if (!problem.empty()) return problem;
  const std::string prefix = fmt::format("pool '{}': ", pool.name);
  for (const auto& why : left_out) {
    if (why.starts_with(prefix)) return why.substr(prefix.size());
  }
  return {};
}

}  // namespace

// A topology change must not take a pool that holds volumes out of the map
// (its volumes would stop being served, and cvm.ko refuses a map that drops
// the pool of an attached volume): refused, naming the pool and why. A pool
// that could not be placed before the change is not held against it (the
// change may be part of fixing that).
Status MetadataStore::CheckPoolsStayPlaceable(uint64_t current,
                                              const std::string& reason,
                                              const Topology& next,
                                              const SealedMap& sealed) {
  if (sealed.problem.empty() && sealed.left_out.empty()) return {};
  // Compared with the map as it stands: with changes pending (not cut
  // yet), the map they make, as the records read before this change.
  std::optional<MapEpoch> before;
  CVM_ASSIGN_OR_RETURN(auto pending, GetRaw(Cf::kMeta, kPendingKey));
  if (pending) {
    CVM_ASSIGN_OR_RETURN(Topology now, LoadTopology());
    KvBatch scratch;
    CVM_ASSIGN_OR_RETURN(SealedMap m, SealTopology(scratch, current + 1, now));
    before = MapEpoch{};
    before->problem = m.problem;
    before->left_out = m.left_out;
  } else if (current != 0) {
    CVM_ASSIGN_OR_RETURN(before, GetEpoch(current));
  }
  CVM_ASSIGN_OR_RETURN(auto volumes, ListVolumes());
  for (const Pool& pool : next.pools) {
    const std::string why = Unplaceable(pool, sealed.problem, sealed.left_out);
    if (why.empty()) continue;
    if (!before ||
        !Unplaceable(pool, before->problem, before->left_out).empty()) {
      continue;
    }
    const auto n =
        std::count_if(volumes.begin(), volumes.end(),
                      [&](const Volume& v) { return v.pool_id == pool.id; });
    if (n == 0) continue;
    return InUse(
        fmt::format("{} would leave pool '{}' ({} volume{}) unplaceable: {}",
                    reason, pool.name, n, n == 1 ? "" : "s", why));
  }
  return {};
}

Result<std::string> MetadataStore::PoolPlacementProblem(const Pool& pool) {
  CVM_ASSIGN_OR_RETURN(uint64_t current, ReadCounter(kEpochKey));
  // Changes the leader has not cut yet count: the map they will make.
  CVM_ASSIGN_OR_RETURN(auto pending, GetRaw(Cf::kMeta, kPendingKey));
  if (pending) {
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    KvBatch scratch;
    CVM_ASSIGN_OR_RETURN(SealedMap sealed,
                         SealTopology(scratch, current + 1, next));
    return Unplaceable(pool, sealed.problem, sealed.left_out);
  }
  if (current == 0) return std::string("the cluster has no devices yet");
  CVM_ASSIGN_OR_RETURN(MapEpoch e, GetEpoch(current));
  return Unplaceable(pool, e.problem, e.left_out);
}

Status MetadataStore::BumpEpoch(KvBatch& batch, std::string reason,
                                const Topology& next,
                                const std::set<uint32_t>& given_up) {
  if (!options_.defer_epochs) {
    return SealEpoch(batch, std::move(reason), next, /*record=*/true, {}, {},
                     given_up);
  }
  // Checked now, against the map it would make; cut by the leader.
  CVM_RETURN_IF_ERROR(
      SealEpoch(batch, reason, next, /*record=*/false, {}, {}, given_up));
  CVM_ASSIGN_OR_RETURN(auto pending, GetRaw(Cf::kMeta, kPendingKey));
  std::string reasons = pending ? *pending + "; " + reason : reason;
  // The history record keeps a readable line, not every change of a storm.
  if (reasons.size() > 400) reasons = reasons.substr(0, 396) + " ...";
  batch.Put(Cf::kMeta, kPendingKey, reasons);
  return {};
}

Result<uint64_t> MetadataStore::CutPendingEpoch(int64_t leader_lease) {
  return Transact([&]() -> Result<uint64_t> {
    CVM_ASSIGN_OR_RETURN(auto pending, GetRaw(Cf::kMeta, kPendingKey));
    if (!pending) return uint64_t{0};
    CVM_ASSIGN_OR_RETURN(uint64_t current, ReadCounter(kEpochKey));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    KvBatch batch;
    batch.RequireLeaderLease(leader_lease);
    CVM_RETURN_IF_ERROR(SealEpoch(batch, *pending, next, /*record=*/true));
    batch.Delete(Cf::kMeta, kPendingKey);
    CVM_RETURN_IF_ERROR(Commit(batch));
    return current + 1;
  });
}

Result<uint64_t> MetadataStore::SettlePins(
    uint64_t epoch, const std::map<uint32_t, CopiedVolumes>& copied,
    int64_t leader_lease) {
  return Transact([&]() -> Result<uint64_t> {
    CVM_ASSIGN_OR_RETURN(uint64_t current, ReadCounter(kEpochKey));
    if (current != epoch) {
      return Unavailable(fmt::format(
          "map epoch {} was cut since the copy (it was {})", current, epoch));
    }
    CVM_ASSIGN_OR_RETURN(auto pending, GetRaw(Cf::kMeta, kPendingKey));
    if (pending) return Unavailable("topology changes are pending a cut");
    CVM_ASSIGN_OR_RETURN(auto volumes, ListVolumes());
    std::map<uint32_t, size_t> in_pool;
    for (const Volume& v : volumes) {
      auto pool = copied.find(static_cast<uint32_t>(v.pool_id));
      if (pool == copied.end()) continue;
      ++in_pool[pool->first];
      auto it = pool->second.find(v.id);
      if (it == pool->second.end()) {
        return Unavailable(fmt::format("volume '{}' was not copied", v.name));
      }
      if (v.attach_epoch != it->second) {
        return Unavailable(
            fmt::format("volume '{}' was attached since its copy", v.name));
      }
      // Attached: its host copied it (and keeps every write on both).
      if (!v.attached_host.empty() && (v.backfilled_epoch != epoch ||
                                       v.backfilled_attach != v.attach_epoch)) {
        return Unavailable(
            fmt::format("volume '{}' is not copied yet by its host '{}'",
                        v.name, v.attached_host));
      }
    }
    for (const auto& [pool_id, vols] : copied) {
      if (in_pool[pool_id] != vols.size()) {
        return Unavailable(fmt::format(
            "volumes of pool {} were deleted since the copy", pool_id));
      }
    }
    CVM_ASSIGN_OR_RETURN(auto blob, GetRaw(Cf::kMaps, EncodeIdKey(current)));
    if (!blob) return NotFound(fmt::format("map epoch {} has no map", current));
    cvm_map* raw = nullptr;
    cvm_err err{};
    if (cvm_map_decode(blob->data(), blob->size(), &raw, &err)) {
      return Corruption(fmt::format("map epoch {}: {}", current,
                                    err.why ? err.why : "does not decode"));
    }
    CMapPtr map(raw);
    PgSet settled;
    std::vector<MovedOff> moved;
    for (uint32_t i = 0; i < map->nr_pins; ++i) {
      const cvm_pg_pin& pin = map->pins[i];
      if (!copied.count(pin.pool_id)) continue;
      settled.insert({pin.pool_id, pin.pg});
      MovedOff m{pin.pool_id, pin.pg, {}};
      for (uint32_t d : pin.devs) {
        if (d != CVM_DEV_NONE) m.devs.push_back(d);
      }
      moved.push_back(std::move(m));
    }
    if (settled.empty()) return current;
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    KvBatch batch;
    if (leader_lease != 0) batch.RequireLeaderLease(leader_lease);
    CVM_RETURN_IF_ERROR(SealEpoch(
        batch,
        fmt::format("backfill: {} PGs of {} pool{} moved to their devices",
                    settled.size(), copied.size(),
                    copied.size() == 1 ? "" : "s"),
        next, /*record=*/true, settled, moved));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return current + 1;
  });
}

Result<std::string> MetadataStore::GetBackfillMoved() {
  CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, kMovedKey));
  return raw ? *raw : std::string();
}

Status MetadataStore::ClearBackfillMoved(const std::string& swept,
                                         const std::string& left) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, kMovedKey));
    if (!raw) return {};
    if (*raw != swept) return Unavailable("more PGs moved since the sweep");
    KvBatch batch;
    if (left.empty()) {
      batch.Delete(Cf::kMeta, kMovedKey);
    } else {
      batch.Put(Cf::kMeta, kMovedKey, left);
    }
    return Commit(batch);
  });
}

Result<bool> MetadataStore::RecordBackfilled(std::string_view name,
                                             std::string_view host,
                                             uint64_t attach_epoch,
                                             uint64_t map_epoch) {
  bool recorded = false;
  CVM_RETURN_IF_ERROR(UpdateVolume(name, [&](Volume& v) -> Result<bool> {
                        if (v.attached_host != host ||
                            v.attach_epoch != attach_epoch ||
                            (v.backfilled_epoch == map_epoch &&
                             v.backfilled_attach == attach_epoch)) {
                          return false;
                        }
                        v.backfilled_epoch = map_epoch;
                        v.backfilled_attach = attach_epoch;
                        recorded = true;
                        return true;
                      }).status());
  return recorded;
}

Result<uint64_t> MetadataStore::CarryingEpoch() {
  return Transact([&]() -> Result<uint64_t> {
    CVM_ASSIGN_OR_RETURN(uint64_t current, ReadCounter(kEpochKey));
    CVM_ASSIGN_OR_RETURN(auto pending, GetRaw(Cf::kMeta, kPendingKey));
    return pending ? current + 1 : current;
  });
}

Result<SealedMap> MetadataStore::SealTopology(KvBatch& batch, uint64_t epoch,
                                              const Topology& next,
                                              const PgSet& settled) {
  // Rack and row buckets keep the id they were first given (cluster_map.h).
  BucketIndexes indexes;
  std::optional<uint64_t> next_index;
  for (const Host& h : next.hosts) {
    for (const std::string& key : {RackKey(h), RowKey(h)}) {
      if (key.empty() || indexes.count(key)) continue;
      const std::string meta_key = fmt::format("bucket/{}", key);
      CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, meta_key));
      uint64_t index = 0;
      if (raw) {
        CVM_ASSIGN_OR_RETURN(index, ParseDecimal(*raw, meta_key));
      } else {
        if (!next_index) {
          CVM_ASSIGN_OR_RETURN(next_index, ReadCounter(CounterKey("bucket")));
        }
        index = ++*next_index;
        batch.Put(Cf::kMeta, meta_key, std::to_string(index));
        batch.Put(Cf::kMeta, CounterKey("bucket"), std::to_string(index));
      }
      if (index == 0 || index >= CVM_MAX_BUCKETS / 2) {
        return InvalidArgument(fmt::format(
            "too many racks and rows: {} would be number {}", key, index));
      }
      indexes[key] = static_cast<uint32_t>(index);
    }
  }
  // Where the data is: written under the current epoch's map, the last one
  // the kernels were given (changes pending a cut never reached them).
  DataPlacement data;
  data.settled = settled;
  CVM_ASSIGN_OR_RETURN(auto volumes, ListVolumes());
  for (const Volume& v : volumes) {
    data.pools_with_data.insert(static_cast<uint32_t>(v.pool_id));
  }
  // The balancer starts from the same map's rows, data or not, so the
  // overrides stay put until something changes.
  CVM_ASSIGN_OR_RETURN(uint64_t current, ReadCounter(kEpochKey));
  CVM_ASSIGN_OR_RETURN(auto blob, GetRaw(Cf::kMaps, EncodeIdKey(current)));
  if (blob) data.previous = std::move(*blob);
  CVM_ASSIGN_OR_RETURN(ClusterSettings settings, GetSettings());
  data.balancer_max_moves = settings.balancer_max_moves;
  return SealMap(epoch, next, indexes, data);
}

Status MetadataStore::SealEpoch(KvBatch& batch, std::string reason,
                                const Topology& next, bool record,
                                const PgSet& settled,
                                const std::vector<MovedOff>& moved,
                                const std::set<uint32_t>& given_up) {
  CVM_ASSIGN_OR_RETURN(uint64_t current, ReadCounter(kEpochKey));
  MapEpoch e;
  e.epoch = current + 1;
  e.created = Now();
  e.reason = std::move(reason);
  CVM_ASSIGN_OR_RETURN(SealedMap sealed,
                       SealTopology(batch, e.epoch, next, settled));
  CVM_RETURN_IF_ERROR(CheckPoolsStayPlaceable(current, e.reason, next, sealed));
  // Copies on a device removed by force (dead: they are rebuilt from the
  // others) may go; any other copy not moved yet may not.
  CVM_ASSIGN_OR_RETURN(std::set<uint32_t> forced, ForcedRemovals());
  forced.insert(given_up.begin(), given_up.end());
  std::vector<std::string> lost;
  for (const SealedMap::LostCopy& l : sealed.lost) {
    if (!forced.count(l.device)) {
      lost.push_back(
          fmt::format("device {} (pool {} PG {})", l.device, l.pool, l.pg));
    }
  }
  if (!lost.empty()) {
    return InUse(fmt::format(
        "{} would drop {} cop{} of data not yet moved elsewhere: {}{}; mark "
        "the device out and let its data move first (or, if it is dead, "
        "remove it with --force)",
        e.reason, lost.size(), lost.size() == 1 ? "y" : "ies", lost.front(),
        lost.size() > 1 ? ", ..." : ""));
  }
  if (!sealed.unrecoverable.empty()) {
    return InUse(fmt::format(
        "{} would leave {} PG{} with too few copies to rebuild their data "
        "from: {}{}",
        e.reason, sealed.unrecoverable.size(),
        sealed.unrecoverable.size() == 1 ? "" : "s",
        sealed.unrecoverable.front(),
        sealed.unrecoverable.size() > 1 ? ", ..." : ""));
  }
  if (!record) return {};
  e.map_size = sealed.blob.size();
  e.map_crc = sealed.crc;
  e.problem = sealed.problem;
  e.left_out = sealed.left_out;
  if (!moved.empty() || !sealed.abandoned.empty()) {
    CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, kMovedKey));
    nlohmann::json record = nlohmann::json::array();
    if (raw) {
      record = nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
      if (!record.is_array()) {
        return Corruption(fmt::format("{} is not a JSON array", kMovedKey));
      }
    }
    for (const std::vector<MovedOff>* list :
         {&moved, &std::as_const(sealed.abandoned)}) {
      for (const MovedOff& m : *list) {
        record.push_back({{"pool", m.pool}, {"pg", m.pg}, {"devs", m.devs}});
      }
    }
    batch.Put(Cf::kMeta, kMovedKey, record.dump());
  }
  batch.Put(Cf::kMeta, kEpochKey, std::to_string(e.epoch));
  batch.Put(Cf::kMapEpochs, EncodeIdKey(e.epoch), Encode(ToJson(e)));
  if (!sealed.blob.empty()) {
    batch.Put(Cf::kMaps, EncodeIdKey(e.epoch), sealed.blob);
  }
  return {};
}

// ---- hosts ----

Result<Host> MetadataStore::AddHost(Host spec) {
  CVM_RETURN_IF_ERROR(ValidateNewHost(spec));
  return Transact([&]() -> Result<Host> {
    CVM_ASSIGN_OR_RETURN(auto hosts, ListHosts());
    for (const auto& h : hosts) {
      if (h.name == spec.name) {
        return AlreadyExists(
            fmt::format("host '{}' already exists", spec.name));
      }
      // One address, one host: the map reaches each device by its host's
      // first address, and a target listener serves one host.
      for (const auto& a : spec.addresses) {
        if (std::find(h.addresses.begin(), h.addresses.end(), a) !=
            h.addresses.end()) {
          return AlreadyExists(
              fmt::format("address '{}' is already host '{}''s", a, h.name));
        }
      }
    }
    KvBatch batch;
    CVM_ASSIGN_OR_RETURN(spec.id, NextId(batch, "host"));
    spec.created = Now();
    batch.Put(Cf::kHosts, EncodeIdKey(spec.id), Encode(ToJson(spec)));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    next.hosts.push_back(spec);
    CVM_RETURN_IF_ERROR(
        BumpEpoch(batch, fmt::format("host.add {}", spec.name), next));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return spec;
  });
}

Result<Host> MetadataStore::SetJoinHash(std::string_view name,
                                        std::string_view join_hash) {
  return Transact([&]() -> Result<Host> {
    CVM_ASSIGN_OR_RETURN(Host h, GetHost(name));
    h.join_hash = std::string(join_hash);
    h.key_hash.clear();
    KvBatch batch;
    batch.Put(Cf::kHosts, EncodeIdKey(h.id), Encode(ToJson(h)));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return h;
  });
}

Result<Host> MetadataStore::JoinHost(std::string_view name,
                                     std::string_view token_hash,
                                     std::string_view key_hash) {
  return Transact([&]() -> Result<Host> {
    CVM_ASSIGN_OR_RETURN(Host h, GetHost(name));
    if (h.join_hash.empty() || h.join_hash.size() != token_hash.size() ||
        CRYPTO_memcmp(h.join_hash.data(), token_hash.data(),
                      token_hash.size()) != 0) {
      return PermissionDenied(fmt::format(
          "the join token is not host '{}''s current one (used already, or "
          "replaced by 'cvmadm host token {}')",
          h.name, h.name));
    }
    h.join_hash.clear();
    h.key_hash = std::string(key_hash);
    KvBatch batch;
    batch.Put(Cf::kHosts, EncodeIdKey(h.id), Encode(ToJson(h)));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return h;
  });
}

Result<Host> MetadataStore::GetHost(std::string_view name) {
  CVM_ASSIGN_OR_RETURN(auto hosts, ListHosts());
  for (auto& h : hosts) {
    if (h.name == name) return std::move(h);
  }
  return NotFound(fmt::format("host '{}' does not exist", Printable(name)));
}

Result<Host> MetadataStore::GetHostById(uint64_t id) {
  CVM_ASSIGN_OR_RETURN(auto host, GetById(Cf::kHosts, id, &DecodeHost));
  if (!host) return NotFound(fmt::format("host {} does not exist", id));
  return std::move(*host);
}

Result<std::vector<Host>> MetadataStore::ListHosts() {
  return ScanAll(Cf::kHosts, &DecodeHost);
}

Status MetadataStore::RemoveHost(std::string_view name) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(Host host, GetHost(name));
    CVM_ASSIGN_OR_RETURN(auto devices, ListDevices());
    std::vector<std::string> users;
    for (const auto& d : devices) {
      if (d.host_id == host.id)
        users.push_back(fmt::format("{} ({})", d.id, d.path));
    }
    if (!users.empty()) {
      return InUse(
          fmt::format("host '{}' still has devices {}; remove them first",
                      host.name, ListNames(users)));
    }
    if (!host.listeners.empty()) {
      return InUse(fmt::format(
          "host '{}' still listens on {}; run 'target unlisten' first",
          host.name, ListNames(host.listeners)));
    }
    KvBatch batch;
    batch.Delete(Cf::kHosts, EncodeIdKey(host.id));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    std::erase_if(next.hosts, [&](const Host& h) { return h.id == host.id; });
    CVM_RETURN_IF_ERROR(
        BumpEpoch(batch, fmt::format("host.remove {}", host.name), next));
    return Commit(batch);
  });
}

Result<Host> MetadataStore::SetListener(std::string_view address,
                                        bool listening) {
  return Transact([&]() -> Result<Host> {
    CVM_ASSIGN_OR_RETURN(auto hosts, ListHosts());
    for (Host& h : hosts) {
      if (std::find(h.addresses.begin(), h.addresses.end(), address) ==
          h.addresses.end()) {
        continue;
      }
      const bool was = std::find(h.listeners.begin(), h.listeners.end(),
                                 address) != h.listeners.end();
      if (was == listening) return std::move(h);
      if (listening) {
        h.listeners.emplace_back(address);
      } else {
        std::erase(h.listeners, std::string(address));
      }
      CVM_RETURN_IF_ERROR(ValidateHost(h));
      KvBatch batch;
      batch.Put(Cf::kHosts, EncodeIdKey(h.id), Encode(ToJson(h)));
      CVM_RETURN_IF_ERROR(Commit(batch));
      return std::move(h);
    }
    return NotFound(fmt::format(
        "no host has address '{}' (listeners serve a host's addresses: see "
        "'host list')",
        Printable(address)));
  });
}

// ---- devices ----

Result<Device> MetadataStore::AddDevice(const DeviceSpec& spec) {
  Device d;
  d.path = spec.path;
  d.capacity = spec.capacity;
  d.weight = spec.weight;
  d.device_class = spec.device_class;
  CVM_RETURN_IF_ERROR(ValidateNewDevice(d));
  return Transact([&]() -> Result<Device> {
    CVM_ASSIGN_OR_RETURN(Host host, GetHost(spec.host));
    CVM_ASSIGN_OR_RETURN(auto devices, ListDevices());
    for (const auto& other : devices) {
      if (other.host_id == host.id && other.path == d.path) {
        return AlreadyExists(
            fmt::format("device {} on host '{}' already exists as device {}",
                        d.path, host.name, other.id));
      }
    }
    d.host_id = host.id;
    KvBatch batch;
    CVM_ASSIGN_OR_RETURN(d.id, NextId(batch, "device"));
    d.created = Now();
    batch.Put(Cf::kDevices, EncodeIdKey(d.id), Encode(ToJson(d)));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    next.devices.push_back(d);
    CVM_RETURN_IF_ERROR(BumpEpoch(
        batch, fmt::format("device.add {} {}:{}", d.id, host.name, d.path),
        next));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return d;
  });
}

Result<Device> MetadataStore::GetDevice(uint64_t id) {
  CVM_ASSIGN_OR_RETURN(auto device, GetById(Cf::kDevices, id, &DecodeDevice));
  if (!device) return NotFound(fmt::format("device {} does not exist", id));
  return std::move(*device);
}

Result<std::vector<Device>> MetadataStore::ListDevices() {
  return ScanAll(Cf::kDevices, &DecodeDevice);
}

Status MetadataStore::PutHostKeys(const HostKeyRow& row) {
  return Transact([&]() -> Status {
    KvBatch batch;
    batch.Put(Cf::kHostKeys,
              EncodeIdKey(row.device_id) + EncodeIdKey(row.host_id),
              EncodeHostKeyRow(row));
    return Commit(batch);
  });
}

Status MetadataStore::PutSealKey(uint64_t host_id, const SealPublic& key) {
  return Transact([&]() -> Status {
    KvBatch batch;
    batch.Put(Cf::kSealKeys, EncodeIdKey(host_id),
              nlohmann::json{{"host_id", host_id}, {"public", HexEncode(key)}}
                  .dump());
    return Commit(batch);
  });
}

Result<std::map<uint64_t, SealPublic>> MetadataStore::ListSealKeys() {
  std::map<uint64_t, SealPublic> keys;
  Status s =
      ScanRaw(Cf::kSealKeys, [&](std::string_view key, std::string_view value) {
        const auto j = nlohmann::json::parse(value, nullptr, false);
        Result<SealPublic> pub = Corruption("not a seal key record");
        if (j.is_object() && j.contains("host_id") &&
            j["host_id"].is_number_unsigned() && j.contains("public") &&
            j["public"].is_string() &&
            key == EncodeIdKey(j["host_id"].get<uint64_t>()))
          pub = HexDecodeArray<32>(j["public"].get<std::string>(), "seal key");
        if (!pub.ok()) {
          LogWarn("seal_keys: a row left out: {}", pub.status().message());
          return Status::Ok();
        }
        keys[j["host_id"].get<uint64_t>()] = *pub;
        return Status::Ok();
      });
  if (!s.ok()) return s;
  return keys;
}

Status MetadataStore::CreateApiToken(std::string_view id,
                                     std::string_view record) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(auto old, GetRaw(Cf::kApiTokens, id));
    if (old) return AlreadyExists(fmt::format("token {} exists", id));
    KvBatch batch;
    batch.Put(Cf::kApiTokens, id, record);
    return Commit(batch);
  });
}

Result<std::optional<std::string>> MetadataStore::GetApiToken(
    std::string_view id) {
  return GetRaw(Cf::kApiTokens, id);
}

Result<std::vector<std::string>> MetadataStore::ListApiTokens() {
  std::vector<std::string> records;
  CVM_RETURN_IF_ERROR(
      ScanRaw(Cf::kApiTokens, [&](std::string_view, std::string_view value) {
        records.emplace_back(value);
        return Status::Ok();
      }));
  return records;
}

Status MetadataStore::DeleteApiToken(std::string_view id) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(auto old, GetRaw(Cf::kApiTokens, id));
    if (!old) return NotFound(fmt::format("token {} does not exist", id));
    KvBatch batch;
    batch.Delete(Cf::kApiTokens, id);
    return Commit(batch);
  });
}

Result<std::vector<HostKeyRow>> MetadataStore::ListHostKeys() {
  std::vector<HostKeyRow> rows;
  Status s =
      ScanRaw(Cf::kHostKeys, [&](std::string_view key, std::string_view value) {
        // One bad row (any cvmd writes them) must not keep every other
        // host out: it is left out, and said.
        Result<HostKeyRow> row = DecodeHostKeyRow(value);
        if (row.ok() &&
            key != EncodeIdKey(row->device_id) + EncodeIdKey(row->host_id))
          row = Corruption("row under another key");
        if (!row.ok()) {
          LogWarn("host_keys: a row left out: {}", row.status().message());
          return Status::Ok();
        }
        rows.push_back(std::move(*row));
        return Status::Ok();
      });
  if (!s.ok()) return s;
  return rows;
}

Result<std::string> MetadataStore::GetRecoveryRecord() {
  CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, kRecoveryKey));
  return raw ? *raw : std::string();
}

Status MetadataStore::PutRecoveryRecord(const std::string& record) {
  return Transact([&]() -> Status {
    KvBatch batch;
    if (record.empty()) {
      batch.Delete(Cf::kMeta, kRecoveryKey);
    } else {
      batch.Put(Cf::kMeta, kRecoveryKey, record);
    }
    return Commit(batch);
  });
}

Result<std::set<uint32_t>> MetadataStore::ForcedRemovals() {
  CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, kForcedKey));
  std::set<uint32_t> ids;
  if (!raw) return ids;
  const nlohmann::json j =
      nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array())
    return Corruption(fmt::format("{} is not an array", kForcedKey));
  for (const auto& id : j) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() > UINT32_MAX) {
      return Corruption(fmt::format("{} holds a bad device id", kForcedKey));
    }
    ids.insert(id.get<uint32_t>());
  }
  return ids;
}

Status MetadataStore::RemoveDevice(uint64_t id, bool force) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(Device d, GetDevice(id));
    KvBatch batch;
    if (force) {
      // Only a dead device: marked down, or every initiator's path down.
      CVM_ASSIGN_OR_RETURN(auto path, GetPathState(d.id));
      bool path_down = path.has_value() && !path->initiators.empty();
      if (path) {
        for (const auto& [host, ip] : path->initiators) path_down &= !ip.up;
      }
      if (d.up && !path_down) {
        return InUse(fmt::format(
            "device {} is up: --force removes only a dead device (marked "
            "down, or unreachable from every initiator); drain it instead",
            d.id));
      }
      CVM_ASSIGN_OR_RETURN(std::set<uint32_t> forced, ForcedRemovals());
      forced.insert(static_cast<uint32_t>(d.id));
      batch.Put(Cf::kMeta, kForcedKey, nlohmann::json(forced).dump());
    } else if (d.served) {
      return InUse(fmt::format(
          "device {} is served by its target; run 'target device remove {}' "
          "first (or, if the device is dead, remove it with --force)",
          d.id, d.id));
    }
    batch.Delete(Cf::kDevices, EncodeIdKey(d.id));
    batch.Delete(Cf::kPaths, EncodeIdKey(d.id));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    std::erase_if(next.devices, [&](const Device& o) { return o.id == d.id; });
    CVM_RETURN_IF_ERROR(
        BumpEpoch(batch, fmt::format("device.remove {}", d.id), next,
                  force ? std::set<uint32_t>{static_cast<uint32_t>(d.id)}
                        : std::set<uint32_t>{}));
    return Commit(batch);
  });
}

Result<Device> MetadataStore::SetDeviceState(uint64_t id,
                                             std::optional<bool> up,
                                             std::optional<bool> in) {
  return Transact([&]() -> Result<Device> {
    CVM_ASSIGN_OR_RETURN(Device d, GetDevice(id));
    const Device before = d;
    if (up) d.up = *up;
    if (in) d.in = *in;
    if (d.up == before.up && d.in == before.in) return d;
    CVM_RETURN_IF_ERROR(
        PutDevice(d, fmt::format("device.state {} {},{}", d.id,
                                 d.up ? "up" : "down", d.in ? "in" : "out")));
    return d;
  });
}

Result<std::vector<Device>> MetadataStore::SetHostIn(std::string_view name,
                                                     bool in) {
  return Transact([&]() -> Result<std::vector<Device>> {
    CVM_ASSIGN_OR_RETURN(Host host, GetHost(name));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    std::vector<Device> changed;
    bool any = false;
    KvBatch batch;
    for (Device& d : next.devices) {
      if (d.host_id != host.id) continue;
      any = true;
      if (d.in == in && (!in || d.up)) continue;
      d.in = in;
      if (in) d.up = true;
      batch.Put(Cf::kDevices, EncodeIdKey(d.id), Encode(ToJson(d)));
      changed.push_back(d);
    }
    if (!any) {
      return InvalidArgument(
          fmt::format("host '{}' has no devices", Printable(name)));
    }
    if (changed.empty()) return changed;
    CVM_RETURN_IF_ERROR(BumpEpoch(
        batch, fmt::format("host.state {} {}", host.name, in ? "in" : "out"),
        next));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return changed;
  });
}

Status MetadataStore::PutDevice(const Device& d, std::string reason) {
  KvBatch batch;
  batch.Put(Cf::kDevices, EncodeIdKey(d.id), Encode(ToJson(d)));
  if (!reason.empty()) {
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    for (Device& o : next.devices) {
      if (o.id == d.id) o = d;
    }
    CVM_RETURN_IF_ERROR(BumpEpoch(batch, std::move(reason), next));
  }
  return Commit(batch);
}

Result<Device> MetadataStore::SetDeviceFill(uint64_t id, bool nearfull,
                                            bool full) {
  return Transact([&]() -> Result<Device> {
    CVM_ASSIGN_OR_RETURN(Device d, GetDevice(id));
    if (d.nearfull == nearfull && d.full == full) return d;
    // Only `full` is in the map.
    const bool map_changes = d.full != full;
    d.nearfull = nearfull;
    d.full = full;
    CVM_RETURN_IF_ERROR(
        PutDevice(d, map_changes ? fmt::format("device.fill {} {}", d.id,
                                               full ? "full" : "not full")
                                 : std::string()));
    return d;
  });
}

Result<Device> MetadataStore::SetDeviceServed(uint64_t id, bool served) {
  return Transact([&]() -> Result<Device> {
    CVM_ASSIGN_OR_RETURN(Device d, GetDevice(id));
    if (d.served == served) return d;
    d.served = served;
    CVM_RETURN_IF_ERROR(PutDevice(d, ""));
    return d;
  });
}

// ---- settings ----

Result<ClusterSettings> MetadataStore::GetSettings() {
  CVM_ASSIGN_OR_RETURN(auto raw, GetRaw(Cf::kMeta, kSettingsKey));
  return DecodeClusterSettings(raw ? *raw : std::string());
}

Result<ClusterSettings> MetadataStore::SetSetting(std::string_view key,
                                                  std::string_view value) {
  uint32_t moves_before = 0;
  CVM_ASSIGN_OR_RETURN(ClusterSettings set,
                       Transact([&]() -> Result<ClusterSettings> {
                         CVM_ASSIGN_OR_RETURN(ClusterSettings s, GetSettings());
                         moves_before = s.balancer_max_moves;
                         CVM_RETURN_IF_ERROR(ApplySetting(&s, key, value));
                         KvBatch batch;
                         batch.Put(Cf::kMeta, kSettingsKey, Encode(ToJson(s)));
                         CVM_RETURN_IF_ERROR(Commit(batch));
                         return s;
                       }));
  // The balancer runs when a map is sealed: a new cap takes effect in a new
  // epoch now, not at the next change of the cluster.
  if (set.balancer_max_moves != moves_before) {
    CVM_RETURN_IF_ERROR(Transact([&]() -> Status {
      CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
      if (next.devices.empty()) return {};
      KvBatch batch;
      CVM_RETURN_IF_ERROR(BumpEpoch(
          batch,
          fmt::format("config balancer_max_moves {}", set.balancer_max_moves),
          next));
      return Commit(batch);
    }));
  }
  return set;
}

// ---- paths ----

Result<PathState> MetadataStore::RecordPathState(PathState state) {
  CVM_RETURN_IF_ERROR(ValidatePathState(state));
  // Under the mutex, so a record cannot outlive its device's removal.
  return Transact([&]() -> Result<PathState> {
    CVM_ASSIGN_OR_RETURN(Device d, GetDevice(state.device_id));
    state.since = Now();
    // Every initiator's own last event stays; the top fields are the newest.
    CVM_ASSIGN_OR_RETURN(auto before,
                         GetById(Cf::kPaths, d.id, &DecodePathState));
    if (before) state.initiators = std::move(before->initiators);
    if (!state.host.empty()) {
      state.initiators[state.host] = {state.up, state.since,
                                      state.stale_objects, state.address};
    }
    KvBatch batch;
    batch.Put(Cf::kPaths, EncodeIdKey(d.id), Encode(ToJson(state)));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return state;
  });
}

Result<std::optional<PathState>> MetadataStore::GetPathState(
    uint64_t device_id) {
  return GetById(Cf::kPaths, device_id, &DecodePathState);
}

Result<std::vector<PathState>> MetadataStore::ListPathStates() {
  return ScanAll(Cf::kPaths, &DecodePathState);
}

// ---- pools ----

Result<Pool> MetadataStore::CreatePool(Pool spec) {
  CVM_RETURN_IF_ERROR(ValidatePool(spec));
  return Transact([&]() -> Result<Pool> {
    CVM_ASSIGN_OR_RETURN(auto pools, ListPools());
    for (const auto& p : pools) {
      if (p.name == spec.name) {
        return AlreadyExists(
            fmt::format("pool '{}' already exists", spec.name));
      }
    }
    // A class names devices that exist: a typo ("sdd") is refused with the
    // classes there are, not stored to place nothing.
    if (!spec.device_class.empty()) {
      CVM_ASSIGN_OR_RETURN(auto devices, ListDevices());
      std::set<std::string> classes;
      for (const auto& d : devices) classes.insert(d.device_class);
      if (!classes.count(spec.device_class)) {
        std::string known;
        for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
        return InvalidArgument(
            fmt::format("no device has class '{}' (the devices' classes: {})",
                        spec.device_class, known.empty() ? "none yet" : known));
      }
      std::set<std::string> pool_classes = {spec.device_class};
      for (const auto& p : pools) {
        if (!p.device_class.empty()) pool_classes.insert(p.device_class);
      }
      if (pool_classes.size() > CVM_MAX_CLASSES) {
        return InvalidArgument(fmt::format(
            "pools may ask for at most {} device classes between them",
            CVM_MAX_CLASSES));
      }
    }
    KvBatch batch;
    CVM_ASSIGN_OR_RETURN(spec.id, NextId(batch, "pool"));
    spec.created = Now();
    batch.Put(Cf::kPools, EncodeIdKey(spec.id), Encode(ToJson(spec)));
    // Pools are part of the map (DESIGN.md "map"): initiators need pg_num and
    // policy to place objects, so a pool change is a new epoch too.
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    next.pools.push_back(spec);
    CVM_RETURN_IF_ERROR(
        BumpEpoch(batch, fmt::format("pool.create {}", spec.name), next));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return spec;
  });
}

Result<Pool> MetadataStore::GetPool(std::string_view name) {
  CVM_ASSIGN_OR_RETURN(auto pools, ListPools());
  for (auto& p : pools) {
    if (p.name == name) return std::move(p);
  }
  return NotFound(fmt::format("pool '{}' does not exist", Printable(name)));
}

Result<Pool> MetadataStore::GetPoolById(uint64_t id) {
  CVM_ASSIGN_OR_RETURN(auto pool, GetById(Cf::kPools, id, &DecodePool));
  if (!pool) return NotFound(fmt::format("pool {} does not exist", id));
  return std::move(*pool);
}

Result<std::vector<Pool>> MetadataStore::ListPools() {
  return ScanAll(Cf::kPools, &DecodePool);
}

Result<Pool> MetadataStore::SetPoolMinSize(std::string_view name,
                                           uint32_t min_size) {
  return Transact([&]() -> Result<Pool> {
    CVM_ASSIGN_OR_RETURN(Pool pool, GetPool(name));
    pool.min_size = min_size;
    CVM_RETURN_IF_ERROR(ValidatePool(pool));
    KvBatch batch;
    batch.Put(Cf::kPools, EncodeIdKey(pool.id), Encode(ToJson(pool)));
    // min_size is in the map: initiators apply it to every write.
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    for (Pool& p : next.pools) {
      if (p.id == pool.id) p = pool;
    }
    CVM_RETURN_IF_ERROR(BumpEpoch(
        batch, fmt::format("pool.set {} min_size {}", pool.name, min_size),
        next));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return pool;
  });
}

Status MetadataStore::DeletePool(std::string_view name) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(Pool pool, GetPool(name));
    CVM_ASSIGN_OR_RETURN(auto volumes, ListVolumes());
    std::vector<std::string> users;
    for (const auto& v : volumes) {
      if (v.pool_id == pool.id) users.push_back("'" + v.name + "'");
    }
    if (!users.empty()) {
      return InUse(
          fmt::format("pool '{}' still has volumes {}; delete them first",
                      pool.name, ListNames(users)));
    }
    KvBatch batch;
    batch.Delete(Cf::kPools, EncodeIdKey(pool.id));
    CVM_ASSIGN_OR_RETURN(Topology next, LoadTopology());
    std::erase_if(next.pools, [&](const Pool& p) { return p.id == pool.id; });
    CVM_RETURN_IF_ERROR(
        BumpEpoch(batch, fmt::format("pool.delete {}", pool.name), next));
    return Commit(batch);
  });
}

// ---- volumes ----

// A thick volume is a promise of its whole size: it must fit in the raw
// capacity of the devices that take data, less what the thick volumes
// there already hold. A pool of a device class places on that class alone:
// its volumes are counted against the class's devices, and the thick
// volumes of pools of the class and of pools of no class (which may place
// there) as already holding it. Thin volumes promise nothing (`cvmadm df`
// shows them).
Result<RawSpace> MetadataStore::GetRawSpace(const std::vector<Volume>& volumes,
                                            const std::string& device_class) {
  CVM_ASSIGN_OR_RETURN(auto devices, ListDevices());
  CVM_ASSIGN_OR_RETURN(auto pools, ListPools());
  RawSpace space;
  for (const auto& d : devices) {
    if (d.in && (device_class.empty() || d.device_class == device_class)) {
      space.capacity += d.capacity;
    }
  }
  for (const auto& v : volumes) {
    if (v.provisioning != Provisioning::kThick) continue;
    for (const auto& p : pools) {
      if (p.id != v.pool_id) continue;
      if (device_class.empty() || p.device_class.empty() ||
          p.device_class == device_class) {
        space.thick_reserved += RawBytes(p.policy, v.size);
      }
    }
  }
  return space;
}

Status MetadataStore::CheckThickFits(const Volume& v, const Pool& pool,
                                     const std::vector<Volume>& volumes) {
  CVM_ASSIGN_OR_RETURN(RawSpace space, GetRawSpace(volumes, pool.device_class));
  const uint64_t raw = space.capacity, reserved = space.thick_reserved;
  const uint64_t need = RawBytes(pool.policy, v.size);
  if (need > raw || reserved > raw - need) {
    return NoSpace(fmt::format(
        "thick volume '{}' of {} needs {} of raw space in pool '{}' ({}); "
        "the devices{} hold {}, of which thick volumes already take {}",
        v.name, FormatSize(v.size), FormatSize(need), pool.name,
        ToString(pool.policy),
        pool.device_class.empty()
            ? ""
            : fmt::format(" of class '{}'", pool.device_class),
        FormatSize(raw), FormatSize(reserved)));
  }
  return {};
}

Result<Volume> MetadataStore::CreateVolume(const VolumeSpec& spec) {
  Volume v;
  v.name = spec.name;
  v.size = spec.size;
  v.object_size = spec.object_size;
  v.provisioning = spec.provisioning;
  return Transact([&]() -> Result<Volume> {
    CVM_ASSIGN_OR_RETURN(Pool pool, GetPool(spec.pool));
    // Replicated objects are not striped; EC stripes default to small units,
    // so that 4 KiB writes touch one data chunk and larger ones fill stripes.
    v.stripe_unit = spec.stripe_unit.value_or(
        pool.policy.kind == Policy::Kind::kErasure
            ? std::min(kDefaultEcStripeUnit, spec.object_size)
            : spec.object_size);
    CVM_RETURN_IF_ERROR(ValidateVolume(v));
    // cvm.ko serves whole 4 KiB blocks (an EC device's logical block, every
    // device's physical one) and refuses other sizes at attach: refuse here.
    if (v.size % kVolumeBlockSize != 0) {
      return InvalidArgument(fmt::format(
          "volume size {} is not a multiple of 4 KiB, the block cvm devices "
          "serve",
          v.size));
    }
    const bool ec = pool.policy.kind == Policy::Kind::kErasure;
    const uint64_t shard = ec ? v.object_size / pool.policy.k : v.object_size;
    if (shard > kTargetExtentSize) {
      return InvalidArgument(fmt::format(
          "object size {} in pool '{}' makes object shards of {}: a target "
          "keeps at most {} per shard",
          FormatSize(v.object_size), pool.name, FormatSize(shard),
          FormatSize(kTargetExtentSize)));
    }
    CVM_ASSIGN_OR_RETURN(auto volumes, ListVolumes());
    for (const auto& other : volumes) {
      if (other.name == v.name) {
        return AlreadyExists(fmt::format("volume '{}' already exists", v.name));
      }
    }
    CVM_ASSIGN_OR_RETURN(std::string unplaceable, PoolPlacementProblem(pool));
    if (!unplaceable.empty()) {
      return Unavailable(fmt::format(
          "pool '{}' cannot be placed on the current topology ({}): add hosts "
          "or devices first",
          pool.name, unplaceable));
    }
    if (v.provisioning == Provisioning::kThick) {
      CVM_RETURN_IF_ERROR(CheckThickFits(v, pool, volumes));
    }
    v.pool_id = pool.id;
    KvBatch batch;
    CVM_ASSIGN_OR_RETURN(v.id, NextId(batch, "volume"));
    v.created = Now();
    batch.Put(Cf::kVolumes, EncodeIdKey(v.id), Encode(ToJson(v)));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return v;
  });
}

Result<Volume> MetadataStore::GetVolume(std::string_view name) {
  CVM_ASSIGN_OR_RETURN(auto volumes, ListVolumes());
  for (auto& v : volumes) {
    if (v.name == name) return std::move(v);
  }
  return NotFound(fmt::format("volume '{}' does not exist", Printable(name)));
}

Result<std::vector<Volume>> MetadataStore::ListVolumes() {
  return ScanAll(Cf::kVolumes, &DecodeVolume);
}

Status MetadataStore::DeleteVolume(std::string_view name) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(Volume v, GetVolume(name));
    CVM_ASSIGN_OR_RETURN(auto snapshots, ListSnapshots());
    std::vector<std::string> users;
    for (const auto& s : snapshots) {
      if (s.volume_id == v.id) users.push_back("'" + s.name + "'");
    }
    if (!users.empty()) {
      return InUse(
          fmt::format("volume '{}' still has snapshots {}; delete them first",
                      v.name, ListNames(users)));
    }
    if (!v.attached_host.empty()) {
      return InUse(
          fmt::format("volume '{}' is attached to host '{}'; detach it first",
                      v.name, v.attached_host));
    }
    KvBatch batch;
    batch.Delete(Cf::kVolumes, EncodeIdKey(v.id));
    return Commit(batch);
  });
}

// Changes one volume record in one transaction: `edit` checks `v` and
// changes it, returning false to leave the record as it is.
Result<Volume> MetadataStore::UpdateVolume(
    std::string_view name, const std::function<Result<bool>(Volume&)>& edit) {
  return Transact([&]() -> Result<Volume> {
    CVM_ASSIGN_OR_RETURN(Volume v, GetVolume(name));
    CVM_ASSIGN_OR_RETURN(bool changed, edit(v));
    if (!changed) return v;
    KvBatch batch;
    batch.Put(Cf::kVolumes, EncodeIdKey(v.id), Encode(ToJson(v)));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return v;
  });
}

Result<Volume> MetadataStore::AttachVolume(std::string_view name,
                                           std::string_view host) {
  CVM_RETURN_IF_ERROR(ValidateName("host", host));
  return UpdateVolume(name, [&](Volume& v) -> Result<bool> {
    if (!v.attached_host.empty() && v.attached_host != host) {
      return InUse(
          fmt::format("volume '{}' is attached to host '{}'; detach it there "
                      "first",
                      v.name, v.attached_host));
    }
    v.attached_host = std::string(host);
    ++v.attach_epoch;
    v.migrate_to.clear();
    return true;
  });
}

Result<Volume> MetadataStore::DetachVolume(std::string_view name,
                                           std::string_view expected_host) {
  return UpdateVolume(name, [&](Volume& v) -> Result<bool> {
    if (v.attached_host.empty()) {
      return InvalidArgument(
          fmt::format("volume '{}' is not attached", v.name));
    }
    if (!expected_host.empty() && v.attached_host != expected_host) {
      return InUse(fmt::format("volume '{}' is now attached to host '{}'",
                               v.name, v.attached_host));
    }
    v.attached_host.clear();
    v.migrate_to.clear();
    return true;
  });
}

Result<Volume> MetadataStore::ReattachVolume(std::string_view name,
                                             std::string_view host) {
  return UpdateVolume(name, [&](Volume& v) -> Result<bool> {
    if (v.attached_host != host) {
      return InvalidArgument(fmt::format(
          "volume '{}' is no longer attached to host '{}'", v.name, host));
    }
    // An epoch some kernel served may have requests of that attachment
    // still about: the new one gets its own.
    if (v.served_epoch < v.attach_epoch) return false;
    ++v.attach_epoch;
    return true;
  });
}

Status MetadataStore::MarkServed(std::string_view name, std::string_view host,
                                 uint64_t epoch) {
  return UpdateVolume(name,
                      [&](Volume& v) -> Result<bool> {
                        if (v.attached_host != host ||
                            v.attach_epoch != epoch ||
                            v.served_epoch == epoch) {
                          return false;
                        }
                        v.served_epoch = epoch;
                        return true;
                      })
      .status();
}

Status MetadataStore::RecordFenced(uint64_t volume_id, uint64_t host_id,
                                   uint64_t epoch) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(auto raw,
                         GetRaw(Cf::kVolumes, EncodeIdKey(volume_id)));
    if (!raw) return {};  // deleted meanwhile: nothing left to fence
    CVM_ASSIGN_OR_RETURN(Volume v, DecodeVolume(*raw));
    if (v.fenced[host_id] >= epoch) return {};
    v.fenced[host_id] = epoch;
    KvBatch batch;
    batch.Put(Cf::kVolumes, EncodeIdKey(v.id), Encode(ToJson(v)));
    return Commit(batch);
  });
}

Result<Volume> MetadataStore::RequestMigration(std::string_view name,
                                               std::string_view to) {
  return UpdateVolume(name, [&](Volume& v) -> Result<bool> {
    CVM_ASSIGN_OR_RETURN(Host h, GetHost(to));
    if (v.attached_host.empty()) {
      return InvalidArgument(
          fmt::format("volume '{}' is not attached (attach it with --host {})",
                      v.name, h.name));
    }
    if (v.attached_host == h.name) {
      return InvalidArgument(fmt::format(
          "volume '{}' is attached to host '{}' already", v.name, h.name));
    }
    if (!v.migrate_to.empty() && v.migrate_to != h.name) {
      return InUse(fmt::format("volume '{}' is moving to host '{}' already",
                               v.name, v.migrate_to));
    }
    v.migrate_to = h.name;
    v.migrate_error.clear();
    return true;
  });
}

Result<Volume> MetadataStore::HandOver(std::string_view name,
                                       std::string_view from,
                                       std::string_view to, bool requested) {
  return UpdateVolume(name, [&](Volume& v) -> Result<bool> {
    CVM_ASSIGN_OR_RETURN(Host h, GetHost(to));
    if (v.attached_host != from) {
      return InUse(fmt::format("volume '{}' is no longer attached to host '{}'",
                               v.name, from));
    }
    if (requested && v.migrate_to != h.name) {
      return InUse(
          fmt::format("the move of volume '{}' to host '{}' was withdrawn",
                      v.name, h.name));
    }
    v.attached_host = h.name;
    ++v.attach_epoch;  // the old host's requests are refused from now on
    v.migrate_to.clear();
    v.migrate_error.clear();
    return true;
  });
}

Status MetadataStore::RefuseMigration(std::string_view name,
                                      std::string_view from,
                                      std::string_view why) {
  return UpdateVolume(name,
                      [&](Volume& v) -> Result<bool> {
                        if (v.attached_host != from || v.migrate_to.empty()) {
                          return false;
                        }
                        v.migrate_to.clear();
                        v.migrate_error = std::string(why);
                        return true;
                      })
      .status();
}

// ---- snapshots ----

Result<Snapshot> MetadataStore::CreateSnapshot(std::string_view volume,
                                               std::string_view name) {
  CVM_RETURN_IF_ERROR(ValidateName("snapshot", name));
  return Transact([&]() -> Result<Snapshot> {
    CVM_ASSIGN_OR_RETURN(Volume v, GetVolume(volume));
    CVM_ASSIGN_OR_RETURN(auto snapshots, ListSnapshots());
    for (const auto& s : snapshots) {
      if (s.volume_id == v.id && s.name == name) {
        return AlreadyExists(fmt::format("snapshot '{}@{}' already exists",
                                         v.name, std::string(name)));
      }
    }
    KvBatch batch;
    Snapshot s;
    CVM_ASSIGN_OR_RETURN(s.id, NextId(batch, "snapshot"));
    s.volume_id = v.id;
    s.name = std::string(name);
    s.seq = v.snap_seq + 1;
    s.size = v.size;
    s.created = Now();
    v.snap_seq = s.seq;  // new writes must now preserve this snapshot's data
    batch.Put(Cf::kSnapshots, EncodeIdKey(s.id), Encode(ToJson(s)));
    batch.Put(Cf::kVolumes, EncodeIdKey(v.id), Encode(ToJson(v)));
    CVM_RETURN_IF_ERROR(Commit(batch));
    return s;
  });
}

Result<std::vector<Snapshot>> MetadataStore::ListSnapshots() {
  return ScanAll(Cf::kSnapshots, &DecodeSnapshot);
}

Status MetadataStore::DeleteSnapshot(std::string_view volume,
                                     std::string_view name) {
  return Transact([&]() -> Status {
    CVM_ASSIGN_OR_RETURN(Volume v, GetVolume(volume));
    CVM_ASSIGN_OR_RETURN(auto snapshots, ListSnapshots());
    for (const auto& s : snapshots) {
      if (s.volume_id == v.id && s.name == name) {
        KvBatch batch;
        batch.Delete(Cf::kSnapshots, EncodeIdKey(s.id));
        return Commit(batch);
      }
    }
    return NotFound(fmt::format("snapshot '{}@{}' does not exist", v.name,
                                Printable(name)));
  });
}

// ---- epochs and counts ----

Result<uint64_t> MetadataStore::CurrentEpoch() {
  return ReadCounter(kEpochKey);
}

Result<MapEpoch> MetadataStore::GetEpoch(uint64_t epoch) {
  CVM_ASSIGN_OR_RETURN(auto e, GetById(Cf::kMapEpochs, epoch, &DecodeMapEpoch));
  if (!e) return NotFound(fmt::format("map epoch {} does not exist", epoch));
  return std::move(*e);
}

Result<std::string> MetadataStore::GetMap(uint64_t epoch) {
  CVM_ASSIGN_OR_RETURN(MapEpoch e, GetEpoch(epoch));
  if (!e.problem.empty()) {
    return NotFound(
        fmt::format("map epoch {} cannot be served: {}", epoch, e.problem));
  }
  CVM_ASSIGN_OR_RETURN(auto blob, GetRaw(Cf::kMaps, EncodeIdKey(epoch)));
  if (!blob) {
    return Corruption(fmt::format("map epoch {}: sealed map missing", epoch));
  }
  if (blob->size() != e.map_size ||
      cvm_map_blob_crc(blob->data(), blob->size()) != e.map_crc) {
    return Corruption(fmt::format(
        "map epoch {}: sealed map does not match its record (size {}, "
        "expected {})",
        epoch, blob->size(), e.map_size));
  }
  return std::move(*blob);
}

Result<MetadataStore::MapSnapshot> MetadataStore::ReadMapSnapshot() {
  return Transact([&]() -> Result<MapSnapshot> {
    MapSnapshot snap;
    CVM_ASSIGN_OR_RETURN(snap.epoch, ReadCounter(kEpochKey));
    if (snap.epoch == 0) return snap;
    CVM_ASSIGN_OR_RETURN(snap.blob, GetMap(snap.epoch));
    CVM_ASSIGN_OR_RETURN(snap.hosts, ListHosts());
    CVM_ASSIGN_OR_RETURN(snap.devices, ListDevices());
    return snap;
  });
}

Result<std::vector<MapEpoch>> MetadataStore::EpochHistory(size_t limit) {
  CVM_ASSIGN_OR_RETURN(auto all, ScanAll(Cf::kMapEpochs, &DecodeMapEpoch));
  if (limit != 0 && all.size() > limit) {
    all.erase(all.begin(), all.end() - static_cast<ptrdiff_t>(limit));
  }
  return all;
}

Result<uint64_t> MetadataStore::PruneEpochs(uint64_t keep,
                                            int64_t leader_lease) {
  // etcd takes at most 128 operations per transaction: up to 3 per epoch
  // here (a map in pieces adds a range delete), and the change counter.
  constexpr size_t kMaxPerCommit = 40;
  return Transact([&]() -> Result<uint64_t> {
    CVM_ASSIGN_OR_RETURN(uint64_t current, CurrentEpoch());
    const uint64_t oldest_kept = current > keep ? current - keep + 1 : 1;
    KvBatch batch;
    batch.RequireLeaderLease(leader_lease);
    uint64_t pruned = 0;
    CVM_RETURN_IF_ERROR(ScanRaw(
        Cf::kMapEpochs, [&](std::string_view key, std::string_view) -> Status {
          CVM_ASSIGN_OR_RETURN(uint64_t epoch,
                               DecodeIdKey(key, Cf::kMapEpochs));
          if (epoch >= oldest_kept || pruned == kMaxPerCommit) return {};
          batch.Delete(Cf::kMapEpochs, key);
          batch.Delete(Cf::kMaps, key);
          ++pruned;
          return {};
        }));
    if (pruned == 0) return uint64_t{0};
    CVM_RETURN_IF_ERROR(Commit(batch));
    return pruned;
  });
}

Result<Counts> MetadataStore::Count() {
  Counts c;
  CVM_ASSIGN_OR_RETURN(c.hosts, CountKeys(Cf::kHosts));
  CVM_ASSIGN_OR_RETURN(c.devices, CountKeys(Cf::kDevices));
  CVM_ASSIGN_OR_RETURN(c.pools, CountKeys(Cf::kPools));
  CVM_ASSIGN_OR_RETURN(c.volumes, CountKeys(Cf::kVolumes));
  CVM_ASSIGN_OR_RETURN(c.snapshots, CountKeys(Cf::kSnapshots));
  return c;
}

}  // namespace cvm
