// The HTTPS API (https_server.h) in-process over a real RocksDB store, real
// TLS (OpenSSL) and httplib clients: tokens and roles, plain HTTP refused,
// the OpenAPI document checked against the running server, /metrics. About
// 2 s in all.

#include <arpa/inet.h>
#include <httplib.h>
#include <linux/cvm.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ctime>
#include <set>
#include <sstream>
#include <thread>

#include "api_tokens.h"
#include "cluster_presence.h"
#include "https_client.h"
#include "https_server.h"
#include "log.h"
#include "metrics.h"
#include "rest_routes.h"
#include "test_util.h"
#include "tls_cert.h"

namespace cvm {
namespace {

using nlohmann::json;
using testing::TempDir;

class HttpsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogLevel(LogLevel::kWarn);
    StoreOptions store_options;
    store_options.sync = false;
    auto store = MetadataStore::Open(dir_.Sub("db"), store_options);
    ASSERT_OK(store);
    store_ = std::move(store).value();
    api_ = std::make_unique<Api>(*store_);
    ASSERT_OK(EnsureSelfSignedCert(Cert(), dir_.Sub("api.key"),
                                   {"localhost", "127.0.0.1"}));
    HttpsOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    options.cert_path = Cert();
    options.key_path = dir_.Sub("api.key");
    options.threads = 2;
    server_ = std::make_unique<HttpsServer>(*api_, *store_, options);
    ASSERT_OK(server_->Start());
    TokenAuthority tokens(*store_);
    const int64_t now = std::time(nullptr);
    auto admin = tokens.Create(TokenRole::kAdmin, "admin", 0, now);
    auto reader = tokens.Create(TokenRole::kReader, "reader", 3600, now);
    ASSERT_OK(admin);
    ASSERT_OK(reader);
    admin_ = admin->token;
    reader_ = reader->token;
  }
  void TearDown() override { server_->Stop(); }

  std::string Cert() const { return dir_.Sub("api.crt"); }

  std::unique_ptr<httplib::SSLClient> Client() {
    auto c = std::make_unique<httplib::SSLClient>("127.0.0.1", server_->port());
    c->set_ca_cert_path(Cert().c_str());
    c->enable_server_certificate_verification(true);
    c->set_connection_timeout(std::chrono::seconds(5));
    c->set_read_timeout(std::chrono::seconds(10));
    return c;
  }
  static httplib::Headers Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }
  // A request as the API takes it: GET with query, POST with JSON body.
  std::pair<int, json> Send(const std::string& method, const std::string& path,
                            const std::string& token,
                            const json& args = json::object()) {
    auto c = Client();
    httplib::Headers h = token.empty() ? httplib::Headers{} : Bearer(token);
    auto res = [&] {
      if (method == "GET") {
        httplib::Params params;
        for (const auto& [k, v] : args.items())
          params.emplace(k, RestQueryText(v));
        return c->Get(path, params, h);
      }
      return c->Post(path, h, args.dump(), "application/json");
    }();
    if (!res) {
      ADD_FAILURE() << method << " " << path << ": "
                    << httplib::to_string(res.error());
      return {0, json()};
    }
    return {res->status, json::parse(res->body, nullptr, false)};
  }
  std::pair<int, json> Op(const std::string& op, const std::string& token,
                          const json& args = json::object()) {
    return Send(std::string(RestMethodOf(op)), RestPathOf(op), token, args);
  }

  // Host h1 with device 1 (1 GiB), through the API as admin.
  void AddHostWithDevice() {
    ASSERT_EQ(Op("host.add", admin_,
                 {{"name", "h1"}, {"addresses", {"10.0.0.1:7800"}}})
                  .first,
              200);
    ASSERT_EQ(Op("device.add", admin_,
                 {{"host", "h1"}, {"path", "/dev/x"}, {"capacity", 1 << 30}})
                  .first,
              200);
  }

  TempDir dir_;
  std::unique_ptr<MetadataStore> store_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<HttpsServer> server_;
  std::string admin_, reader_;
};

TEST_F(HttpsApiTest, ReaderTokensReadAndCannotChangeAnything) {
  auto [s1, list] = Op("pool.list", reader_);
  EXPECT_EQ(s1, 200) << list;
  EXPECT_TRUE(list.value("ok", false));
  const json pool = {{"name", "p"},
                     {"policy", {{"type", "replicated"}, {"replicas", 1}}},
                     {"pg_num", 8}};
  auto [s2, refused] = Op("pool.create", reader_, pool);
  EXPECT_EQ(s2, 403) << refused;
  EXPECT_EQ(refused["error"]["code"], "permission_denied");
  EXPECT_NE(refused["error"]["message"].get<std::string>().find("admin"),
            std::string::npos);
  // Nothing was created.
  EXPECT_EQ(Op("pool.list", reader_).second["data"].size(), 0u);
  // Deleting, creating tokens, attaching: all changes, all refused.
  for (const char* op : {"volume.delete", "pool.delete", "token.create",
                         "token.revoke", "host.rotate_key", "volume.attach"}) {
    EXPECT_EQ(Op(op, reader_, {{"name", "p"}}).first, 403) << op;
  }
  // The admin token may.
  auto [s3, created] = Op("pool.create", admin_, pool);
  EXPECT_EQ(s3, 200) << created;
  EXPECT_EQ(Op("pool.list", reader_).second["data"].size(), 1u);
  auto [s4, deleted] = Op("pool.delete", admin_, {{"name", "p"}});
  EXPECT_EQ(s4, 200) << deleted;
}

TEST_F(HttpsApiTest, MissingUnknownExpiredAndRevokedTokensAreRefused) {
  TokenAuthority tokens(*store_);
  const int64_t now = std::time(nullptr);
  auto expired = tokens.Create(TokenRole::kAdmin, "old", 60, now - 120);
  auto revoked = tokens.Create(TokenRole::kAdmin, "gone", 0, now);
  ASSERT_OK(expired);
  ASSERT_OK(revoked);
  ASSERT_OK(tokens.Revoke(revoked->record.id));
  std::string tampered = admin_;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  const std::string unknown = "cvmtok:0123456789abcdef:" + std::string(64, 'a');
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no token", ""},
      {"not a token", "hello"},
      {"unknown", unknown},
      {"tampered secret", tampered},
      {"expired", expired->token},
      {"revoked", revoked->token}};
  for (const auto& [what, token] : cases) {
    for (const std::string op : {"status", "pool.create"}) {
      auto [status, body] = Op(op, token, {{"name", "x"}});
      EXPECT_EQ(status, 401) << what << " " << op << ": " << body;
      EXPECT_FALSE(body.value("ok", true)) << what;
    }
    auto c = Client();
    auto res =
        token.empty() ? c->Get("/metrics") : c->Get("/metrics", Bearer(token));
    ASSERT_TRUE(res) << what;
    EXPECT_EQ(res->status, 401) << what;
    EXPECT_EQ(res->get_header_value("WWW-Authenticate"),
              "Bearer realm=\"cvmd\"");
  }
  EXPECT_NE(Op("status", expired->token)
                .second["error"]["message"]
                .get<std::string>()
                .find("expired"),
            std::string::npos);
  // A refused admin token changed nothing.
  EXPECT_EQ(Op("pool.list", reader_).second["data"].size(), 0u);
  // Revoking through the API works the same way.
  auto [s, listed] = Op("token.list", admin_);
  ASSERT_EQ(s, 200);
  std::string reader_id;
  for (const json& t : listed["data"]) {
    EXPECT_FALSE(t.contains("secret_sha256")) << t;
    if (t["name"] == "reader") reader_id = t["id"];
  }
  ASSERT_FALSE(reader_id.empty());
  EXPECT_EQ(Op("token.revoke", admin_, {{"id", reader_id}}).first, 200);
  EXPECT_EQ(Op("status", reader_).first, 401);
}

TEST_F(HttpsApiTest, PlainHttpIsRefused) {
  // httplib's plain client gets no HTTP answer from the TLS port.
  httplib::Client plain("127.0.0.1", server_->port());
  plain.set_connection_timeout(std::chrono::seconds(2));
  plain.set_read_timeout(std::chrono::seconds(2));
  auto res = plain.Get("/v1/status", Bearer(admin_));
  EXPECT_FALSE(res) << "plain HTTP answered " << res->status;
  // Nor does a raw request: whatever comes back is not HTTP.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(server_->port());
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  const std::string req = "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(req.size()));
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[512];
  const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  ::close(fd);
  EXPECT_FALSE(n >= 5 && std::string(buf, 5) == "HTTP/")
      << std::string(buf, n > 0 ? n : 0);
  // And cvmadm's client refuses an http:// URL before sending a token.
  auto client = HttpsApiClient::Create(
      {"http://127.0.0.1:" + std::to_string(server_->port()), admin_, "",
       std::chrono::seconds(2)});
  EXPECT_EQ(client.status().code(), Code::kInvalidArgument);
}

// Review finding: bytes that are not UTF-8 in a path or query went into a
// JSON message whose dump() threw outside httplib's try (std::terminate:
// one request with no token stopped cvmd). Now each is answered and the
// server keeps serving.
TEST_F(HttpsApiTest, BytesThatAreNotUtf8AreAnsweredNotFatal) {
  auto c = Client();
  for (const char* path : {"/%ff", "/v1/%ff", "/v1/volume/%fe%ff"}) {
    auto res = c->Get(path, Bearer(admin_));
    ASSERT_TRUE(res) << path << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_TRUE(json::parse(res->body, nullptr, false).is_object())
        << res->body;
  }
  auto dup = c->Get("/v1/volume/get?n%ffame=1&n%ffame=2", Bearer(reader_));
  ASSERT_TRUE(dup);
  EXPECT_EQ(dup->status, 400) << dup->body;
  EXPECT_TRUE(dup->get_header_value("EXCEPTION_WHAT").empty());
  EXPECT_EQ(Op("status", reader_).first, 200);
}

// Review finding: map.wait (a read) held the API's lock for its whole
// timeout, which had no bound: one reader token could stop cvmd's local
// socket. Now it is capped and runs beside other calls.
TEST_F(HttpsApiTest, MapWaitNeitherBlocksOtherCallsNorWaitsForever) {
  LocalPresence presence("h1", json::object());
  ASSERT_OK(presence.Publish({{"map_epoch", 0}}));  // a cvm.ko behind
  api_->SetPresence(&presence);
  auto [too_long, body] =
      Op("map.wait", reader_, {{"epoch", 5}, {"timeout_ms", 1ULL << 40}});
  EXPECT_EQ(too_long, 400) << body;
  std::thread waiter([&] {
    auto [status, answer] =
        Op("map.wait", reader_, {{"epoch", 5}, {"timeout_ms", 1500}});
    EXPECT_EQ(status, 503) << answer;  // not installed: it timed out
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_OK(api_->Call("status", json::object()));
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(700));
  waiter.join();
  api_->SetPresence(nullptr);
}

TEST_F(HttpsApiTest, UntrustedServerCertificateIsRefused) {
  TempDir other;
  ASSERT_OK(EnsureSelfSignedCert(other.Sub("c.crt"), other.Sub("c.key"),
                                 {"localhost"}));
  auto client = HttpsApiClient::Create(
      {"https://127.0.0.1:" + std::to_string(server_->port()), admin_,
       other.Sub("c.crt"), std::chrono::seconds(5)});
  ASSERT_OK(client);
  auto r = (*client)->Call("status");
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
  EXPECT_FALSE((*client)->answered());
  EXPECT_NE(r.status().message().find("not trusted"), std::string::npos)
      << r.status().message();
  // With the server's own certificate it is answered.
  auto good = HttpsApiClient::Create(
      {"https://127.0.0.1:" + std::to_string(server_->port()), admin_, Cert(),
       std::chrono::seconds(5)});
  ASSERT_OK(good);
  ASSERT_OK((*good)->Call("status"));
}

// A small JSON Schema check: type, enum, required, properties, items,
// allOf and local $refs: what userspace/lib/openapi.json uses.
std::string SchemaProblem(const json& doc, const json& schema, const json& v,
                          const std::string& where) {
  if (schema.contains("$ref")) {
    std::string ref = schema["$ref"];
    EXPECT_TRUE(ref.starts_with("#/")) << ref;
    return SchemaProblem(doc, doc.at(json::json_pointer(ref.substr(1))), v,
                         where);
  }
  const json all_of = schema.value("allOf", json::array());
  for (const json& s : all_of) {
    if (auto p = SchemaProblem(doc, s, v, where); !p.empty()) return p;
  }
  if (schema.contains("type")) {
    const std::string t = schema["type"];
    const bool ok =
        (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
        (t == "string" && v.is_string()) ||
        (t == "integer" && v.is_number_integer()) ||
        (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean());
    if (!ok) return where + ": not " + t + ": " + v.dump();
  }
  if (schema.contains("enum") &&
      std::find(schema["enum"].begin(), schema["enum"].end(), v) ==
          schema["enum"].end())
    return where + ": not in enum";
  if (v.is_object()) {
    const json required = schema.value("required", json::array());
    for (const json& r : required) {
      if (!v.contains(r.get<std::string>()))
        return where + ": lacks " + r.get<std::string>();
    }
    const json properties = schema.value("properties", json::object());
    for (const auto& [k, s] : properties.items()) {
      if (v.contains(k)) {
        if (auto p = SchemaProblem(doc, s, v[k], where + "." + k); !p.empty())
          return p;
      }
    }
  }
  if (v.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < v.size(); ++i) {
      if (auto p = SchemaProblem(doc, schema["items"], v[i],
                                 where + "[" + std::to_string(i) + "]");
          !p.empty())
        return p;
    }
  }
  return "";
}

TEST_F(HttpsApiTest, OpenApiDocumentDescribesTheRunningServer) {
  // Something to list, so list answers are checked item by item.
  AddHostWithDevice();
  ASSERT_EQ(Op("pool.create", admin_,
               {{"name", "p"},
                {"policy", {{"type", "replicated"}, {"replicas", 1}}},
                {"pg_num", 8}})
                .first,
            200);
  ASSERT_EQ(Op("volume.create", admin_,
               {{"name", "v"}, {"pool", "p"}, {"size", 1 << 20}})
                .first,
            200);

  auto c = Client();
  auto res = c->Get("/v1/openapi.json");  // no token needed
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const json doc = json::parse(res->body, nullptr, false);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["openapi"], "3.0.3");
  const json& paths = doc["paths"];

  // Every op the server runs is described, at its path and method, with
  // the role it needs.
  auto [s, ops] = Op("ops", reader_);
  ASSERT_EQ(s, 200);
  std::set<std::string> described;
  for (const json& op_json : ops["data"]) {
    const std::string op = op_json;
    const std::string path = RestPathOf(op);
    std::string method(RestMethodOf(op));
    std::transform(method.begin(), method.end(), method.begin(), ::tolower);
    ASSERT_TRUE(paths.contains(path)) << op << " is not described";
    ASSERT_TRUE(paths[path].contains(method))
        << path << " is described without " << method;
    EXPECT_EQ(paths[path].size(), 1u) << path;
    EXPECT_EQ(paths[path][method]["operationId"], op);
    EXPECT_EQ(paths[path][method]["x-cvm-role"],
              ApiOpReadOnly(op) ? "reader" : "admin");
    described.insert(path);
  }
  // Every described endpoint exists, answers in its described shape, and
  // refuses arguments it does not describe.
  for (const auto& [path, item] : paths.items()) {
    for (const auto& [method, operation] : item.items()) {
      if (path == "/metrics" || path == "/v1/openapi.json") continue;
      ASSERT_TRUE(described.count(path)) << path << " is no op of the server";
      const std::string m = method == "get" ? "GET" : "POST";
      // An undocumented argument is refused by name.
      auto [bad_status, bad] = Send(m, path, admin_, {{"zz_undocumented", 1}});
      EXPECT_EQ(bad_status, 400) << path << ": " << bad;
      // ... and the server's list of what it takes is the document's.
      const std::string message = bad["error"].value("message", "");
      const size_t at = message.find("(expected: ");
      ASSERT_NE(at, std::string::npos) << path << ": " << message;
      std::set<std::string> taken;
      std::stringstream names(
          message.substr(at + 11, message.size() - at - 12));
      for (std::string n; std::getline(names, n, ',');) {
        n.erase(0, n.find_first_not_of(' '));
        if (n != "none") taken.insert(n);
      }
      std::set<std::string> documented;
      const json parameters = operation.value("parameters", json::array());
      for (const json& p : parameters) documented.insert(p["name"]);
      if (operation.contains("requestBody")) {
        const json props =
            operation["requestBody"]["content"]["application/json"]["schema"]
                .value("properties", json::object());
        for (const auto& [k, v] : props.items()) documented.insert(k);
      }
      EXPECT_EQ(taken, documented) << path;
      // Reads with no required argument answer now; their data must fit.
      if (m != "GET") continue;
      bool needs_args = false;
      for (const json& p : parameters) needs_args |= p.value("required", false);
      if (needs_args) continue;
      auto [status, body] = Send(m, path, reader_);
      ASSERT_EQ(status, 200) << path << ": " << body;
      const json& schema = operation["responses"]["200"]["content"]
                                    ["application/json"]["schema"];
      EXPECT_EQ(SchemaProblem(doc, schema, body, path), "");
    }
  }
  // The documented parameters of a read with arguments are the ones it
  // takes: volume.get by name.
  auto [gs, got] = Send("GET", "/v1/volume/get", reader_, {{"name", "v"}});
  EXPECT_EQ(gs, 200) << got;
  EXPECT_EQ(SchemaProblem(doc,
                          paths["/v1/volume/get"]["get"]["responses"]["200"]
                               ["content"]["application/json"]["schema"],
                          got, "volume.get"),
            "");
  // Unknown paths and methods.
  EXPECT_EQ(Send("GET", "/v1/volume/frobnicate", admin_).first, 404);
  EXPECT_EQ(Send("GET", "/v1/volume/create", admin_).first, 405);
  auto del = c->Delete("/v1/volume/delete", Bearer(admin_));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
}

TEST_F(HttpsApiTest, MetricsNeedATokenAndDescribeTheCluster) {
  AddHostWithDevice();
  auto c = Client();
  auto res = c->Get("/metrics", Bearer(reader_));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_TRUE(res->get_header_value("Content-Type").starts_with("text/plain"));
  const std::string& text = res->body;
  EXPECT_NE(text.find("cvm_device_capacity_bytes{device=\"1\",host=\"h1\"} "
                      "1073741824\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("cvm_device_up{device=\"1\",host=\"h1\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("# TYPE cvm_volume_request_duration_seconds histogram"),
            std::string::npos);
  EXPECT_NE(text.find("cvm_recovery_moving_pgs 0\n"), std::string::npos);
}

TEST(MetricsTest, LatencyHistogramFromTheKernelIsCumulative) {
  std::string line_r = "read 3 3500", line_w = "write 0 0";
  for (int i = 0; i < CVM_LATENCY_BUCKETS; ++i) {
    line_r += i == 0 ? " 1" : i == 1 ? " 2" : " 0";
    line_w += " 0";
  }
  auto parsed = ParseLatency(line_r + "\n" + line_w + "\n");
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->first.count, 3u);
  // Counts that do not add up, a short line, a wrong name: refused.
  EXPECT_FALSE(
      ParseLatency("read 4 3500" + line_r.substr(11) + "\n" + line_w).ok());
  EXPECT_FALSE(ParseLatency("read 3 3500 1 2\n" + line_w).ok());
  EXPECT_FALSE(ParseLatency(line_w + "\n" + line_r).ok());
  MetricsInput in;
  VolumeIoStats v;
  v.name = "db\"1";
  v.minor = 0;
  v.has_latency = true;
  v.read_latency = parsed->first;
  v.write_latency = parsed->second;
  in.volumes.push_back(v);
  const std::string text = RenderMetrics(in);
  const std::string base =
      "cvm_volume_request_duration_seconds_bucket{volume=\"db\\\"1\",op="
      "\"read\",le=";
  EXPECT_NE(text.find(base + "\"1e-06\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find(base + "\"2e-06\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find(base + "\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("cvm_volume_request_duration_seconds_sum{volume="
                      "\"db\\\"1\",op=\"read\"} 0.000003500\n"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace cvm
