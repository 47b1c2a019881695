#pragma once

// The HTTPS API's client (cvmadm --url): each op as its endpoint
// (rest_routes.h), the token as a bearer, the server's certificate checked
// against --ca-cert (or the system's CAs) and its name.

#include <chrono>
#include <memory>
#include <string>

#include "api_client.h"

namespace httplib {
class SSLClient;
}

namespace cvm {

struct HttpsClientOptions {
  std::string url;      // https://HOST:PORT
  std::string token;    // cvmtok:ID:SECRET
  std::string ca_cert;  // PEM file; empty: the system's CAs
  std::chrono::milliseconds timeout{30000};
};

// Reads a token file: one line, this user's alone (not readable by group or
// others, as ssh treats keys).
Result<std::string> ReadTokenFile(const std::string& path);

class HttpsApiClient : public ApiCaller {
 public:
  // Refuses a URL that is not https://HOST[:PORT][/].
  static Result<std::unique_ptr<HttpsApiClient>> Create(
      HttpsClientOptions options);
  ~HttpsApiClient() override;

  Result<nlohmann::json> Call(
      std::string_view op,
      const nlohmann::json& args = nlohmann::json::object()) override;
  bool answered() const override { return answered_; }

  // GET of a path outside the ops (/metrics, /v1/openapi.json): the body
  // and HTTP status.
  Result<std::pair<int, std::string>> GetRaw(const std::string& path);

 private:
  explicit HttpsApiClient(HttpsClientOptions options);

  HttpsClientOptions options_;
  std::unique_ptr<httplib::SSLClient> client_;
  bool answered_ = false;
};

}  // namespace cvm
