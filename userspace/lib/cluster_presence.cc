#include "cluster_presence.h"

#include <fmt/format.h>

#include "log.h"

namespace cvm {

using nlohmann::json;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Status LocalPresence::Publish(const json& fields) {
  std::lock_guard lock(mutex_);
  info_.update(fields);
  return {};
}

json LocalPresence::View(bool /*members: none*/) {
  std::lock_guard lock(mutex_);
  json node = info_;
  node["host"] = host_;
  return {{"leader", host_}, {"is_leader", true}, {"nodes", {{host_, node}}}};
}

EtcdPresence::EtcdPresence(const EtcdUri& uri, std::string host,
                           PresenceOptions options)
    : etcd_(uri.endpoints, uri.tls),
      prefix_(uri.prefix),
      host_(std::move(host)),
      options_(std::move(options)) {}

EtcdPresence::~EtcdPresence() { Stop(); }

Status EtcdPresence::Grant() {
  CVM_ASSIGN_OR_RETURN(
      json r, etcd_.Call("/v3/lease/grant", {{"TTL", options_.ttl.count()}}));
  const int64_t id = EtcdInt(r, "ID");
  if (id == 0) {
    return IoError(
        fmt::format("etcd granted no lease: {}", r.dump().substr(0, 300)));
  }
  lease_ = id;
  renewed_ms_ = NowMs();
  return {};
}

Status EtcdPresence::Publish(const json& fields) {
  {
    std::lock_guard lock(info_mutex_);
    options_.node_info.update(fields);
  }
  return Register();
}

Status EtcdPresence::Register() {
  json info;
  {
    std::lock_guard lock(info_mutex_);
    info = options_.node_info;
  }
  info["host"] = host_;
  info["lease"] = lease_.load();
  return etcd_
      .Call("/v3/kv/put", {{"key", EtcdB64(prefix_ + "/nodes/" + host_)},
                           {"value", EtcdB64(info.dump())},
                           {"lease", lease_.load()}})
      .status();
}

// Creates the leader key on our lease if there is none; then reads who
// holds it.
Status EtcdPresence::Campaign() {
  const std::string key = prefix_ + "/leader";
  const json value = {{"host", host_}, {"lease", lease_.load()}};
  const json txn = {
      {"compare", json::array({{{"key", EtcdB64(key)},
                                {"target", "CREATE"},
                                {"result", "EQUAL"},
                                {"create_revision", 0}}})},
      {"success", json::array({{{"request_put",
                                 {{"key", EtcdB64(key)},
                                  {"value", EtcdB64(value.dump())},
                                  {"lease", lease_.load()}}}}})},
      {"failure", json::array({{{"request_range", {{"key", EtcdB64(key)}}}}})}};
  CVM_ASSIGN_OR_RETURN(json r, etcd_.Call("/v3/kv/txn", txn));
  bool leads = r.value("succeeded", false);
  if (!leads) {
    // The failure branch read the key: ours if it sits on our lease (we
    // took it earlier).
    const json& responses = r.value("responses", json::array());
    if (!responses.empty()) {
      const json kvs = responses[0]
                           .value("response_range", json::object())
                           .value("kvs", json::array());
      leads = !kvs.empty() && EtcdInt(kvs[0], "lease") == lease_.load();
    }
  }
  if (leads != leader_.load()) {
    LogInfo("{} the leader (lease {:x})",
            leads ? "this cvmd is now" : "this cvmd is no longer",
            lease_.load());
  }
  leader_ = leads;
  return {};
}

Status EtcdPresence::KeepAlive() {
  const int64_t sent = NowMs();  // the lease runs from before the request
  CVM_ASSIGN_OR_RETURN(
      json r, etcd_.Call("/v3/lease/keepalive", {{"ID", lease_.load()}}));
  const json result = r.value("result", json::object());
  if (EtcdInt(result, "TTL") <= 0) {
    // Expired (we were paused or cut off past the TTL): the node key and
    // any leadership went with it.
    leader_ = false;
    return Status(Code::kNotFound, "lease expired");
  }
  renewed_ms_ = sent;
  return {};
}

// History older than one interval is compacted away (etcd keeps every
// revision until told), then each member's file shrinks (defragment).
void EtcdPresence::CompactIfDue() {
  const int64_t every_ms =
      std::chrono::milliseconds(options_.compact_every).count();
  if (every_ms == 0 || NowMs() < compact_due_ms_) return;
  compact_due_ms_ = NowMs() + every_ms;
  auto r = etcd_.Call("/v3/kv/range", {{"key", EtcdB64(prefix_ + "/leader")}});
  if (!r.ok()) return;
  const int64_t now_rev = EtcdInt((*r)["header"], "revision");
  if (compact_mark_ > 0 && compact_mark_ < now_rev) {
    auto c = etcd_.Call("/v3/kv/compaction",
                        {{"revision", compact_mark_}, {"physical", true}});
    if (!c.ok() && c.status().code() != Code::kConflict) {
      LogWarn("etcd compaction to revision {}: {}", compact_mark_,
              c.status().message());
    } else {
      for (size_t i = 0; i < etcd_.size(); ++i) {
        auto d = etcd_.CallOne(i, "/v3/maintenance/defragment", json::object());
        if (!d.ok()) {
          LogWarn("etcd defragment {}: {}", etcd_.EndpointName(i),
                  d.status().message());
        }
      }
      LogInfo("etcd compacted to revision {} and defragmented", compact_mark_);
    }
  }
  compact_mark_ = now_rev;
}

Status EtcdPresence::Start() {
  CVM_RETURN_IF_ERROR(Grant());
  CVM_RETURN_IF_ERROR(Register());
  CVM_RETURN_IF_ERROR(Campaign());
  const auto period = std::chrono::milliseconds(options_.ttl) / 3;
  renew_thread_.Start(period, [this] { Renew(); });
  leader_thread_.Start(period, [this] { LeaderWork(); });
  return {};
}

void EtcdPresence::Renew() {
  Status s = KeepAlive();
  if (s.code() == Code::kNotFound) {
    LogWarn("cvmd's etcd lease expired; taking a new one");
    s = Grant();
    if (s.ok()) s = Register();
  }
  if (s.ok()) s = Campaign();
  if (!s.ok()) LogWarn("keeping this node's presence in etcd: {}", s.message());
}

void EtcdPresence::LeaderWork() {
  if (!IsLeader()) return;
  if (options_.leader_tick) options_.leader_tick(lease_);
  CompactIfDue();
}

void EtcdPresence::Stop() {
  if (stopped_) return;
  stopped_ = true;
  renew_thread_.Stop();
  leader_thread_.Stop();
  if (lease_) {
    static_cast<void>(etcd_.Call("/v3/lease/revoke", {{"ID", lease_.load()}}));
  }
  leader_ = false;
}

bool EtcdPresence::IsLeader() const {
  const int64_t ttl_ms = std::chrono::milliseconds(options_.ttl).count();
  return leader_ && NowMs() - renewed_ms_ < ttl_ms;
}

json EtcdPresence::View(bool members) {
  json view = {{"is_leader", IsLeader()},
               {"lease_ttl", options_.ttl.count()},
               {"leader", ""},
               {"nodes", json::object()},
               {"etcd_members", json::array()}};
  const std::string nodes = prefix_ + "/nodes/";
  auto r = etcd_.Call(
      "/v3/kv/range",
      {{"key", EtcdB64(nodes)}, {"range_end", EtcdB64(EtcdPrefixEnd(nodes))}});
  if (r.ok()) {
    for (const json& kv : r->value("kvs", json::array())) {
      auto value = EtcdUnb64(kv.value("value", ""));
      json info = value.ok() ? json::parse(*value, nullptr, false) : json();
      if (info.is_object() && info.contains("host") &&
          info["host"].is_string()) {
        view["nodes"][info["host"].get<std::string>()] = info;
      }
    }
  } else {
    view["error"] = r.status().message();
  }
  auto l = etcd_.Call("/v3/kv/range", {{"key", EtcdB64(prefix_ + "/leader")}});
  if (l.ok() && l->contains("kvs") && !(*l)["kvs"].empty()) {
    auto value = EtcdUnb64((*l)["kvs"][0].value("value", ""));
    json leader = value.ok() ? json::parse(*value, nullptr, false) : json();
    if (leader.is_object()) view["leader"] = leader.value("host", "");
  }
  for (size_t i = 0; members && i < etcd_.size(); ++i) {
    json member = {{"endpoint", etcd_.EndpointName(i)}};
    auto st = etcd_.CallOne(i, "/v3/maintenance/status", json::object());
    if (st.ok()) {
      const json header = st->value("header", json::object());
      member["healthy"] = true;
      member["version"] = st->value("version", "");
      member["db_size"] = EtcdInt(*st, "dbSize");
      // Member ids are uint64 written as strings: compared as written.
      member["is_leader"] =
          st->value("leader", "") != "" &&
          st->value("leader", "") == header.value("member_id", "-");
      member["raft_term"] = EtcdInt(*st, "raftTerm");
    } else {
      member["healthy"] = false;
      member["error"] = st.status().message();
    }
    view["etcd_members"].push_back(std::move(member));
  }
  return view;
}

}  // namespace cvm
