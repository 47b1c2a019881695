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
#include <httplib.h>

#include <atomic>
#include <charconv>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

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

// ---- base64 (the gateway carries keys and values as protobuf bytes) ----

constexpr char kB64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string B64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v =
        (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[v >> 18];
    out += kB64[(v >> 12) & 63];
    out += kB64[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

Result<std::string> Unb64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = value(c);
    if (v < 0) return Corruption("etcd sent invalid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::string Hex(std::string_view in) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : in) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

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

// The key just past every key starting with `prefix` (etcd's range_end).
std::string PrefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    if (static_cast<unsigned char>(prefix.back()) != 0xff) {
      prefix.back() = static_cast<char>(prefix.back() + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // everything
}

// The gateway writes int64 as JSON strings; absent means 0.
int64_t Int(const json& j, const char* name) {
  if (!j.is_object() || !j.contains(name)) return 0;
  const json& v = j[name];
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_string()) {
    int64_t out = 0;
    const std::string& s = v.get_ref<const std::string&>();
    std::from_chars(s.data(), s.data() + s.size(), out);
    return out;
  }
  return 0;
}

struct Endpoint {
  std::string host;
  int port = 0;
  std::unique_ptr<httplib::Client> client;
  std::string Name() const { return fmt::format("{}:{}", host, port); }
};

class EtcdKv final : public KvStore {
 public:
  EtcdKv(std::vector<Endpoint> endpoints, std::string prefix)
      : endpoints_(std::move(endpoints)), prefix_(std::move(prefix)) {}

  std::string Describe() const override {
    std::string out = "etcd://";
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      out += (i ? "," : "") + endpoints_[i].Name();
    }
    return out + prefix_;
  }

  Status Begin() override {
    CVM_ASSIGN_OR_RETURN(json r,
                         Call("/v3/kv/range", {{"key", B64(ChangeKey())}}));
    read_revision_ = Int(r["header"], "revision");
    change_mod_ = 0;
    change_count_ = 0;
    if (r.contains("kvs") && r["kvs"].is_array() && !r["kvs"].empty()) {
      const json& kv = r["kvs"][0];
      change_mod_ = Int(kv, "mod_revision");
      CVM_ASSIGN_OR_RETURN(std::string v, Unb64(kv.value("value", "")));
      std::from_chars(v.data(), v.data() + v.size(), change_count_);
    }
    in_change_ = true;
    return {};
  }

  void End() override {
    in_change_ = false;
    read_revision_ = 0;
  }

  Result<std::optional<std::string>> Get(Cf cf, std::string_view key) override {
    json req = {{"key", B64(RecordKey(cf, key))}};
    const int64_t rev = read_revision_;
    if (rev) req["revision"] = rev;
    CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
    if (!r.contains("kvs") || !r["kvs"].is_array() || r["kvs"].empty()) {
      return std::optional<std::string>();
    }
    CVM_ASSIGN_OR_RETURN(std::string v, Unb64(r["kvs"][0].value("value", "")));
    CVM_ASSIGN_OR_RETURN(
        v, Assemble(cf, key, std::move(v), Int(r["header"], "revision")));
    return std::optional<std::string>(std::move(v));
  }

  Status Scan(Cf cf, const KvScanFn& fn) override {
    const std::string family = FamilyPrefix(cf);
    const std::string end = PrefixEnd(family);
    std::string from = family;
    int64_t rev = read_revision_;  // pages of one scan read one revision
    for (;;) {
      json req = {
          {"key", B64(from)}, {"range_end", B64(end)}, {"limit", kScanPage}};
      if (rev) req["revision"] = rev;
      CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
      if (!rev) rev = Int(r["header"], "revision");
      const json kvs = r.value("kvs", json::array());
      std::string last;
      for (const json& kv : kvs) {
        CVM_ASSIGN_OR_RETURN(last, Unb64(kv.value("key", "")));
        CVM_ASSIGN_OR_RETURN(
            std::string key,
            Unhex(std::string_view(last).substr(family.size())));
        CVM_ASSIGN_OR_RETURN(std::string v, Unb64(kv.value("value", "")));
        CVM_ASSIGN_OR_RETURN(v, Assemble(cf, key, std::move(v), rev));
        CVM_RETURN_IF_ERROR(fn(key, v));
      }
      if (!r.value("more", false) || kvs.empty()) return {};
      from = last + '\0';
    }
  }

  Result<uint64_t> Count(Cf cf) override {
    const std::string family = FamilyPrefix(cf);
    json req = {{"key", B64(family)},
                {"range_end", B64(PrefixEnd(family))},
                {"count_only", true}};
    if (read_revision_) req["revision"] = read_revision_.load();
    CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
    return static_cast<uint64_t>(Int(r, "count"));
  }

  Status Commit(const KvBatch& batch,
                bool /*sync: etcd commits are*/) override {
    if (!in_change_) return Internal("etcd commit outside Begin/End");
    json success = json::array();
    std::vector<std::string> written_pieces;  // prefixes, undone on failure
    for (const auto& op : batch.ops()) {
      const std::string key = RecordKey(op.cf, op.key);
      // Pieces of the value this op replaces go with it.
      CVM_ASSIGN_OR_RETURN(auto old, RawValue(key));
      if (old && IsManifest(*old)) {
        CVM_ASSIGN_OR_RETURN(Manifest m, ParseManifest(*old));
        const std::string p = PiecePrefix(op.cf, op.key, m.tag);
        success.push_back(
            {{"request_delete_range",
              {{"key", B64(p)}, {"range_end", B64(PrefixEnd(p))}}}});
      }
      if (!op.value) {
        success.push_back({{"request_delete_range", {{"key", B64(key)}}}});
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
      success.push_back(
          {{"request_put", {{"key", B64(key)}, {"value", B64(value)}}}});
    }
    success.push_back({{"request_put",
                        {{"key", B64(ChangeKey())},
                         {"value", B64(std::to_string(change_count_ + 1))}}}});
    const json txn = {
        {"compare", json::array({{{"key", B64(ChangeKey())},
                                  {"target", "MOD"},
                                  {"result", "EQUAL"},
                                  {"mod_revision", change_mod_}}})},
        {"success", std::move(success)}};
    auto r = Call("/v3/kv/txn", txn);
    if (!r.ok()) {
      DeletePieces(written_pieces);
      return r.status();
    }
    if (!r->value("succeeded", false)) {
      DeletePieces(written_pieces);
      return Status(Code::kConflict,
                    "another cvmd changed the cluster store first");
    }
    return {};
  }

 private:
  struct Manifest {
    std::string tag;
    uint64_t pieces = 0;
    uint64_t bytes = 0;
  };

  std::string ChangeKey() const { return prefix_ + "/change"; }
  std::string FamilyPrefix(Cf cf) const {
    return fmt::format("{}/{}/", prefix_, CfName(cf));
  }
  std::string RecordKey(Cf cf, std::string_view key) const {
    return FamilyPrefix(cf) + Hex(key);
  }
  std::string PiecePrefix(Cf cf, std::string_view key,
                          std::string_view tag) const {
    return fmt::format("{}/pieces/{}/{}/{}/", prefix_, CfName(cf), Hex(key),
                       tag);
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

  // The value as etcd holds it now (a manifest stays a manifest).
  Result<std::optional<std::string>> RawValue(const std::string& key) {
    json req = {{"key", B64(key)}};
    if (read_revision_) req["revision"] = read_revision_.load();
    CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
    if (!r.contains("kvs") || !r["kvs"].is_array() || r["kvs"].empty()) {
      return std::optional<std::string>();
    }
    CVM_ASSIGN_OR_RETURN(std::string v, Unb64(r["kvs"][0].value("value", "")));
    return std::optional<std::string>(std::move(v));
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
      json req = {
          {"key", B64(from)}, {"range_end", B64(PrefixEnd(p))}, {"limit", 4}};
      if (revision) req["revision"] = revision;
      CVM_ASSIGN_OR_RETURN(json r, Call("/v3/kv/range", req));
      const json kvs = r.value("kvs", json::array());
      std::string last;
      for (const json& kv : kvs) {
        CVM_ASSIGN_OR_RETURN(last, Unb64(kv.value("key", "")));
        CVM_ASSIGN_OR_RETURN(std::string piece, Unb64(kv.value("value", "")));
        out += piece;
      }
      if (!r.value("more", false) || kvs.empty()) break;
      from = last + '\0';
    }
    if (out.size() != m.bytes) {
      return Corruption(
          fmt::format("{}/{}: {} pieces hold {} bytes, the manifest says {}",
                      CfName(cf), Hex(key), m.pieces, out.size(), m.bytes));
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
      auto r = Call("/v3/kv/put", {{"key", B64(fmt::format("{}{:06}", p, n))},
                                   {"value", B64(piece)}});
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
      static_cast<void>(
          Call("/v3/kv/deleterange",
               {{"key", B64(p)}, {"range_end", B64(PrefixEnd(p))}}));
    }
  }

  // POSTs `body` to the current endpoint, moving on to the next one when it
  // cannot be reached or has no leader; kUnavailable once all failed.
  Result<json> Call(const std::string& path, const json& body) {
    std::lock_guard lock(http_mutex_);
    const std::string text = body.dump();
    std::string errors;
    for (size_t tried = 0; tried < endpoints_.size(); ++tried) {
      Endpoint& ep = endpoints_[current_];
      if (!ep.client) {
        ep.client = std::make_unique<httplib::Client>(ep.host, ep.port);
        ep.client->set_connection_timeout(std::chrono::seconds(2));
        ep.client->set_read_timeout(std::chrono::seconds(15));
        ep.client->set_keep_alive(true);
        ep.client->set_tcp_nodelay(true);  // no 40 ms Nagle stall per request
      }
      auto res = ep.client->Post(path, text, "application/json");
      if (!res) {
        errors +=
            fmt::format("; {}: {}", ep.Name(), httplib::to_string(res.error()));
        ep.client.reset();
        current_ = (current_ + 1) % endpoints_.size();
        continue;
      }
      json reply = json::parse(res->body, nullptr, false);
      if (res->status == 200 && reply.is_object()) return reply;
      const std::string message =
          reply.is_object() ? reply.value("message", reply.value("error", ""))
                            : Printable(res->body.substr(0, 200));
      // gRPC code 14 (unavailable) and 4 (deadline): a member without a
      // leader or quorum; another member may have one.
      const int64_t code = reply.is_object() ? Int(reply, "code") : 0;
      if (res->status == 503 || code == 14 || code == 4) {
        errors += fmt::format("; {}: {}", ep.Name(), message);
        current_ = (current_ + 1) % endpoints_.size();
        continue;
      }
      if (message.find("compacted") != std::string::npos) {
        return Status(Code::kConflict, "etcd: " + message);
      }
      return IoError(fmt::format("etcd {} {}: HTTP {}: {}", ep.Name(), path,
                                 res->status, message));
    }
    return Unavailable(
        fmt::format("the cluster store (etcd) cannot take requests: {}",
                    errors.empty() ? "no endpoint" : errors.substr(2)));
  }

  std::vector<Endpoint> endpoints_;
  std::string prefix_;
  size_t current_ = 0;
  std::mutex http_mutex_;
  std::mt19937_64 rng_{std::random_device{}()};
  // Begin's view: reads at read_revision_ (0: the latest).
  std::atomic<int64_t> read_revision_{0};
  int64_t change_mod_ = 0;
  int64_t change_count_ = 0;
  bool in_change_ = false;
};

Result<Endpoint> ParseEndpoint(std::string_view text) {
  const auto colon = text.rfind(':');
  Endpoint ep;
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgument(
        fmt::format("etcd endpoint '{}' must be HOST:PORT", Printable(text)));
  }
  ep.host = std::string(text.substr(0, colon));
  const auto port = text.substr(colon + 1);
  auto [p, ec] =
      std::from_chars(port.data(), port.data() + port.size(), ep.port);
  if (ec != std::errc() || p != port.data() + port.size() || ep.port < 1 ||
      ep.port > 65535) {
    return InvalidArgument(fmt::format(
        "etcd endpoint '{}': port must be 1 to 65535", Printable(text)));
  }
  for (char c : ep.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' ||
          c == '-')) {
      return InvalidArgument(
          fmt::format("etcd endpoint '{}': bad host name", Printable(text)));
    }
  }
  return ep;
}

}  // namespace

Result<std::unique_ptr<KvStore>> OpenEtcdKv(const std::string& uri) {
  constexpr std::string_view kScheme = "etcd://";
  if (uri.rfind(kScheme, 0) != 0) {
    return InvalidArgument(fmt::format("'{}' is not an etcd:// store", uri));
  }
  std::string_view rest = std::string_view(uri).substr(kScheme.size());
  std::string prefix = "/cvm";
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    prefix = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
    while (prefix.size() > 1 && prefix.back() == '/') prefix.pop_back();
    if (prefix == "/") {
      return InvalidArgument("etcd store prefix must not be empty");
    }
  }
  std::vector<Endpoint> endpoints;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    CVM_ASSIGN_OR_RETURN(Endpoint ep, ParseEndpoint(rest.substr(0, comma)));
    endpoints.push_back(std::move(ep));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  if (endpoints.empty()) {
    return InvalidArgument(
        "etcd store needs at least one endpoint: etcd://HOST:PORT[,...]");
  }
  auto kv = std::make_unique<EtcdKv>(std::move(endpoints), std::move(prefix));
  // Reachable now, or refused with the reason.
  CVM_ASSIGN_OR_RETURN(uint64_t n, kv->Count(Cf::kMeta));
  static_cast<void>(n);
  return std::unique_ptr<KvStore>(std::move(kv));
}

}  // namespace cvm
