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

// TLS to etcd, with this node's client certificate (etcd's
// --client-cert-auth): the server's certificate is checked against `ca`
// (empty: the system's CAs) and its name or IP address.
struct EtcdTls {
  bool enabled = false;
  std::string ca, cert, key;  // PEM files
};

// "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]", or over TLS
// "etcds://HOST:PORT[,...][/PREFIX]?cert=FILE&key=FILE[&ca=FILE]"; PREFIX
// defaults to "/cvm".
struct EtcdUri {
  std::vector<std::string> endpoints;  // "HOST:PORT"
  std::string prefix;
  EtcdTls tls;
};
Result<EtcdUri> ParseEtcdUri(const std::string& uri);
// Whether `location` names an etcd store (etcd:// or etcds://).
bool IsEtcdUri(std::string_view location);

// The gateway carries keys and values as base64 protobuf bytes, and int64
// fields as JSON strings.
std::string EtcdB64(std::string_view in);
Result<std::string> EtcdUnb64(std::string_view in);
int64_t EtcdInt(const nlohmann::json& j, const char* name);
// The key just past every key starting with `prefix` (a range_end).
std::string EtcdPrefixEnd(std::string prefix);

class EtcdClient {
 public:
  explicit EtcdClient(const std::vector<std::string>& endpoints,
                      EtcdTls tls = {});
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
  bool tls() const { return tls_.enabled; }

 private:
  struct Endpoint;
  Result<nlohmann::json> Post(Endpoint& ep, const std::string& path,
                              const std::string& text, bool idempotent,
                              bool* try_next);

  // A client for `ep`, over TLS when configured.
  std::unique_ptr<httplib::Client> MakeClient(const Endpoint& ep) const;

  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  EtcdTls tls_;
  size_t current_ = 0;
  std::mutex mutex_;
};

}  // namespace cvm
