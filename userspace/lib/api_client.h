#pragma once

// Client side of the local API socket: sends one request line, reads one
// response line, with a deadline on both so a stuck daemon cannot hang the
// caller.

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "status.h"
#include "unique_fd.h"

namespace cvm {

// What cvmadm calls: the local socket (ApiClient) or the HTTPS API
// (HttpsApiClient, https_client.h).
class ApiCaller {
 public:
  virtual ~ApiCaller() = default;
  // Runs `op`; returns the response's data, or its error as a Status with
  // the daemon's code and message.
  virtual Result<nlohmann::json> Call(
      std::string_view op,
      const nlohmann::json& args = nlohmann::json::object()) = 0;
  // Whether the last call got cvmd's answer (an error or not), rather than
  // failing to connect, send or read one.
  virtual bool answered() const = 0;
};

class ApiClient : public ApiCaller {
 public:
  explicit ApiClient(
      std::string socket_path,
      std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Runs `op`; returns the response's data, or its error as a Status with the
  // daemon's code and message. Connects on first use.
  Result<nlohmann::json> Call(
      std::string_view op,
      const nlohmann::json& args = nlohmann::json::object()) override;

  // Sends raw text (a line is appended) and returns the raw response object;
  // for tests of malformed input.
  Result<nlohmann::json> CallRaw(std::string_view request_text);

  const std::string& socket_path() const { return socket_path_; }
  bool answered() const override { return answered_; }

 private:
  Status EnsureConnected();
  Status SendAll(std::string_view data,
                 std::chrono::steady_clock::time_point deadline);
  Result<std::string> ReadLine(std::chrono::steady_clock::time_point deadline);

  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  UniqueFd fd_;
  std::string buffer_;  // bytes read past the last line
  bool answered_ = false;
};

}  // namespace cvm
