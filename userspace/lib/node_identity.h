#pragma once

// A host joins the cluster once, with a one-time token, never by name
// alone. `cvmadm host add NAME` (on any node) stores the SHA-256 of a fresh
// random token and prints the token, "cvmjoin:NAME:SECRET". On host NAME,
// `cvmadm join TOKEN` gives it to the local cvmd, which checks it against
// the store in one transaction that also records the SHA-256 of a new node
// key it has just written to its --node-key file (0600): the token is then
// spent, and from then on this cvmd (and only a cvmd holding that key) is
// host NAME after a restart. Until it has joined, a cvmd serves its local
// API but applies none of its host's part of the store (no targets, maps
// or attachments). `cvmadm host token NAME` issues a new token and voids
// the old key (a reinstalled node; a cvmd running with the old key keeps
// acting until it restarts: the join state is read at start). With RocksDB
// there is one node: always joined. Authenticating hosts to targets is the
// security issue's work; this makes sure the cvmd acting for a host is the one
// the admin let in.

#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "metadata_store.h"
#include "status.h"

namespace cvm {

struct JoinToken {
  std::string host;
  std::string secret;  // 64 hex digits
};
std::string FormatJoinToken(const JoinToken& t);
Result<JoinToken> ParseJoinToken(std::string_view text);
// 32 random bytes as hex (getrandom).
Result<std::string> RandomSecret();
std::string Sha256Hex(std::string_view data);

class NodeIdentity {
 public:
  // `cluster`: over etcd (with RocksDB the node is always joined).
  NodeIdentity(MetadataStore& store, std::string host, std::string key_path,
               bool cluster);

  // At start: joined when the host record names the key in key_path (or
  // predates joining). Returns why not, for the log, when not joined.
  std::string Check();
  bool joined() const { return joined_; }
  bool cluster() const { return cluster_; }
  const std::string& host() const { return host_; }

  // Joins with `token` (cvmadm join): writes a new node key, then spends
  // the token recording the key's digest.
  Result<nlohmann::json> Join(std::string_view token);
  // A new token for `host` (host add, host token): its old key is void.
  Result<std::string> IssueToken(std::string_view host);

 private:
  MetadataStore& store_;
  std::string host_;
  std::string key_path_;
  bool cluster_;
  std::mutex mutex_;
  std::atomic<bool> joined_{false};
};

}  // namespace cvm
