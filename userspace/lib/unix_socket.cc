#include "unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>

#include <cstring>

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

Result<UniqueFd> ConnectUnix(const std::string& path,
                             std::chrono::milliseconds timeout) {
  sockaddr_un addr;
  CVM_RETURN_IF_ERROR(MakeUnixAddress(path, &addr));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return IoError(fmt::format("socket: {}", strerror(errno)));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      const int err = errno;
      return Unavailable(
          fmt::format("cannot connect to cvmd at {}: {}", path, strerror(err)));
    }
    // A full backlog: wait for the connection to complete.
    pollfd p{fd.get(), POLLOUT, 0};
    int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n <= 0) {
      return Status(Code::kTimeout,
                    fmt::format("connecting to cvmd at {} timed out", path));
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return Unavailable(
          fmt::format("cannot connect to cvmd at {}: {}", path, strerror(err)));
    }
  }
  return fd;
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
