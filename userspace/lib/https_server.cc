#include "https_server.h"

#include <fmt/format.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <ctime>
#include <set>

#include "json_fields.h"
#include "log.h"
#include "openapi_json.h"
#include "rest_routes.h"

namespace cvm {
namespace {

using json = nlohmann::json;

// DumpJson replaces bytes that are not UTF-8 (a request's path is the
// caller's): json::dump would throw.
void Reply(httplib::Response& res, int http_status, const json& body) {
  res.status = http_status;
  res.set_content(DumpJson(body) + "\n", "application/json");
}

void ReplyError(httplib::Response& res, const Status& s) {
  Reply(res, HttpStatusOf(s.code()), ErrorResponse(s));
}

// 401: no token, or one that is unknown, revoked or expired.
void ReplyUnauthenticated(httplib::Response& res, const Status& s) {
  res.set_header("WWW-Authenticate", "Bearer realm=\"cvmd\"");
  Reply(res, 401, ErrorResponse(s));
}

std::string OpensslError() {
  char buf[256] = "no detail";
  if (const unsigned long e = ERR_get_error(); e != 0)
    ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

}  // namespace

std::string_view OpenApiDocument() { return kOpenApiJson; }

HttpsServer::HttpsServer(Api& api, MetadataStore& store, HttpsOptions options)
    : api_(api), tokens_(store), options_(std::move(options)) {}

HttpsServer::~HttpsServer() { Stop(); }

void HttpsServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

Status HttpsServer::Start() {
  std::string tls_error;
  server_ = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(&ctx, options_.cert_path.c_str()) !=
        1) {
      tls_error =
          fmt::format("certificate {}: {}", options_.cert_path, OpensslError());
      return false;
    }
    if (SSL_CTX_use_PrivateKey_file(&ctx, options_.key_path.c_str(),
                                    SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1) {
      tls_error =
          fmt::format("private key {}: {}", options_.key_path, OpensslError());
      return false;
    }
    return true;
  });
  if (!server_->is_valid()) {
    return InvalidArgument(
        "HTTPS API: " + (tls_error.empty() ? "TLS set-up failed" : tls_error));
  }
  httplib::SSLServer& s = *server_;
  // httplib owns the queue it asks for (its API takes a raw pointer).
  s.new_task_queue = [n = options_.threads] {
    return new httplib::ThreadPool(n);
  };
  s.set_payload_max_length(kMaxRequestBytes);
  s.set_read_timeout(options_.io_timeout);
  s.set_write_timeout(options_.io_timeout);
  s.set_keep_alive_timeout(5);

  std::set<std::string> ops;
  for (const std::string& op : api_.Ops()) ops.insert(op);

  // The caller's token, or the 401 already written.
  const auto authenticate =
      [this](const httplib::Request& req,
             httplib::Response& res) -> std::optional<ApiToken> {
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (!std::string_view(header).starts_with(kBearer)) {
      ReplyUnauthenticated(
          res, PermissionDenied("this API needs a token: 'Authorization: "
                                "Bearer cvmtok:ID:SECRET' (cvmadm token "
                                "create)"));
      return std::nullopt;
    }
    auto token = tokens_.Verify(std::string_view(header).substr(kBearer.size()),
                                std::time(nullptr));
    if (token.ok()) return *token;
    if (token.status().code() == Code::kPermissionDenied) {
      LogInfo("HTTPS API: {} refused: {}", req.remote_addr,
              token.status().message());
      ReplyUnauthenticated(res, token.status());
      return std::nullopt;
    }
    // The store could not say (etcd down, a bad record): not the caller's
    // fault, and nothing of the record goes to an unauthenticated caller.
    LogWarn("HTTPS API: checking a token from {}: {}", req.remote_addr,
            token.status().message());
    ReplyError(res, Unavailable("cannot check the token now; try again"));
    return std::nullopt;
  };

  const auto serve_op = [this, ops, authenticate](const httplib::Request& req,
                                                  httplib::Response& res) {
    const std::optional<std::string> op = RestOpOf(req.path);
    if (!op || !ops.count(*op)) {
      ReplyError(res,
                 Status(Code::kUnknownOp,
                        fmt::format("no endpoint {} (GET {} lists them)",
                                    Printable(req.path), RestPathOf("ops"))));
      return;
    }
    const std::string_view method = RestMethodOf(*op);
    if (req.method != method) {
      res.set_header("Allow", std::string(method));
      Reply(res, 405,
            ErrorResponse(BadRequest(fmt::format(
                "{} takes {}, not {}", req.path, method, req.method))));
      return;
    }
    const std::optional<ApiToken> token = authenticate(req, res);
    if (!token) return;
    if (token->role != TokenRole::kAdmin && !ApiOpReadOnly(*op)) {
      LogInfo("HTTPS API: {} by reader token {} from {} refused", *op,
              token->id, req.remote_addr);
      ReplyError(res, PermissionDenied(fmt::format(
                          "{} changes the cluster: it needs an admin token, "
                          "and token {} is a reader",
                          *op, token->id)));
      return;
    }
    json args = json::object();
    if (req.method == "GET") {
      for (const auto& [key, value] : req.params) {
        if (args.contains(key)) {
          ReplyError(res,
                     BadRequest(fmt::format("query parameter '{}' given twice",
                                            Printable(key))));
          return;
        }
        args[key] = RestQueryValue(value);
      }
    } else if (!req.body.empty()) {
      Result<json> body = ParseRequestJson(req.body);
      if (!body.ok()) {
        ReplyError(res, body.status());
        return;
      }
      args = std::move(*body);
    }
    Result<json> result = api_.Call(*op, args);
    const std::string outcome = result.ok() ? "ok" : result.status().ToString();
    if (ApiOpReadOnly(*op)) {
      LogDebug("HTTPS API: {} by token {} from {}: {}", *op, token->id,
               req.remote_addr, outcome);
    } else {
      LogInfo("HTTPS API: {} by token {} ({}) from {}: {}", *op, token->id,
              token->name, req.remote_addr, outcome);
    }
    if (!result.ok()) {
      ReplyError(res, result.status());
      return;
    }
    Reply(res, 200, OkResponse(std::move(result).value()));
  };

  s.Get(std::string(kRestPrefix) + "openapi.json",
        [](const httplib::Request&, httplib::Response& res) {
          res.set_content(std::string(kOpenApiJson), "application/json");
        });
  s.Get("/metrics", [this, authenticate](const httplib::Request& req,
                                         httplib::Response& res) {
    if (!authenticate(req, res)) return;
    Result<json> metrics = api_.Call("metrics", json::object());
    if (!metrics.ok()) {
      ReplyError(res, metrics.status());
      return;
    }
    res.set_content((*metrics)["text"].get<std::string>(),
                    "text/plain; version=0.0.4");
  });
  const std::string pattern = std::string(kRestPrefix) + ".*";
  s.Get(pattern, serve_op);
  s.Post(pattern, serve_op);
  const auto no_such_method = [](const httplib::Request& req,
                                 httplib::Response& res) {
    Reply(res, 405,
          ErrorResponse(BadRequest(fmt::format(
              "{} is not a method of this API (GET reads, POST changes)",
              req.method))));
  };
  s.Put(pattern, no_such_method);
  s.Delete(pattern, no_such_method);
  s.Patch(pattern, no_such_method);
  // httplib calls this outside its own try: it must not throw.
  s.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    try {
      const bool missing = res.status == 404;
      const std::string what =
          missing ? fmt::format("no endpoint {} {}", Printable(req.method),
                                Printable(req.path))
                  : fmt::format(
                        "HTTP {}: the request was refused (too large, "
                        "malformed or unsupported)",
                        res.status);
      Reply(res, res.status,
            ErrorResponse(
                Status(missing ? Code::kUnknownOp : Code::kBadRequest, what)));
    } catch (...) {
      res.body.clear();
    }
  });
  // A handler's exception is a 500 with a fixed text (httplib would send
  // e.what() in a header).
  s.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        res.status = 500;
        res.set_content(R"({"ok":false,"error":{"code":"internal",)"
                        R"("message":"internal error"}})"
                        "\n",
                        "application/json");
      });

  if (options_.port == 0) {
    port_ = s.bind_to_any_port(options_.address);
    if (port_ < 0) port_ = 0;
  } else if (s.bind_to_port(options_.address, options_.port)) {
    port_ = options_.port;
  }
  if (port_ == 0) {
    return IoError(fmt::format("HTTPS API: cannot listen on {}:{}",
                               options_.address, options_.port));
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  return Status::Ok();
}

}  // namespace cvm
