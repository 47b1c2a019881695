#pragma once

// The remote API: the local API's ops over HTTPS (rest_routes.h), for
// holders of a bearer token (api_tokens.h). TLS only: a plain HTTP request
// on the port gets no answer but a failed handshake. A request without a
// valid token is 401, a reader token asking for a change 403. Also serves
// GET /metrics (Prometheus text, any token) and GET /v1/openapi.json (the
// description of every endpoint, no token: it holds no secret).
// Runs its own threads; Api serializes the calls.

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "api.h"
#include "api_tokens.h"
#include "status.h"

namespace httplib {
class SSLServer;
}

namespace cvm {

struct HttpsOptions {
  std::string address = "0.0.0.0";
  int port = 7480;  // 0: any free port (tests)
  std::string cert_path;
  std::string key_path;
  int threads = 4;
  std::chrono::seconds io_timeout{30};
};

class HttpsServer {
 public:
  HttpsServer(Api& api, MetadataStore& store, HttpsOptions options);
  ~HttpsServer();  // stops
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  // Loads the certificate and key, binds and serves in the background.
  Status Start();
  void Stop();
  // The bound port (after Start).
  int port() const { return port_; }

 private:
  Api& api_;
  TokenAuthority tokens_;
  HttpsOptions options_;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
};

// The OpenAPI document served at /v1/openapi.json
// (userspace/lib/openapi.json, built in).
std::string_view OpenApiDocument();

}  // namespace cvm
