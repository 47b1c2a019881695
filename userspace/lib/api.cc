#include "api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <map>
#include <thread>

#include "cluster_presence.h"
#include "log.h"
#include "metrics.h"
#include "node_identity.h"
#include "recovery_progress.h"
#include "version.h"

namespace cvm {

using nlohmann::json;

struct Api::OpEntry {
  std::string_view name;
  Result<json> (Api::*handler)(JsonFields&);
  // Runs beside other calls, outside call_mutex_: it may wait long and
  // touches only thread-safe state.
  bool concurrent = false;
};

const std::vector<Api::OpEntry>& Api::Table() {
  static const std::vector<OpEntry> table = {
      {"status", &Api::DaemonStatus},
      {"ops", &Api::ListOps},
      {"host.add", &Api::HostAdd},
      {"host.list", &Api::HostList},
      {"host.get", &Api::HostGet},
      {"host.remove", &Api::HostRemove},
      {"device.add", &Api::DeviceAdd},
      {"device.list", &Api::DeviceList},
      {"cluster.df", &Api::ClusterDf},
      {"device.get", &Api::DeviceGet},
      {"device.remove", &Api::DeviceRemove},
      {"device.set_state", &Api::DeviceSetState},
      {"host.set_in", &Api::HostSetIn},
      {"config.get", &Api::ConfigGet},
      {"config.set", &Api::ConfigSet},
      {"pool.create", &Api::PoolCreate},
      {"pool.list", &Api::PoolList},
      {"pool.get", &Api::PoolGet},
      {"pool.delete", &Api::PoolDelete},
      {"pool.set", &Api::PoolSet},
      {"volume.create", &Api::VolumeCreate},
      {"volume.list", &Api::VolumeList},
      {"volume.get", &Api::VolumeGet},
      {"volume.delete", &Api::VolumeDelete},
      {"snapshot.create", &Api::SnapshotCreate},
      {"snapshot.list", &Api::SnapshotList},
      {"snapshot.delete", &Api::SnapshotDelete},
      {"map.epoch", &Api::MapEpochOp},
      {"map.history", &Api::MapHistory},
      {"map.show", &Api::MapShow},
      {"recovery.status", &Api::RecoveryStatus},
      {"volume.attach", &Api::VolumeAttach},
      {"volume.detach", &Api::VolumeDetach},
      {"volume.migrate", &Api::VolumeMigrate},
      {"node.join", &Api::NodeJoin},
      {"map.wait", &Api::MapWait, /*concurrent=*/true},
      {"host.token", &Api::HostToken},
      {"host.rotate_key", &Api::HostRotateKey},
      {"token.create", &Api::TokenCreate},
      {"token.list", &Api::TokenList},
      {"token.revoke", &Api::TokenRevoke},
      {"metrics", &Api::Metrics},
      {"target.listen", &Api::TargetListen},
      {"target.unlisten", &Api::TargetUnlisten},
      {"target.device.add", &Api::TargetDeviceAdd},
      {"target.device.remove", &Api::TargetDeviceRemove},
      {"kernel.reconcile", &Api::KernelReconcile},
  };
  return table;
}

Api::Api(MetadataStore& store) : store_(store), tokens_(store) {}

std::vector<std::string> Api::Ops() const {
  std::vector<std::string> names;
  for (const auto& e : Table()) names.emplace_back(e.name);
  std::sort(names.begin(), names.end());
  return names;
}

Result<json> Api::Call(std::string_view op, const json& args) {
  for (const auto& entry : Table()) {
    if (entry.name != op) continue;
    // The local socket and the HTTPS server call from their own threads;
    // the handlers assume one call at a time, but for concurrent ones.
    std::unique_lock lock(call_mutex_, std::defer_lock);
    if (!entry.concurrent) lock.lock();
    JsonFields fields(args, "argument", Code::kInvalidArgument);
    CVM_RETURN_IF_ERROR(fields.status().WithContext("args"));
    // The boundary: a handler bug must cost one request, not the daemon.
    Result<json> result = Internal("unreached");
    try {
      result = (this->*entry.handler)(fields);
    } catch (const std::exception& e) {
      return Internal(fmt::format("{} failed: {}", op, e.what()));
    }
    // A topology change cut a new epoch (in a cluster: the leader cuts
    // it soon): the kernel gets the newest now.
    static constexpr std::string_view kTopologyOps[] = {
        "host.add",      "host.remove",      "device.add",
        "device.remove", "device.set_state", "host.set_in",
        "pool.create",   "pool.delete",      "pool.set"};
    if (result.ok() && sync_ != nullptr &&
        std::find(std::begin(kTopologyOps), std::end(kTopologyOps), op) !=
            std::end(kTopologyOps)) {
      sync_->PushMapBestEffort(op);
    }
    // The change names the epoch that carries it (or a later one, which
    // carries it too): `cvmadm --wait` waits for it on every node.
    if (result.ok() && result->is_object() &&
        std::find(std::begin(kTopologyOps), std::end(kTopologyOps), op) !=
            std::end(kTopologyOps)) {
      if (auto epoch = store_.CarryingEpoch(); epoch.ok()) {
        (*result)["map_epoch"] = *epoch;
      }
    }
    return result;
  }
  return Status(
      Code::kUnknownOp,
      fmt::format("unknown op '{}' (the 'ops' op lists them)", Printable(op)));
}

namespace {

// Deeply nested input could exhaust the stack of a recursive consumer; refuse
// it before parsing. Brackets inside strings do not count.
bool TooDeep(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxRequestDepth) return true;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return false;
}

// Changes are logged (the daemon's audit trail); reads only at debug level.
void LogRequest(std::string_view op, const Status& status) {
  if (ApiOpReadOnly(op)) {
    LogDebug("{}: {}", op, status.ToString());
  } else {
    LogInfo("{}: {}", Printable(op), status.ToString());
  }
}

}  // namespace

json OkResponse(json data) { return {{"ok", true}, {"data", std::move(data)}}; }

json ErrorResponse(const Status& status) {
  return {{"ok", false},
          {"error",
           {{"code", CodeName(status.code())}, {"message", status.message()}}}};
}

Result<json> ParseRequestJson(std::string_view text) {
  if (text.size() > kMaxRequestBytes) {
    return BadRequest(
        fmt::format("request of {} bytes exceeds the {}-byte limit",
                    text.size(), kMaxRequestBytes));
  }
  if (TooDeep(text)) {
    return BadRequest(
        fmt::format("request nests deeper than {} levels", kMaxRequestDepth));
  }
  json request;
  try {
    request = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    return BadRequest(fmt::format("malformed JSON: {}", e.what()));
  }
  if (!request.is_object()) {
    return BadRequest(fmt::format("request must be a JSON object, got {}",
                                  request.type_name()));
  }
  return request;
}

json Api::HandleRequest(std::string_view text) {
  Result<json> parsed = ParseRequestJson(text);
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  const json& request = *parsed;
  JsonFields fields(request, "request field", Code::kBadRequest);
  fields.Expect({"op", "args", "id"});
  const std::string op = fields.String("op");
  const json* id = fields.Raw("id");
  if (fields.ok() && id != nullptr && !id->is_string() && !id->is_number()) {
    return ErrorResponse(
        BadRequest("request field 'id' must be a string or number"));
  }
  json response;
  if (!fields.ok()) {
    response = ErrorResponse(fields.status());
  } else {
    const json* args = fields.Raw("args");
    static const json kNoArgs = json::object();
    Result<json> result = Call(op, args ? *args : kNoArgs);
    LogRequest(op, result.status());
    response = result.ok() ? OkResponse(std::move(result).value())
                           : ErrorResponse(result.status());
  }
  if (id != nullptr && (id->is_string() || id->is_number()))
    response["id"] = *id;
  return response;
}

// ---- status ----

// Answers even when the store fails: a running cvmd whose store answers
// with errors is not an unreachable one, and says why ("store_error").
Result<json> Api::DaemonStatus(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  json out = {{"version", Version()}, {"db", store_.location()}};
  const auto from_store = [this]() -> Result<json> {
    CVM_ASSIGN_OR_RETURN(uint64_t epoch, store_.CurrentEpoch());
    CVM_ASSIGN_OR_RETURN(Counts c, store_.Count());
    CVM_ASSIGN_OR_RETURN(auto paths, store_.ListPathStates());
    json path_list = json::array();
    for (const PathState& p : paths) path_list.push_back(ToJson(p));
    return json{{"map_epoch", epoch},
                {"counts",
                 {{"hosts", c.hosts},
                  {"devices", c.devices},
                  {"pools", c.pools},
                  {"volumes", c.volumes},
                  {"snapshots", c.snapshots}}},
                {"path_states", std::move(path_list)}};
  };
  if (Result<json> stored = from_store(); stored.ok()) {
    out.update(*stored);
  } else {
    out["store_error"] = {{"code", CodeName(stored.status().code())},
                          {"message", stored.status().message()}};
  }
  if (status_info_) out.update(status_info_());
  if (presence_) out["cluster"] = presence_->View();
  return out;
}

Result<json> Api::ListOps(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  return json(Ops());
}

// ---- hosts ----

namespace {

// A host as the API shows it: whether it joined, never the digests.
json HostView(const Host& h, bool cluster) {
  json j = ToJson(h);
  j.erase("join_hash");
  j.erase("key_hash");
  if (cluster) j["joined"] = h.join_hash.empty() && !h.key_hash.empty();
  return j;
}

}  // namespace

// In a cluster a new host gets a one-time join token (node_identity.h);
// this node's own host joins at once.
Result<json> Api::HostAdd(JsonFields& a) {
  a.Expect({"name", "addresses", "transport", "rack", "row"});
  Host h;
  h.name = a.String("name");
  h.addresses = a.StringList("addresses");
  const std::string transport = a.OptString("transport").value_or("tcp");
  h.rack = a.OptString("rack").value_or("");
  h.row = a.OptString("row").value_or("");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(h.transport, ParseTransport(transport));
  const bool cluster = identity_ != nullptr && identity_->cluster();
  std::string secret;
  if (cluster) {
    CVM_ASSIGN_OR_RETURN(secret, RandomSecret());
    h.join_hash = Sha256Hex(secret);
  }
  CVM_ASSIGN_OR_RETURN(Host added, store_.AddHost(std::move(h)));
  json out = HostView(added, cluster);
  if (!cluster) return out;
  const std::string token = FormatJoinToken({added.name, secret});
  if (added.name == identity_->host()) {
    CVM_RETURN_IF_ERROR(identity_->Join(token).status().WithContext(fmt::format(
        "host '{}' added, but this node did not join as it", added.name)));
    out["joined"] = true;
  } else {
    out["join_token"] = token;
  }
  return out;
}

// A new join token for a host (a reinstalled node); its old key is void.
Result<json> Api::HostToken(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  if (identity_ == nullptr || !identity_->cluster()) {
    return InvalidArgument(
        "join tokens need the cluster store (cvmd --store etcd://...)");
  }
  CVM_ASSIGN_OR_RETURN(std::string token, identity_->IssueToken(name));
  return json{{"host", name}, {"join_token", token}};
}

// Waits until every node whose cvm.ko holds a map (it publishes its epoch
// in its presence key) holds `epoch` or a newer one. Runs outside the
// call mutex (Api::Call), so it touches nothing but presence_.
constexpr uint64_t kMaxMapWaitMs = 120000;
Result<json> Api::MapWait(JsonFields& a) {
  a.Expect({"epoch", "timeout_ms"});
  const uint64_t epoch = a.U64("epoch");
  const uint64_t timeout_ms = a.OptU64("timeout_ms").value_or(30000);
  CVM_RETURN_IF_ERROR(a.status());
  if (timeout_ms > kMaxMapWaitMs)
    return InvalidArgument(
        fmt::format("argument 'timeout_ms' must be at most {}", kMaxMapWaitMs));
  if (presence_ == nullptr) return Unavailable("no presence to wait on");
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    const json view = presence_->View(/*members=*/false);
    json nodes = json::object();
    std::vector<std::string> behind;
    const json all = view.value("nodes", json::object());
    for (const auto& [host, info] : all.items()) {
      if (!info.contains("map_epoch")) continue;  // no cvm.ko there
      const uint64_t e = info.value("map_epoch", uint64_t{0});
      nodes[host] = e;
      if (e < epoch) behind.push_back(fmt::format("{} (epoch {})", host, e));
    }
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start)
                          .count();
    if (!view.contains("error") && behind.empty()) {
      return json{{"epoch", epoch}, {"nodes", nodes}, {"ms", ms}};
    }
    if (ms >= static_cast<double>(timeout_ms)) {
      return Unavailable(fmt::format(
          "map epoch {} not installed everywhere after {} ms: {}", epoch,
          timeout_ms,
          view.contains("error") ? view["error"].get<std::string>()
                                 : fmt::format("{}", fmt::join(behind, ", "))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// This cvmd joins the cluster as its host with the token host add printed.
Result<json> Api::NodeJoin(JsonFields& a) {
  a.Expect({"token"});
  const std::string token = a.String("token");
  CVM_RETURN_IF_ERROR(a.status());
  if (identity_ == nullptr) return Unavailable("this cvmd cannot join");
  CVM_ASSIGN_OR_RETURN(json joined, identity_->Join(token));
  // Now it applies its host's part of the store.
  if (sync_ != nullptr) joined["reconcile"] = sync_->Reconcile();
  return joined;
}

Result<json> Api::HostList(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  const json view =
      presence_ ? presence_->View(/*members=*/false) : json::object();
  const json nodes = view.value("nodes", json::object());
  json out = json::array();
  const bool cluster = identity_ != nullptr && identity_->cluster();
  for (const auto& h : hosts) {
    json j = HostView(h, cluster);
    if (presence_) {
      j["up"] = nodes.contains(h.name);  // its cvmd's lease lives
      j["leader"] = view.value("leader", "") == h.name;
    }
    out.push_back(std::move(j));
  }
  return out;
}

Result<json> Api::HostGet(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(Host h, store_.GetHost(name));
  return HostView(h, identity_ != nullptr && identity_->cluster());
}

Result<json> Api::HostRemove(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(store_.RemoveHost(name));
  return json{{"removed", name}};
}

// ---- devices ----

namespace {

// A device's "path_state": what cvm.ko last said of it, null when it never did.
json PathJson(const std::optional<PathState>& p) {
  return p ? ToJson(*p) : json(nullptr);
}

// A device's "usage": what the cvm_target serving it reports (object space,
// bytes allocated, object shards and those with a write intent), null when
// no target of this node serves it.
json UsageJson(const std::map<uint64_t, TargetDeviceUsage>& usage,
               uint64_t id) {
  auto u = usage.find(id);
  if (u == usage.end()) return nullptr;
  json j = ToJson(u->second);
  j.erase("id");
  j.erase("path");
  return j;
}

}  // namespace

// Usage is advisory: a target that cannot be asked leaves it unknown.
std::map<uint64_t, TargetDeviceUsage> Api::LocalUsage() {
  if (sync_ == nullptr) return {};
  auto usage = sync_->TargetUsage();
  if (!usage.ok()) {
    LogWarn("device usage: {}", usage.status().message());
    return {};
  }
  return std::move(*usage);
}

Result<json> Api::DeviceJson(const Device& d) {
  json out = ToJson(d);
  CVM_ASSIGN_OR_RETURN(Host h, store_.GetHostById(d.host_id));
  out["host"] = h.name;
  CVM_ASSIGN_OR_RETURN(auto path, store_.GetPathState(d.id));
  out["path_state"] = PathJson(path);
  out["usage"] = UsageJson(LocalUsage(), d.id);
  return out;
}

Result<json> Api::DeviceAdd(JsonFields& a) {
  a.Expect({"host", "path", "capacity", "weight", "class"});
  DeviceSpec spec;
  spec.host = a.String("host");
  spec.path = a.String("path");
  spec.capacity = a.U64("capacity");
  // JSON has no NaN or infinity: a client's encoder writes them as null,
  // which must not read as "use the default".
  if (a.IsNull("weight")) {
    return InvalidArgument("device weight must be a finite number, got null");
  }
  spec.weight = a.OptDouble("weight").value_or(1.0);
  spec.device_class = a.OptString("class").value_or("nvme");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(Device d, store_.AddDevice(spec));
  return DeviceJson(d);
}

Result<json> Api::DeviceList(JsonFields& a) {
  a.Expect({"host"});
  const auto host = a.OptString("host");
  CVM_RETURN_IF_ERROR(a.status());
  uint64_t host_id = 0;
  if (host) {
    CVM_ASSIGN_OR_RETURN(Host h, store_.GetHost(*host));
    host_id = h.id;
  }
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  std::map<uint64_t, std::string> names;
  for (const auto& h : hosts) names[h.id] = h.name;
  CVM_ASSIGN_OR_RETURN(auto devices, store_.ListDevices());
  CVM_ASSIGN_OR_RETURN(auto path_list, store_.ListPathStates());
  std::map<uint64_t, PathState> paths;
  for (auto& p : path_list) paths[p.device_id] = std::move(p);
  const auto usage = LocalUsage();
  json out = json::array();
  for (const auto& d : devices) {
    if (host_id != 0 && d.host_id != host_id) continue;
    json j = ToJson(d);
    j["host"] = names.count(d.host_id) ? names[d.host_id] : "?";
    auto p = paths.find(d.id);
    j["path_state"] = PathJson(
        p == paths.end() ? std::nullopt : std::optional<PathState>(p->second));
    j["usage"] = UsageJson(usage, d.id);
    out.push_back(std::move(j));
  }
  return out;
}

// Capacity: per device its declared capacity and, where a target of this
// node serves it, what the target says is allocated; per pool what its
// volumes promise (thick volumes reserve raw space, thin ones do not) and
// how much more a volume of that policy could hold: the raw space neither
// allocated nor reserved, divided by the policy's overhead.
Result<json> Api::ClusterDf(JsonFields& a) {
  a.Expect({});
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(auto devices, store_.ListDevices());
  CVM_ASSIGN_OR_RETURN(auto pools, store_.ListPools());
  CVM_ASSIGN_OR_RETURN(auto volumes, store_.ListVolumes());
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  std::map<uint64_t, std::string> host_names;
  for (const auto& h : hosts) host_names[h.id] = h.name;
  const auto usage = LocalUsage();
  CVM_ASSIGN_OR_RETURN(RawSpace space, store_.GetRawSpace(volumes));
  const uint64_t raw = space.capacity, reserved = space.thick_reserved;
  uint64_t used = 0, reporting = 0;
  json devs = json::array();
  for (const auto& d : devices) {
    json j = {
        {"id", d.id},
        {"host", host_names.count(d.host_id) ? host_names[d.host_id] : "?"},
        {"capacity", d.capacity},
        {"in", d.in},
        {"nearfull", d.nearfull},
        {"full", d.full},
        {"used", nullptr}};
    if (auto u = usage.find(d.id); u != usage.end()) {
      j["used"] = u->second.used;
      if (d.in) {
        used += u->second.used;
        ++reporting;
      }
    }
    devs.push_back(std::move(j));
  }
  std::map<uint64_t, uint64_t> provisioned, thick;
  for (const auto& v : volumes) {
    provisioned[v.pool_id] += v.size;
    if (v.provisioning == Provisioning::kThick) thick[v.pool_id] += v.size;
  }
  // Thick volumes' allocated extents are inside their reservation: count
  // the larger of the two, never both.
  const uint64_t taken = std::max(used, reserved);
  const uint64_t free_raw = raw > taken ? raw - taken : 0;
  json pool_list = json::array();
  for (const auto& p : pools) {
    const uint64_t per_byte = RawBytes(p.policy, 1 << 20);
    pool_list.push_back(
        {{"name", p.name},
         {"policy", ToString(p.policy)},
         {"volumes",
          std::count_if(volumes.begin(), volumes.end(),
                        [&](const Volume& v) { return v.pool_id == p.id; })},
         {"provisioned", provisioned[p.id]},
         {"thick_reserved", thick[p.id]},
         {"max_avail",
          static_cast<uint64_t>(
              (static_cast<unsigned __int128>(free_raw) << 20) / per_byte)}});
  }
  return json{{"raw",
               {{"capacity", raw},
                {"used", used},
                {"thick_reserved", reserved},
                {"available", free_raw},
                {"devices", devices.size()},
                {"devices_reporting", reporting}}},
              {"pools", std::move(pool_list)},
              {"devices", std::move(devs)}};
}

Result<json> Api::DeviceGet(JsonFields& a) {
  a.Expect({"id"});
  const uint64_t id = a.U64("id");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(Device d, store_.GetDevice(id));
  return DeviceJson(d);
}

Result<json> Api::DeviceRemove(JsonFields& a) {
  a.Expect({"id", "force"});
  const uint64_t id = a.U64("id");
  const bool force = a.OptBool("force").value_or(false);
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(store_.RemoveDevice(id, force));
  return json{{"removed", id}, {"forced", force}};
}

Result<json> Api::DeviceSetState(JsonFields& a) {
  a.Expect({"id", "up", "in"});
  const uint64_t id = a.U64("id");
  const auto up = a.OptBool("up");
  const auto in = a.OptBool("in");
  CVM_RETURN_IF_ERROR(a.status());
  if (!up && !in) return InvalidArgument("give 'up', 'in' or both");
  CVM_ASSIGN_OR_RETURN(Device d, store_.SetDeviceState(id, up, in));
  return DeviceJson(d);
}

Result<json> Api::HostSetIn(JsonFields& a) {
  a.Expect({"name", "in"});
  const std::string name = a.String("name");
  const bool in = a.Bool("in");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(auto changed, store_.SetHostIn(name, in));
  CVM_ASSIGN_OR_RETURN(Host host, store_.GetHost(name));
  CVM_ASSIGN_OR_RETURN(auto devices, store_.ListDevices());
  json ids = json::array();
  for (const Device& d : devices) {
    if (d.host_id == host.id) ids.push_back(d.id);
  }
  return json{{"host", host.name},
              {"in", in},
              {"devices", std::move(ids)},
              {"changed", changed.size()}};
}

// ---- cluster settings ----

Result<json> Api::ConfigGet(JsonFields& a) {
  a.Expect({});
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(ClusterSettings s, store_.GetSettings());
  json about = json::object();
  for (const auto& [name, what] : SettingNames()) about[name] = what;
  return json{{"settings", ToJson(s)}, {"about", std::move(about)}};
}

Result<json> Api::ConfigSet(JsonFields& a) {
  a.Expect({"key", "value"});
  const std::string key = a.String("key");
  const std::string value = a.String("value");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(ClusterSettings s, store_.SetSetting(key, value));
  return json{{"settings", ToJson(s)}};
}

// ---- pools ----

Result<json> Api::PoolCreate(JsonFields& a) {
  a.Expect({"name", "policy", "failure_domain", "pg_num", "device_class",
            "min_size"});
  Pool p;
  p.name = a.String("name");
  const json* policy = a.Raw("policy");
  const std::string domain = a.OptString("failure_domain").value_or("host");
  const uint64_t pg_num = a.OptU64("pg_num").value_or(kDefaultPgNum);
  p.device_class = a.OptString("device_class").value_or("");
  const uint64_t min_size = a.OptU64("min_size").value_or(0);
  if (a.ok() && policy == nullptr) {
    return InvalidArgument("argument 'policy' is required");
  }
  if (min_size > 255) {
    return InvalidArgument(fmt::format("min_size {} out of range", min_size));
  }
  p.min_size = static_cast<uint32_t>(min_size);
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(p.policy,
                       PolicyFromJson(*policy, Code::kInvalidArgument));
  CVM_ASSIGN_OR_RETURN(p.failure_domain, ParseFailureDomain(domain));
  if (pg_num > kMaxPgNum) {
    return InvalidArgument(fmt::format(
        "pg_num {} must be a power of two from 1 to {}", pg_num, kMaxPgNum));
  }
  p.pg_num = static_cast<uint32_t>(pg_num);
  CVM_ASSIGN_OR_RETURN(Pool created, store_.CreatePool(std::move(p)));
  json out = ToJson(created);
  // Created either way (hosts may come later), but said at once.
  CVM_ASSIGN_OR_RETURN(std::string problem,
                       store_.PoolPlacementProblem(created));
  if (!problem.empty()) {
    out["warning"] = fmt::format(
        "pool '{}' cannot be placed on the current topology yet: {}",
        created.name, problem);
  }
  return out;
}

Result<json> Api::PoolList(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  CVM_ASSIGN_OR_RETURN(auto pools, store_.ListPools());
  json out = json::array();
  for (const auto& p : pools) out.push_back(ToJson(p));
  return out;
}

Result<json> Api::PoolGet(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(Pool p, store_.GetPool(name));
  return ToJson(p);
}

Result<json> Api::PoolSet(JsonFields& a) {
  a.Expect({"name", "min_size"});
  const std::string name = a.String("name");
  const uint64_t min_size = a.U64("min_size");
  CVM_RETURN_IF_ERROR(a.status());
  if (min_size > 255) {
    return InvalidArgument(fmt::format("min_size {} out of range", min_size));
  }
  CVM_ASSIGN_OR_RETURN(
      Pool p, store_.SetPoolMinSize(name, static_cast<uint32_t>(min_size)));
  return ToJson(p);
}

Result<json> Api::PoolDelete(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(store_.DeletePool(name));
  return json{{"deleted", name}};
}

// ---- volumes ----

Result<json> Api::VolumeJson(const Volume& v) {
  json out = ToJson(v);
  CVM_ASSIGN_OR_RETURN(Pool p, store_.GetPoolById(v.pool_id));
  out["pool"] = p.name;
  return out;
}

Result<json> Api::VolumeCreate(JsonFields& a) {
  a.Expect(
      {"name", "pool", "size", "object_size", "stripe_unit", "provisioning"});
  VolumeSpec spec;
  spec.name = a.String("name");
  spec.pool = a.String("pool");
  spec.size = a.U64("size");
  spec.object_size = a.OptU64("object_size").value_or(kDefaultObjectSize);
  spec.stripe_unit = a.OptU64("stripe_unit");
  const std::string provisioning = a.OptString("provisioning").value_or("thin");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(spec.provisioning, ParseProvisioning(provisioning));
  CVM_ASSIGN_OR_RETURN(Volume v, store_.CreateVolume(spec));
  return VolumeJson(v);
}

Result<json> Api::VolumeList(JsonFields& a) {
  a.Expect({"pool"});
  const auto pool = a.OptString("pool");
  CVM_RETURN_IF_ERROR(a.status());
  uint64_t pool_id = 0;
  if (pool) {
    CVM_ASSIGN_OR_RETURN(Pool p, store_.GetPool(*pool));
    pool_id = p.id;
  }
  CVM_ASSIGN_OR_RETURN(auto pools, store_.ListPools());
  std::map<uint64_t, std::string> names;
  for (const auto& p : pools) names[p.id] = p.name;
  CVM_ASSIGN_OR_RETURN(auto volumes, store_.ListVolumes());
  json out = json::array();
  for (const auto& v : volumes) {
    if (pool_id != 0 && v.pool_id != pool_id) continue;
    json j = ToJson(v);
    j["pool"] = names.count(v.pool_id) ? names[v.pool_id] : "?";
    out.push_back(std::move(j));
  }
  return out;
}

Result<json> Api::VolumeGet(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  CVM_ASSIGN_OR_RETURN(json out, VolumeJson(v));
  CVM_ASSIGN_OR_RETURN(auto snapshots, store_.ListSnapshots());
  json snaps = json::array();
  for (const auto& s : snapshots) {
    if (s.volume_id == v.id) snaps.push_back(s.name);
  }
  out["snapshots"] = std::move(snaps);
  return out;
}

Result<json> Api::VolumeDelete(JsonFields& a) {
  a.Expect({"name"});
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(store_.DeleteVolume(name));
  return json{{"deleted", name}};
}

// ---- snapshots ----

// Refused until the data path serves snapshots (copy-on-write objects):
// a record that nothing serves would promise a point in time that no read
// can return. snapshot.list and snapshot.delete stay, for records an
// earlier cvmd made.
Result<json> Api::SnapshotCreate(JsonFields& a) {
  a.Expect({"volume", "name"});
  const std::string volume = a.String("volume");
  a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(store_.GetVolume(volume).status());
  return InvalidArgument(
      "snapshots are not served yet: the data path has no copy-on-write "
      "objects, so no snapshot can be read back");
}

Result<json> Api::SnapshotList(JsonFields& a) {
  a.Expect({"volume"});
  const auto volume = a.OptString("volume");
  CVM_RETURN_IF_ERROR(a.status());
  uint64_t volume_id = 0;
  if (volume) {
    CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(*volume));
    volume_id = v.id;
  }
  CVM_ASSIGN_OR_RETURN(auto volumes, store_.ListVolumes());
  std::map<uint64_t, std::string> names;
  for (const auto& v : volumes) names[v.id] = v.name;
  CVM_ASSIGN_OR_RETURN(auto snapshots, store_.ListSnapshots());
  json out = json::array();
  for (const auto& s : snapshots) {
    if (volume_id != 0 && s.volume_id != volume_id) continue;
    json j = ToJson(s);
    j["volume"] = names.count(s.volume_id) ? names[s.volume_id] : "?";
    out.push_back(std::move(j));
  }
  return out;
}

Result<json> Api::SnapshotDelete(JsonFields& a) {
  a.Expect({"volume", "name"});
  const std::string volume = a.String("volume");
  const std::string name = a.String("name");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(store_.DeleteSnapshot(volume, name));
  return json{{"deleted", volume + "@" + name}};
}

// ---- map ----

Result<json> Api::MapEpochOp(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  CVM_ASSIGN_OR_RETURN(uint64_t epoch, store_.CurrentEpoch());
  return json{{"epoch", epoch}};
}

Result<json> Api::MapHistory(JsonFields& a) {
  a.Expect({"limit"});
  const uint64_t limit = a.OptU64("limit").value_or(0);
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(auto history,
                       store_.EpochHistory(static_cast<size_t>(limit)));
  json out = json::array();
  for (const auto& e : history) out.push_back(ToJson(e));
  return out;
}

// What backfill has left to do (backfill.h), from the store alone, so any
// node answers: the PGs still pinned per pool, which volume each pool waits
// for, and the PGs whose old copies are not swept yet.
Result<json> Api::RecoveryStatus(JsonFields& a) {
  a.Expect({});
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(uint64_t epoch, store_.CurrentEpoch());
  json out = {{"map_epoch", epoch}, {"pools", json::array()}};
  uint64_t moving = 0, pgs = 0, degraded = 0, misplaced = 0;
  if (epoch != 0) {
    CVM_ASSIGN_OR_RETURN(MapEpoch e, store_.GetEpoch(epoch));
    if (e.problem.empty()) {
      CVM_ASSIGN_OR_RETURN(std::string blob, store_.GetMap(epoch));
      CVM_ASSIGN_OR_RETURN(auto placements, PlacementOf(blob));
      CVM_ASSIGN_OR_RETURN(auto pools, store_.ListPools());
      CVM_ASSIGN_OR_RETURN(auto volumes, store_.ListVolumes());
      for (const PoolPlacement& p : placements) {
        pgs += p.pg_num;
        moving += p.pinned;
        degraded += p.degraded;
        misplaced += p.misplaced;
        json pool = {{"id", p.pool_id},
                     {"pg_num", p.pg_num},
                     {"moving_pgs", p.pinned},
                     {"degraded_pgs", p.degraded},
                     {"misplaced_pgs", p.misplaced},
                     {"volumes", json::array()}};
        for (const Pool& named : pools) {
          if (named.id == p.pool_id) pool["name"] = named.name;
        }
        for (const Volume& v : volumes) {
          if (v.pool_id != p.pool_id || p.pinned == 0) continue;
          const bool attached = !v.attached_host.empty();
          const bool copied = attached && v.backfilled_epoch == epoch &&
                              v.backfilled_attach == v.attach_epoch;
          pool["volumes"].push_back(
              {{"name", v.name},
               {"copied_by", attached ? v.attached_host : "cvmd"},
               {"copied", copied}});
        }
        out["pools"].push_back(std::move(pool));
      }
    }
  }
  CVM_ASSIGN_OR_RETURN(std::string moved_raw, store_.GetBackfillMoved());
  const json moved =
      moved_raw.empty()
          ? json::array()
          : json::parse(moved_raw, nullptr, /*allow_exceptions=*/false);
  out["moving_pgs"] = moving;
  out["degraded_pgs"] = degraded;
  out["misplaced_pgs"] = misplaced;
  out["pgs"] = pgs;
  out["sweep_pending_pgs"] = moved.is_array() ? moved.size() : 0;
  // The leader's record of this recovery: rate and ETA in PGs.
  CVM_ASSIGN_OR_RETURN(std::string raw, store_.GetRecoveryRecord());
  CVM_ASSIGN_OR_RETURN(RecoveryProgress rp, DecodeRecoveryProgress(raw));
  if (rp.started != 0 && moving != 0) {
    const int64_t elapsed =
        std::max<int64_t>(1, std::time(nullptr) - rp.started);
    const uint64_t done = rp.pgs_total > moving ? rp.pgs_total - moving : 0;
    const double rate = static_cast<double>(done) / elapsed;
    json progress = {
        {"started", rp.started},
        {"elapsed_s", elapsed},
        {"pgs_total", rp.pgs_total},
        {"pgs_done", done},
        {"pgs_per_s", rate},
        {"bytes_copied_by_cvmd", rp.bytes_copied},
        {"bytes_per_s_by_cvmd", static_cast<double>(rp.bytes_copied) / elapsed},
        {"shards_rebuilt", rp.shards_rebuilt},
        {"stalled", rp.stalled}};
    progress["eta_s"] =
        rate > 0 ? json(static_cast<int64_t>(moving / rate)) : json(nullptr);
    out["progress"] = std::move(progress);
  }
  return out;
}

Result<json> Api::MapShow(JsonFields& a) {
  a.Expect({"epoch"});
  std::optional<uint64_t> epoch = a.OptU64("epoch");
  CVM_RETURN_IF_ERROR(a.status());
  if (!epoch) {
    CVM_ASSIGN_OR_RETURN(epoch, store_.CurrentEpoch());
    if (*epoch == 0) return NotFound("no map yet: add a host and a device");
  }
  CVM_ASSIGN_OR_RETURN(MapEpoch e, store_.GetEpoch(*epoch));
  json out = ToJson(e);
  out["servable"] = e.problem.empty();
  out["pools"] = json::array();
  if (!e.problem.empty()) return out;

  // Placement as the kernel will compute it, from the stored blob.
  CVM_ASSIGN_OR_RETURN(std::string blob, store_.GetMap(*epoch));
  CVM_ASSIGN_OR_RETURN(auto placements, PlacementOf(blob));
  CVM_ASSIGN_OR_RETURN(auto pools, store_.ListPools());
  for (const PoolPlacement& p : placements) {
    json pool = {{"id", p.pool_id},         {"pg_num", p.pg_num},
                 {"width", p.width},        {"table_crc", p.table_crc},
                 {"unplaced", p.unplaced},  {"pinned", p.pinned},
                 {"overrides", p.overrides}};
    for (const Pool& named : pools) {
      if (named.id == p.pool_id) pool["name"] = named.name;
    }
    uint32_t lo = UINT32_MAX, hi = 0, in_use = 0;
    uint64_t total = 0;
    json per_device = json::object();
    for (const auto& [dev, n] : p.pgs) {
      per_device[std::to_string(dev)] = n;
      total += n;
      if (n) {
        ++in_use;
        lo = std::min(lo, n);
        hi = std::max(hi, n);
      }
    }
    pool["pgs_per_device"] = per_device;
    pool["devices_used"] = in_use;
    pool["min_pgs"] = in_use ? lo : 0;
    pool["max_pgs"] = hi;
    pool["mean_pgs"] = in_use ? static_cast<double>(total) / in_use : 0.0;
    out["pools"].push_back(std::move(pool));
  }
  return out;
}

// ---- kernel ----

Result<KernelSync*> Api::Sync() {
  if (sync_ == nullptr) {
    return Unavailable("this cvmd runs without kernel access");
  }
  return sync_;
}

// "host": another host, whose cvmd attaches (detaches) it as it follows
// the store; absent or this host: done here, in this kernel.
Result<json> Api::VolumeAttach(JsonFields& a) {
  a.Expect({"name", "host"});
  const std::string name = a.String("name");
  const auto host = a.OptString("host");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  if (host && *host != sync->host()) return sync->AttachRemote(name, *host);
  return sync->Attach(name);
}

Result<json> Api::VolumeDetach(JsonFields& a) {
  a.Expect({"name", "force"});
  const std::string name = a.String("name");
  const bool force = a.OptBool("force").value_or(false);
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  CVM_ASSIGN_OR_RETURN(Volume v, store_.GetVolume(name));
  if (sync->cluster() && !v.attached_host.empty() &&
      v.attached_host != sync->host()) {
    return sync->DetachRemote(name);
  }
  return sync->Detach(name, force);
}

// Moves an attached volume to another host, from any node; returns once
// its device serves there.
Result<json> Api::VolumeMigrate(JsonFields& a) {
  a.Expect({"name", "to", "force"});
  const std::string name = a.String("name");
  const std::string to = a.String("to");
  const bool force = a.OptBool("force").value_or(false);
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(ValidateName("host", to));
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->Migrate(name, to, force);
}

Result<json> Api::TargetListen(JsonFields& a) {
  a.Expect({"address"});
  const std::string address = a.String("address");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(ParseHostPort(address).status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->Listen(address);
}

Result<json> Api::TargetUnlisten(JsonFields& a) {
  a.Expect({"address"});
  const std::string address = a.String("address");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(ParseHostPort(address).status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->Unlisten(address);
}

Result<json> Api::TargetDeviceAdd(JsonFields& a) {
  a.Expect({"id", "format", "force"});
  const uint64_t id = a.U64("id");
  const bool format = a.OptBool("format").value_or(false);
  const bool force = a.OptBool("force").value_or(false);
  CVM_RETURN_IF_ERROR(a.status());
  if (force && !format) {
    return InvalidArgument("'force' only goes with 'format'");
  }
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->DeviceAdd(id, format, force);
}

Result<json> Api::TargetDeviceRemove(JsonFields& a) {
  a.Expect({"id"});
  const uint64_t id = a.U64("id");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->DeviceRemove(id);
}

// This host's secret for the data path is replaced, with no downtime
// (KernelSync::RotateKey).
Result<json> Api::HostRotateKey(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->RotateKey();
}

// ---- metrics (metrics.h) ----

Result<json> Api::Metrics(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  MetricsInput in;
  CVM_ASSIGN_OR_RETURN(in.map_epoch, store_.CurrentEpoch());
  CVM_ASSIGN_OR_RETURN(in.devices, store_.ListDevices());
  CVM_ASSIGN_OR_RETURN(auto hosts, store_.ListHosts());
  for (const Host& h : hosts) in.host_names[h.id] = h.name;
  CVM_ASSIGN_OR_RETURN(in.paths, store_.ListPathStates());
  const json no_args = json::object();
  JsonFields df_args(no_args, "argument", Code::kInvalidArgument);
  CVM_ASSIGN_OR_RETURN(in.df, ClusterDf(df_args));
  // What this node's target reported, as cluster.df already asked it.
  for (const json& d : in.df.value("devices", json::array())) {
    if (d.value("used", json()).is_number_unsigned())
      in.device_used[d["id"].get<uint64_t>()] = d["used"].get<uint64_t>();
  }
  JsonFields recovery_args(no_args, "argument", Code::kInvalidArgument);
  CVM_ASSIGN_OR_RETURN(in.recovery, RecoveryStatus(recovery_args));
  if (sync_ != nullptr) {
    auto volumes = sync_->AttachedVolumes();
    if (!volumes.ok()) {
      LogWarn("metrics: attached volumes: {}", volumes.status().message());
    } else {
      for (const KernelVolume& v : *volumes) {
        auto stats = ReadVolumeIoStats("/sys/block", v.name, v.minor);
        if (stats.ok()) {
          in.volumes.push_back(std::move(*stats));
        } else {
          LogWarn("metrics: volume {}: {}", v.name, stats.status().message());
        }
      }
    }
  }
  return json{{"text", RenderMetrics(in)}};
}

// ---- remote API tokens (api_tokens.h) ----

Result<json> Api::TokenCreate(JsonFields& a) {
  a.Expect({"role", "name", "expires_in"});
  const std::string role_name = a.String("role");
  const std::string name = a.OptString("name").value_or("");
  const uint64_t ttl = a.OptU64("expires_in").value_or(0);
  CVM_RETURN_IF_ERROR(a.status());
  CVM_ASSIGN_OR_RETURN(TokenRole role, ParseTokenRole(role_name));
  if (ttl > static_cast<uint64_t>(INT64_MAX))
    return InvalidArgument("argument 'expires_in' is too large");
  CVM_ASSIGN_OR_RETURN(auto created,
                       tokens_.Create(role, name, static_cast<int64_t>(ttl),
                                      std::time(nullptr)));
  json out = ToJson(created.record);
  out["token"] = created.token;
  return out;
}

Result<json> Api::TokenList(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  CVM_ASSIGN_OR_RETURN(auto tokens, tokens_.List());
  json out = json::array();
  const int64_t now = std::time(nullptr);
  for (const ApiToken& t : tokens) {
    json j = ToJson(t);
    j["expired"] = t.expires != 0 && now >= t.expires;
    out.push_back(std::move(j));
  }
  return out;
}

Result<json> Api::TokenRevoke(JsonFields& a) {
  a.Expect({"id"});
  const std::string id = a.String("id");
  CVM_RETURN_IF_ERROR(a.status());
  CVM_RETURN_IF_ERROR(tokens_.Revoke(id));
  return json{{"id", id}, {"revoked", true}};
}

Result<json> Api::KernelReconcile(JsonFields& a) {
  CVM_RETURN_IF_ERROR(a.Expect({}).status());
  CVM_ASSIGN_OR_RETURN(KernelSync * sync, Sync());
  return sync->Reconcile();
}

}  // namespace cvm
