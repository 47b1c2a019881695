#include "unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace cvm {

Status MakeUnixAddress(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr->sun_path)) {
    return InvalidArgument(
        fmt::format("socket path '{}' must be 1 to {} characters", path,
                    sizeof(addr->sun_path) - 1));
  }
  std::memcpy(addr->sun_path, path.data(), path.size());
  return {};
}

// A unix socket's connect does not wait for a full listen backlog: it fails
// with EAGAIN and leaves the socket unconnected (a later send says "Transport
// endpoint is not connected"). So it is retried, with a growing pause, until
// the server takes the connection or `timeout` passes.
Result<UniqueFd> ConnectUnix(const std::string& path,
                             std::chrono::milliseconds timeout) {
  sockaddr_un addr;
  CVM_RETURN_IF_ERROR(MakeUnixAddress(path, &addr));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    UniqueFd fd(
        ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return IoError(fmt::format("socket: {}", strerror(errno)));
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) ==
        0) {
      return fd;
    }
    const int err = errno;
    if (err != EAGAIN && err != EINTR) {
      return Unavailable(
          fmt::format("cannot connect to cvmd at {}: {}", path, strerror(err)));
    }
    if (std::chrono::steady_clock::now() + pause > deadline) {
      return Status(Code::kTimeout,
                    fmt::format("connecting to cvmd at {} timed out after {} "
                                "ms: its backlog stayed full",
                                path, timeout.count()));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

Result<bool> SocketIsLive(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return IoError(fmt::format("cannot stat {}: {}", path, strerror(errno)));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return InvalidArgument(fmt::format(
        "{} exists and is not a socket; refusing to replace it", path));
  }
  auto fd = ConnectUnix(path, std::chrono::milliseconds(1000));
  if (fd.ok()) return true;
  if (fd.status().code() == Code::kTimeout) return true;  // alive but busy
  return false;
}

}  // namespace cvm
