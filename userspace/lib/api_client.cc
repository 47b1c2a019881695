#include "api_client.h"

#include <errno.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstring>

#include "json_fields.h"
#include "unix_socket.h"

namespace cvm {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int MillisLeft(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

}  // namespace

ApiClient::ApiClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Status ApiClient::EnsureConnected() {
  if (fd_.valid()) return {};
  auto fd = ConnectUnix(socket_path_, timeout_);
  if (!fd.ok()) {
    return Status(fd.status().code(),
                  fd.status().message() + " (is cvmd running?)");
  }
  // Only a cvmd run by root (or by this user) is believed.
  CVM_RETURN_IF_ERROR(CheckServerPeer(fd->get(), socket_path_));
  fd_ = std::move(fd).value();
  return {};
}

Status ApiClient::SendAll(std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd_.get(), POLLOUT, 0};
      if (::poll(&p, 1, MillisLeft(deadline)) <= 0) {
        return Status(Code::kTimeout, "timed out sending to cvmd");
      }
      continue;
    }
    return Unavailable(fmt::format("send to cvmd failed: {}", strerror(errno)));
  }
  return {};
}

Result<std::string> ApiClient::ReadLine(Clock::time_point deadline) {
  for (;;) {
    const size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, MillisLeft(deadline));
    if (ready == 0) {
      return Status(
          Code::kTimeout,
          fmt::format("cvmd did not answer within {} ms", timeout_.count()));
    }
    if (ready < 0) {
      if (errno == EINTR) continue;
      return IoError(fmt::format("poll: {}", strerror(errno)));
    }
    char buf[64 * 1024];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return Unavailable(
        n == 0 ? std::string("cvmd closed the connection")
               : fmt::format("recv from cvmd: {}", strerror(errno)));
  }
}

Result<json> ApiClient::CallRaw(std::string_view request_text) {
  answered_ = false;
  CVM_RETURN_IF_ERROR(EnsureConnected());
  const auto deadline = Clock::now() + timeout_;
  std::string line(request_text);
  line += '\n';
  Status s = SendAll(line, deadline);
  Result<std::string> reply = ReadLine(
      s.ok() ? deadline : Clock::now() + std::chrono::milliseconds(100));
  if (!s.ok()) {
    // A cvmd that refused this client said why before it closed; that
    // reason is the error, not the broken pipe.
    auto refused = reply.ok() ? json::parse(*reply, nullptr, false) : json();
    if (!refused.is_object() || refused.value("ok", true)) reply = s;
    fd_.reset();  // closed by the other end: the next call starts over
    buffer_.clear();
  }
  if (!reply.ok()) {
    fd_.reset();  // the stream may be out of step now; start over next time
    buffer_.clear();
    return reply.status();
  }
  answered_ = true;
  json response = json::parse(*reply, nullptr, /*allow_exceptions=*/false);
  if (response.is_discarded() || !response.is_object()) {
    fd_.reset();
    return Status(
        Code::kBadRequest,
        fmt::format("cvmd sent a malformed response: {}", Printable(*reply)));
  }
  return response;
}

Result<json> ApiClient::Call(std::string_view op, const json& args) {
  const json request = {{"op", op}, {"args", args}};
  CVM_ASSIGN_OR_RETURN(json response, CallRaw(DumpJson(request)));
  JsonFields f(response, "response field", Code::kBadRequest);
  const bool ok = f.Bool("ok");
  CVM_RETURN_IF_ERROR(f.status());
  if (ok) {
    const json* data = f.Raw("data");
    return data ? *data : json();
  }
  const json* error = f.Raw("error");
  if (error == nullptr)
    return Status(Code::kBadRequest, "response has no error");
  JsonFields e(*error, "error field", Code::kBadRequest);
  const std::string code = e.String("code");
  const std::string message = e.String("message");
  CVM_RETURN_IF_ERROR(e.status());
  Code c = CodeFromName(code);
  if (c == Code::kOk) c = Code::kInternal;
  return Status(c, message);
}

}  // namespace cvm
