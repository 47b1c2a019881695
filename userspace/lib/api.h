#pragma once

// The API: ops named "noun.verb" taking a JSON object of arguments and
// returning JSON data or a Status. It knows nothing about sockets, so the unix
// socket server (api_server.h) and the HTTPS server (https_server.h) are thin
// wrappers around Api::Call / Api::HandleRequest.
//
// Wire shape (one JSON object per request and per response):
//   request:  {"op": "volume.create", "args": {...}, "id": <optional>}
//   response: {"ok": true, "data": ...}
//             {"ok": false, "error": {"code": "not_found", "message": "..."}}
// "id", when given (string or number), is echoed back.

#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "api_tokens.h"
#include "json_fields.h"
#include "kernel_sync.h"
#include "metadata_store.h"
#include "status.h"

namespace cvm {

class Presence;
class NodeIdentity;

inline constexpr size_t kMaxRequestBytes = 1 << 20;
inline constexpr int kMaxRequestDepth = 32;

class Api {
 public:
  explicit Api(MetadataStore& store);

  // Extra fields merged into the "status" op's answer (pid, socket, ...).
  void SetStatusInfo(std::function<nlohmann::json()> info) {
    status_info_ = std::move(info);
  }

  // The kernel side: volume.attach/detach and target.* ops need it, and
  // every topology change pushes the new map through it (best effort).
  // Without it those ops are kUnavailable.
  void SetKernelSync(KernelSync* sync) { sync_ = sync; }

  // Which cvmds are up and which leads (cluster_presence.h): "status"
  // shows it, "host.list" marks each host up or down and the leader.
  void SetPresence(Presence* presence) { presence_ = presence; }
  // This node's identity in a cluster: host add issues join tokens.
  void SetNodeIdentity(NodeIdentity* identity) { identity_ = identity; }

  // Runs one op. Never throws; bad args are kInvalidArgument, unknown ops
  // kUnknownOp. Thread-safe: calls run one at a time.
  Result<nlohmann::json> Call(std::string_view op, const nlohmann::json& args);

  // Parses one request text, runs it and returns the response object.
  nlohmann::json HandleRequest(std::string_view request_text);

  // Every op name, sorted.
  std::vector<std::string> Ops() const;

 private:
  struct OpEntry;
  static const std::vector<OpEntry>& Table();

  Result<nlohmann::json> DaemonStatus(JsonFields& a);
  Result<nlohmann::json> ListOps(JsonFields& a);
  Result<nlohmann::json> HostAdd(JsonFields& a);
  Result<nlohmann::json> HostList(JsonFields& a);
  Result<nlohmann::json> HostGet(JsonFields& a);
  Result<nlohmann::json> HostRemove(JsonFields& a);
  Result<nlohmann::json> DeviceAdd(JsonFields& a);
  Result<nlohmann::json> DeviceList(JsonFields& a);
  Result<nlohmann::json> ClusterDf(JsonFields& a);
  std::map<uint64_t, TargetDeviceUsage> LocalUsage();
  Result<nlohmann::json> DeviceGet(JsonFields& a);
  Result<nlohmann::json> DeviceRemove(JsonFields& a);
  Result<nlohmann::json> DeviceSetState(JsonFields& a);
  Result<nlohmann::json> HostSetIn(JsonFields& a);
  Result<nlohmann::json> ConfigGet(JsonFields& a);
  Result<nlohmann::json> ConfigSet(JsonFields& a);
  Result<nlohmann::json> PoolCreate(JsonFields& a);
  Result<nlohmann::json> PoolList(JsonFields& a);
  Result<nlohmann::json> PoolGet(JsonFields& a);
  Result<nlohmann::json> PoolDelete(JsonFields& a);
  Result<nlohmann::json> PoolSet(JsonFields& a);
  Result<nlohmann::json> VolumeCreate(JsonFields& a);
  Result<nlohmann::json> VolumeList(JsonFields& a);
  Result<nlohmann::json> VolumeGet(JsonFields& a);
  Result<nlohmann::json> VolumeDelete(JsonFields& a);
  Result<nlohmann::json> SnapshotCreate(JsonFields& a);
  Result<nlohmann::json> SnapshotList(JsonFields& a);
  Result<nlohmann::json> SnapshotDelete(JsonFields& a);
  Result<nlohmann::json> MapEpochOp(JsonFields& a);
  Result<nlohmann::json> MapShow(JsonFields& a);
  Result<nlohmann::json> RecoveryStatus(JsonFields& a);
  Result<nlohmann::json> MapHistory(JsonFields& a);
  Result<nlohmann::json> VolumeAttach(JsonFields& a);
  Result<nlohmann::json> VolumeDetach(JsonFields& a);
  Result<nlohmann::json> VolumeMigrate(JsonFields& a);
  Result<nlohmann::json> NodeJoin(JsonFields& a);
  Result<nlohmann::json> MapWait(JsonFields& a);
  Result<nlohmann::json> HostToken(JsonFields& a);
  Result<nlohmann::json> HostRotateKey(JsonFields& a);
  Result<nlohmann::json> TokenCreate(JsonFields& a);
  Result<nlohmann::json> TokenList(JsonFields& a);
  Result<nlohmann::json> TokenRevoke(JsonFields& a);
  Result<nlohmann::json> Metrics(JsonFields& a);
  Result<nlohmann::json> TargetListen(JsonFields& a);
  Result<nlohmann::json> TargetUnlisten(JsonFields& a);
  Result<nlohmann::json> TargetDeviceAdd(JsonFields& a);
  Result<nlohmann::json> TargetDeviceRemove(JsonFields& a);
  Result<nlohmann::json> KernelReconcile(JsonFields& a);
  Result<KernelSync*> Sync();

  // Record JSON with references resolved to names for readers.
  Result<nlohmann::json> DeviceJson(const Device& d);
  Result<nlohmann::json> VolumeJson(const Volume& v);

  MetadataStore& store_;
  TokenAuthority tokens_;
  std::mutex call_mutex_;
  std::function<nlohmann::json()> status_info_;
  KernelSync* sync_ = nullptr;
  Presence* presence_ = nullptr;
  NodeIdentity* identity_ = nullptr;
};

// Parses a request's (or an HTTPS body's) JSON object, refusing what is too
// large, nested too deep, malformed or not an object (kBadRequest).
Result<nlohmann::json> ParseRequestJson(std::string_view text);

nlohmann::json OkResponse(nlohmann::json data);
nlohmann::json ErrorResponse(const Status& status);

}  // namespace cvm
