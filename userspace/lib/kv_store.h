#pragma once

// What the metadata store needs of a key-value store, and its two
// implementations: embedded RocksDB (one process, the single-node default)
// and etcd (every cvmd of a cluster, over etcd's v3 JSON gateway).
//
// Keys live in named families (Cf). A change is one atomic KvBatch. Reads
// and the commit of one change are bracketed by Begin/End: every read
// between them sees one state of the store, and Commit succeeds only if no
// other writer committed since Begin; otherwise it returns kConflict and
// the caller runs its checks again on the new state. RocksDB has one
// writer (its lock file), so it never conflicts.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace cvm {

// Key families, in the order RocksDB opens them.
enum class Cf {
  kMeta,
  kHosts,
  kDevices,
  kPools,
  kVolumes,
  kSnapshots,
  kMapEpochs,
  kMaps,       // epoch -> the sealed binary map (kernel/common map codec)
  kPaths,      // device id -> PathState: what cvm.ko last said of its path
  kHostKeys,   // device id, host id -> HostKeyRow (host_keys.h)
  kApiTokens,  // token id -> ApiToken, the secret's digest (api_tokens.h)
  kSealKeys,   // host id -> its sealing public key (sealed_box.h)
};
inline constexpr Cf kAllCfs[] = {Cf::kMeta,      Cf::kHosts,     Cf::kDevices,
                                 Cf::kPools,     Cf::kVolumes,   Cf::kSnapshots,
                                 Cf::kMapEpochs, Cf::kMaps,      Cf::kPaths,
                                 Cf::kHostKeys,  Cf::kApiTokens, Cf::kSealKeys};
// Every family is in kAllCfs (a missing one is never opened).
static_assert(std::size(kAllCfs) == static_cast<size_t>(Cf::kSealKeys) + 1);
std::string_view CfName(Cf cf);

class KvBatch {
 public:
  struct Op {
    Cf cf;
    std::string key;
    std::optional<std::string> value;  // none: delete
  };
  // One op per key, the last wins: etcd refuses a transaction that names
  // a key twice (a new host with a new rack and row bumps one counter
  // twice).
  void Put(Cf cf, std::string_view key, std::string_view value) {
    Set(cf, key, std::string(value));
  }
  void Delete(Cf cf, std::string_view key) { Set(cf, key, std::nullopt); }
  const std::vector<Op>& ops() const { return ops_; }

  // Commit only while etcd lease `lease` holds the cluster's leader key
  // (cluster_presence.h): a leader paused past its lease cannot write.
  // RocksDB has one cvmd, always the leader, and ignores it.
  void RequireLeaderLease(int64_t lease) { leader_lease_ = lease; }
  int64_t leader_lease() const { return leader_lease_; }

 private:
  void Set(Cf cf, std::string_view key, std::optional<std::string> value) {
    for (auto& op : ops_) {
      if (op.cf == cf && op.key == key) {
        op.value = std::move(value);
        return;
      }
    }
    ops_.push_back({cf, std::string(key), std::move(value)});
  }

  std::vector<Op> ops_;
  int64_t leader_lease_ = 0;
};

using KvScanFn = std::function<Status(std::string_view, std::string_view)>;

class KvStore {
 public:
  virtual ~KvStore() = default;

  // "rocksdb /var/lib/cvm/db", "etcd http://10.0.0.1:2379,... /cvm".
  virtual std::string Describe() const = 0;

  virtual Status Begin() = 0;
  virtual void End() = 0;
  virtual Result<std::optional<std::string>> Get(Cf cf,
                                                 std::string_view key) = 0;
  // Calls `fn(key, value)` for every key of `cf` in key order; stops at the
  // first error and returns it.
  virtual Status Scan(Cf cf, const KvScanFn& fn) = 0;
  virtual Result<uint64_t> Count(Cf cf) = 0;
  // `sync`: durable before it returns (etcd always is).
  virtual Status Commit(const KvBatch& batch, bool sync) = 0;

  // A mark that moves with every commit, by any writer: the store changed
  // when it differs from the last one read (StoreFollower polls it).
  virtual Result<int64_t> ChangeMark() = 0;

  // Leader work: deletes the pieces of large values that no record names
  // (a commit whose outcome was unknown, a cvmd stopped between writing
  // its pieces and its commit), once they were there at the previous
  // sweep already; returns how many values' pieces went. RocksDB has none.
  virtual Result<uint64_t> SweepPieces() { return uint64_t{0}; }
};

// Opens `location`: "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" (PREFIX
// defaults to "cvm"), or else a RocksDB directory (created if missing).
Result<std::unique_ptr<KvStore>> OpenKvStore(const std::string& location);

Result<std::unique_ptr<KvStore>> OpenRocksKv(const std::string& dir);
Result<std::unique_ptr<KvStore>> OpenEtcdKv(const std::string& uri);

}  // namespace cvm
