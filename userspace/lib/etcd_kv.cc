// KvStore on etcd v3, through its JSON gateway (POST /v3/kv/...) with
// cpp-httplib, as Vitastor drives etcd from C++.
//
// Layout under the prefix P ("/cvm" by default):
//   P/<family>/<hex of key>   a record (hex keeps the key order)
//   P/change                  the change counter: every commit bumps it
//   P/pieces/<family>/<hex of key>/<tag>/<index>
//                             the pieces of a value too large for one etcd
//                             request (sealed maps); the record itself then
//                             holds a manifest naming the tag
//
// Begin reads the change counter and the store revision R; reads until End
// are made at R (one consistent state). Commit is one etcd transaction whose
// compare is "the change counter is still the one read at Begin": so two
// cvmds that checked a name against the same state cannot both commit, and
// ids and epochs (counters in P/meta/) stay unique and monotonic. The loser
// gets kConflict and runs its checks again.
//
// Endpoints are tried in turn: a request that cannot reach one, or that
// etcd answers with "unavailable" (a member without a leader), goes to the
// next, so cvmd follows etcd's failover.

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "etcd_client.h"
#include "hex.h"
#include "json_fields.h"
#include "kv_store.h"

namespace cvm {
namespace {

using nlohmann::json;

// etcd refuses requests over 1.5 MiB (--max-request-bytes); a piece and its
// base64 stay well under it.
constexpr size_t kPieceBytes = 512 * 1024;
constexpr std::string_view kManifestMagic{"\0cvm-pieces\0", 12};
constexpr int64_t kScanPage = 256;

Result<std::string> Unhex(std::string_view in) {
  if (in.size() % 2) return Corruption("etcd key of odd hex length");
  std::string out;
  for (size_t i = 0; i < in.size(); i += 2) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(in.data() + i, in.data() + i + 2, v, 16);
    if (ec != std::errc() || p != in.data() + i + 2) {
      return Corruption(fmt::format("etcd key '{}' is not hex", Printable(in)));
    }
    out += static_cast<char>(v);
  }
  return out;
}

class EtcdKv final : public KvStore {
 public:
  EtcdKv(const EtcdUri& uri)
      : etcd_(uri.endpoints, uri.tls), prefix_(uri.prefix) {}

  std::string Describe() const override {
    return (etcd_.tls() ? "etcds://" : "etcd://") + etcd_.Describe() + prefix_;
  }

  Status Begin() override {
    CVM_ASSIGN_OR_RETURN(OneKey change, ReadKey(ChangeKey(), /*revision=*/0));
    read_revision_ = change.revision;
    change_thread_ = std::this_thread::get_id();
    change_mod_ = change.mod_revision;
    change_count_ = 0;
    if (change.value) {
      std::from_chars(change.value->data(),
                      change.value->data() + change.value->size(),
                      change_count_);
    }
    in_change_ = true;
    return {};
  }

  void End() override {
    in_change_ = false;
    read_revision_ = 0;
    change_thread_ = std::thread::id();
  }

  Result<std::optional<std::string>> Get(Cf cf, std::string_view key) override {
    const int64_t rev = ReadRevision();
    CVM_ASSIGN_OR_RETURN(OneKey k, ReadKey(RecordKey(cf, key), rev));
    if (!k.value) return std::optional<std::string>();
    // Pieces at the revision the record was read at.
    CVM_ASSIGN_OR_RETURN(std::string v, Assemble(cf, key, std::move(*k.value),
                                                 rev ? rev : k.revision));
    return std::optional<std::string>(std::move(v));
  }

  Status Scan(Cf cf, const KvScanFn& fn) override {
    const std::string family = FamilyPrefix(cf);
    const std::string end = EtcdPrefixEnd(family);
    std::string from = family;
    int64_t rev = ReadRevision();  // pages of one scan read one revision
    for (;;) {
      json req = {{"key", EtcdB64(from)},
                  {"range_end", EtcdB64(end)},
                  {"limit", kScanPage}};
      if (rev) req["revision"] = rev;
      CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
      if (!rev) rev = EtcdInt(r["header"], "revision");
      const json kvs = r.value("kvs", json::array());
      std::string last;
      for (const json& kv : kvs) {
        CVM_ASSIGN_OR_RETURN(last, EtcdUnb64(kv.value("key", "")));
        CVM_ASSIGN_OR_RETURN(
            std::string key,
            Unhex(std::string_view(last).substr(family.size())));
        CVM_ASSIGN_OR_RETURN(std::string v, EtcdUnb64(kv.value("value", "")));
        CVM_ASSIGN_OR_RETURN(v, Assemble(cf, key, std::move(v), rev));
        CVM_RETURN_IF_ERROR(fn(key, v));
      }
      if (!r.value("more", false) || kvs.empty()) return {};
      from = last + '\0';
    }
  }

  Result<uint64_t> Count(Cf cf) override {
    const std::string family = FamilyPrefix(cf);
    json req = {{"key", EtcdB64(family)},
                {"range_end", EtcdB64(EtcdPrefixEnd(family))},
                {"count_only", true}};
    if (const int64_t rev = ReadRevision()) req["revision"] = rev;
    CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
    return static_cast<uint64_t>(EtcdInt(r, "count"));
  }

  Status Commit(const KvBatch& batch,
                bool /*sync: etcd commits are*/) override {
    if (!in_change_) return Internal("etcd commit outside Begin/End");
    json success = json::array();
    std::vector<std::string> written_pieces;  // prefixes, undone on failure
    for (const auto& op : batch.ops()) {
      const std::string key = RecordKey(op.cf, op.key);
      // Pieces of the value this op replaces go with it.
      CVM_ASSIGN_OR_RETURN(OneKey old, ReadKey(key, ReadRevision()));
      if (old.value && IsManifest(*old.value)) {
        CVM_ASSIGN_OR_RETURN(Manifest m, ParseManifest(*old.value));
        const std::string p = PiecePrefix(op.cf, op.key, m.tag);
        success.push_back({{"request_delete_range",
                            {{"key", EtcdB64(p)},
                             {"range_end", EtcdB64(EtcdPrefixEnd(p))}}}});
      }
      if (!op.value) {
        success.push_back({{"request_delete_range", {{"key", EtcdB64(key)}}}});
        continue;
      }
      std::string value = *op.value;
      if (value.size() > kPieceBytes || IsManifest(value)) {
        auto manifest = WritePieces(op.cf, op.key, value);
        if (!manifest.ok()) {
          DeletePieces(written_pieces);
          return manifest.status();
        }
        written_pieces.push_back(
            PiecePrefix(op.cf, op.key, ParseManifest(*manifest)->tag));
        value = std::move(manifest).value();
      }
      success.push_back({{"request_put",
                          {{"key", EtcdB64(key)}, {"value", EtcdB64(value)}}}});
    }
    success.push_back(
        {{"request_put",
          {{"key", EtcdB64(ChangeKey())},
           {"value", EtcdB64(std::to_string(change_count_ + 1))}}}});
    json compare = json::array({{{"key", EtcdB64(ChangeKey())},
                                 {"target", "MOD"},
                                 {"result", "EQUAL"},
                                 {"mod_revision", change_mod_}}});
    if (batch.leader_lease()) {
      compare.push_back({{"key", EtcdB64(LeaderKey())},
                         {"target", "LEASE"},
                         {"result", "EQUAL"},
                         {"lease", batch.leader_lease()}});
    }
    const json txn = {{"compare", std::move(compare)},
                      {"success", std::move(success)}};
    auto r = etcd_.Call("/v3/kv/txn", txn, /*idempotent=*/false);
    if (!r.ok()) {
      // The transaction may have committed: its pieces stay (unreferenced
      // ones are only space).
      return r.status();
    }
    if (!r->value("succeeded", false)) {
      DeletePieces(written_pieces);
      if (batch.leader_lease() && !HoldsLeaderKey(batch.leader_lease())) {
        return Unavailable(
            "this cvmd no longer holds the leader lease; the change is "
            "left to the new leader");
      }
      return Status(Code::kConflict,
                    "another cvmd changed the cluster store first");
    }
    return {};
  }

  Result<uint64_t> SweepPieces() override {
    const std::string root = prefix_ + "/pieces/";
    // "<family>/<hex of key>/<tag>/" -> the newest create_revision in it.
    std::map<std::string, int64_t> groups;
    int64_t revision = 0;
    std::string from = root;
    for (;;) {
      json req = {{"key", EtcdB64(from)},
                  {"range_end", EtcdB64(EtcdPrefixEnd(root))},
                  {"keys_only", true},
                  {"limit", kScanPage}};
      if (revision) req["revision"] = revision;
      CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
      if (!revision) revision = EtcdInt(r["header"], "revision");
      const json kvs = r.value("kvs", json::array());
      for (const json& kv : kvs) {
        CVM_ASSIGN_OR_RETURN(std::string k, EtcdUnb64(kv.value("key", "")));
        from = k + '\0';
        const std::string rest = k.substr(root.size());
        const size_t cut = rest.rfind('/');
        if (cut == std::string::npos) continue;
        int64_t& newest = groups[rest.substr(0, cut + 1)];
        newest = std::max(newest, EtcdInt(kv, "create_revision"));
      }
      if (kvs.empty() || !r.value("more", false)) break;
    }
    uint64_t swept = 0;
    for (const auto& [group, created] : groups) {
      // Young pieces may belong to a commit in flight.
      if (created > last_sweep_revision_) continue;
      const size_t a = group.find('/');
      const size_t b = group.find('/', a + 1);
      if (a == std::string::npos || b == std::string::npos) continue;
      const std::string record =
          fmt::format("{}/{}/{}", prefix_, group.substr(0, a),
                      group.substr(a + 1, b - a - 1));
      const std::string tag = group.substr(b + 1, group.size() - b - 2);
      CVM_ASSIGN_OR_RETURN(OneKey rec, ReadKey(record, /*revision=*/0));
      if (rec.value && IsManifest(*rec.value)) {
        auto m = ParseManifest(*rec.value);
        if (m.ok() && m->tag == tag) continue;  // referenced
      }
      // Deleted only while the record is still as read.
      const std::string p = root + group;
      const json txn = {
          {"compare",
           {{{"key", EtcdB64(record)},
             {"target", "MOD"},
             {"result", "EQUAL"},
             {"mod_revision", rec.value ? rec.mod_revision : 0}}}},
          {"success",
           {{{"request_delete_range",
              {{"key", EtcdB64(p)},
               {"range_end", EtcdB64(EtcdPrefixEnd(p))}}}}}}};
      CVM_ASSIGN_OR_RETURN(json r, etcd_.Call("/v3/kv/txn", txn));
      if (r.value("succeeded", false)) ++swept;
    }
    last_sweep_revision_ = revision;
    return swept;
  }

  // The change counter's mod_revision: every commit moves it.
  Result<int64_t> ChangeMark() override {
    CVM_ASSIGN_OR_RETURN(OneKey change, ReadKey(ChangeKey(), /*revision=*/0));
    return change.mod_revision;
  }

 private:
  struct Manifest {
    std::string tag;
    uint64_t pieces = 0;
    uint64_t bytes = 0;
  };

  std::string ChangeKey() const { return prefix_ + "/change"; }
  std::string LeaderKey() const { return prefix_ + "/leader"; }

  bool HoldsLeaderKey(int64_t lease) {
    auto leader = ReadKey(LeaderKey(), /*revision=*/0);
    return leader.ok() && leader->value && leader->lease == lease;
  }
  std::string FamilyPrefix(Cf cf) const {
    return fmt::format("{}/{}/", prefix_, CfName(cf));
  }
  std::string RecordKey(Cf cf, std::string_view key) const {
    return FamilyPrefix(cf) + HexEncode(key);
  }
  std::string PiecePrefix(Cf cf, std::string_view key,
                          std::string_view tag) const {
    return fmt::format("{}/pieces/{}/{}/{}/", prefix_, CfName(cf),
                       HexEncode(key), tag);
  }

  static bool IsManifest(std::string_view v) {
    return v.substr(0, kManifestMagic.size()) == kManifestMagic;
  }
  static Result<Manifest> ParseManifest(std::string_view v) {
    Manifest m;
    const std::string text(v.substr(kManifestMagic.size()));
    const auto sp1 = text.find(' ');
    const auto sp2 = text.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos) {
      return Corruption("etcd record holds a malformed piece manifest");
    }
    m.tag = text.substr(0, sp1);
    m.pieces = std::strtoull(text.c_str() + sp1 + 1, nullptr, 10);
    m.bytes = std::strtoull(text.c_str() + sp2 + 1, nullptr, 10);
    return m;
  }

  // One etcd key as stored (a manifest stays a manifest), at `revision`
  // (0: the latest), with the store revision the answer was read at.
  struct OneKey {
    std::optional<std::string> value;
    int64_t revision = 0, mod_revision = 0, lease = 0;
  };
  Result<OneKey> ReadKey(const std::string& key, int64_t revision) {
    json req = {{"key", EtcdB64(key)}};
    if (revision) req["revision"] = revision;
    CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
    OneKey out;
    out.revision = EtcdInt(r["header"], "revision");
    if (!r.contains("kvs") || !r["kvs"].is_array() || r["kvs"].empty()) {
      return out;
    }
    const json& kv = r["kvs"][0];
    CVM_ASSIGN_OR_RETURN(out.value, EtcdUnb64(kv.value("value", "")));
    out.mod_revision = EtcdInt(kv, "mod_revision");
    out.lease = EtcdInt(kv, "lease");
    return out;
  }

  // A value as the store was given it: a manifest's pieces read back (at
  // `revision`, the record's) and checked against it.
  Result<std::string> Assemble(Cf cf, std::string_view key, std::string value,
                               int64_t revision) {
    if (!IsManifest(value)) return value;
    CVM_ASSIGN_OR_RETURN(Manifest m, ParseManifest(value));
    const std::string p = PiecePrefix(cf, key, m.tag);
    std::string out;
    std::string from = p;
    for (;;) {
      json req = {{"key", EtcdB64(from)},
                  {"range_end", EtcdB64(EtcdPrefixEnd(p))},
                  {"limit", 4}};
      if (revision) req["revision"] = revision;
      CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
      const json kvs = r.value("kvs", json::array());
      std::string last;
      for (const json& kv : kvs) {
        CVM_ASSIGN_OR_RETURN(last, EtcdUnb64(kv.value("key", "")));
        CVM_ASSIGN_OR_RETURN(std::string piece,
                             EtcdUnb64(kv.value("value", "")));
        out += piece;
      }
      if (!r.value("more", false) || kvs.empty()) break;
      from = last + '\0';
    }
    if (out.size() != m.bytes) {
      return Corruption(fmt::format(
          "{}/{}: {} pieces hold {} bytes, the manifest says {}", CfName(cf),
          HexEncode(key), m.pieces, out.size(), m.bytes));
    }
    return out;
  }

  // Puts `value` in pieces under a fresh tag; returns the manifest.
  Result<std::string> WritePieces(Cf cf, std::string_view key,
                                  std::string_view value) {
    const std::string tag = fmt::format("{:016x}", rng_());
    const std::string p = PiecePrefix(cf, key, tag);
    uint64_t n = 0;
    for (size_t off = 0; off < value.size(); off += kPieceBytes, ++n) {
      const auto piece = value.substr(off, kPieceBytes);
      auto r =
          Call("/v3/kv/put", {{"key", EtcdB64(fmt::format("{}{:06}", p, n))},
                              {"value", EtcdB64(piece)}});
      if (!r.ok()) {
        DeletePieces({p});
        return r.status();
      }
    }
    return std::string(kManifestMagic) +
           fmt::format("{} {} {}", tag, n, value.size());
  }

  void DeletePieces(const std::vector<std::string>& prefixes) {
    for (const auto& p : prefixes) {  // best effort: unreferenced anyway
      static_cast<void>(Call(
          "/v3/kv/deleterange",
          {{"key", EtcdB64(p)}, {"range_end", EtcdB64(EtcdPrefixEnd(p))}}));
    }
  }

  Result<json> Call(const std::string& path, const json& body) {
    return etcd_.Call(path, body);
  }

  EtcdClient etcd_;
  std::string prefix_;
  std::mt19937_64 rng_{std::random_device{}()};
  // Begin's view: the thread between Begin and End reads at
  // read_revision_; any other thread (a status, the store follower) reads
  // the latest state.
  int64_t ReadRevision() const {
    return change_thread_.load() == std::this_thread::get_id()
               ? read_revision_.load()
               : 0;
  }
  std::atomic<int64_t> read_revision_{0};
  std::atomic<std::thread::id> change_thread_{};
  int64_t change_mod_ = 0;
  int64_t change_count_ = 0;
  bool in_change_ = false;
  int64_t last_sweep_revision_ = 0;  // SweepPieces' previous store revision
};

}  // namespace

Result<std::unique_ptr<KvStore>> OpenEtcdKv(const std::string& uri) {
  CVM_ASSIGN_OR_RETURN(EtcdUri parsed, ParseEtcdUri(uri));
  auto kv = std::make_unique<EtcdKv>(parsed);
  // Reachable now, or refused with the reason.
  CVM_ASSIGN_OR_RETURN(uint64_t n, kv->Count(Cf::kMeta));
  static_cast<void>(n);
  return std::unique_ptr<KvStore>(std::move(kv));
}

}  // namespace cvm
