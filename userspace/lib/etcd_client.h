#pragma once

// A small etcd v3 client over its JSON gateway (POST /v3/...), with
// cpp-httplib: what the cluster store (etcd_kv.cc) and node presence
// (cluster_presence.cc) share. Requests go to one endpoint; one that cannot
// be reached, or answers "unavailable" (a member without a leader), passes
// them to the next, so the caller follows etcd's failover.

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace httplib {
class Client;
}

namespace cvm {

// "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]"; PREFIX defaults to "/cvm".
struct EtcdUri {
  std::vector<std::string> endpoints;  // "HOST:PORT"
  std::string prefix;
};
Result<EtcdUri> ParseEtcdUri(const std::string& uri);

// The gateway carries keys and values as base64 protobuf bytes, and int64
// fields as JSON strings.
std::string EtcdB64(std::string_view in);
Result<std::string> EtcdUnb64(std::string_view in);
int64_t EtcdInt(const nlohmann::json& j, const char* name);
// The key just past every key starting with `prefix` (a range_end).
std::string EtcdPrefixEnd(std::string prefix);

class EtcdClient {
 public:
  explicit EtcdClient(const std::vector<std::string>& endpoints);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POSTs `body` to `path` ("/v3/kv/range"); kUnavailable once every
  // endpoint failed, kConflict when etcd says a revision was compacted.
  // A request that is not `idempotent` (a transaction) goes to the next
  // endpoint only when it surely did not reach etcd (no connection, a
  // member without a leader); once it may have been applied (no answer,
  // a timeout) it fails with kUnavailable saying the outcome is unknown.
  Result<nlohmann::json> Call(const std::string& path,
                              const nlohmann::json& body,
                              bool idempotent = true);
  // The same to one endpoint only, with a short timeout (member health).
  Result<nlohmann::json> CallOne(size_t endpoint, const std::string& path,
                                 const nlohmann::json& body);

  size_t size() const { return endpoints_.size(); }
  std::string EndpointName(size_t i) const;
  std::string Describe() const;  // "HOST:PORT,HOST:PORT"

 private:
  struct Endpoint;
  Result<nlohmann::json> Post(Endpoint& ep, const std::string& path,
                              const std::string& text, bool idempotent,
                              bool* try_next);

  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  size_t current_ = 0;
  std::mutex mutex_;
};

}  // namespace cvm
