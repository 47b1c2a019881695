#pragma once

// Which cvmds are up, and which one leads, on etcd.
//
// Each cvmd holds an etcd lease of `ttl` and keeps it alive. Its node key
// PREFIX/nodes/<host> lives on that lease, so a node that stops (killed,
// paused, cut off) disappears one TTL later. The leader key PREFIX/leader
// is created, on its lease, by the first cvmd that asks while there is
// none; no other can take it while that lease lives. The leader's writes
// require its lease to still hold the key (KvBatch::RequireLeaderLease), so
// a leader paused past its lease cannot write once another has taken over;
// it also no longer calls itself leader once a TTL has passed without a
// renewal it saw succeed.
//
// With RocksDB there is one cvmd: it is the only node and the leader
// (LocalPresence).

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "etcd_client.h"
#include "periodic.h"
#include "status.h"

namespace cvm {

struct PresenceOptions {
  std::chrono::seconds ttl{10};
  nlohmann::json node_info;  // what PREFIX/nodes/<host> says besides "host"
  // Called about every ttl/3 on the thread that keeps the lease, while
  // this cvmd leads, with its lease (the leader's periodic work).
  std::function<void(int64_t lease)> leader_tick;
  // The leader compacts etcd's history to what it was one interval ago,
  // then defragments each member; 0: never.
  std::chrono::seconds compact_every{3600};
};

class Presence {
 public:
  virtual ~Presence() = default;
  virtual bool IsLeader() const = 0;
  // {"leader": host or "", "is_leader": bool, "nodes": {host: info},
  //  "lease_ttl": s, and with `members` "etcd_members": [...] (etcd only:
  //  a status request to every member)}
  virtual nlohmann::json View(bool members = true) = 0;
  // Adds `fields` to what this node's key says (the map epoch its cvm.ko
  // holds, for `--wait`).
  virtual Status Publish(const nlohmann::json& fields) = 0;
};

class LocalPresence final : public Presence {
 public:
  LocalPresence(std::string host, nlohmann::json info)
      : host_(std::move(host)), info_(std::move(info)) {}
  bool IsLeader() const override { return true; }
  nlohmann::json View(bool members = true) override;
  Status Publish(const nlohmann::json& fields) override;

 private:
  std::string host_;
  std::mutex mutex_;
  nlohmann::json info_;
};

class EtcdPresence final : public Presence {
 public:
  EtcdPresence(const EtcdUri& uri, std::string host, PresenceOptions options);
  ~EtcdPresence() override;  // Stop()

  // Takes a lease, registers the node, campaigns once, then keeps it all
  // up on a thread. Fails when etcd cannot grant a lease.
  Status Start();
  // Revokes the lease: the node key and any leadership go at once.
  void Stop();

  bool IsLeader() const override;
  nlohmann::json View(bool members = true) override;
  Status Publish(const nlohmann::json& fields) override;
  int64_t lease() const { return lease_; }

 private:
  Status Grant();
  Status Register();
  Status Campaign();
  Status KeepAlive();
  void CompactIfDue();
  void Renew();       // keeps the lease and the leader key
  void LeaderWork();  // the leader's, apart so it never delays a renewal

  EtcdClient etcd_;
  std::string prefix_;
  std::string host_;
  PresenceOptions options_;
  std::mutex info_mutex_;  // options_.node_info: Publish and Register
  std::atomic<int64_t> lease_{0};
  std::atomic<bool> leader_{false};
  std::atomic<int64_t> renewed_ms_{0};  // steady clock of the last renewal
  int64_t compact_due_ms_ = 0;
  int64_t compact_mark_ = 0;  // the revision the next compaction goes to
  bool stopped_ = false;
  Periodic renew_thread_;
  Periodic leader_thread_;
};

}  // namespace cvm
