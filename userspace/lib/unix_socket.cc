#include "unix_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
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

Status CheckSocketDirectory(const std::string& socket_path) {
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(socket_path).parent_path();
  if (dir.empty()) dir = ".";
  const std::filesystem::path real = std::filesystem::canonical(dir, ec);
  if (ec) {
    return IoError(fmt::format("socket {}: cannot resolve its directory: {}",
                               socket_path, ec.message()));
  }
  const uid_t me = ::geteuid();
  bool own_directory = true;  // the socket's, then its ancestors
  for (std::filesystem::path p = real;; p = p.parent_path()) {
    struct stat st;
    if (::stat(p.c_str(), &st) != 0) {
      return IoError(fmt::format("socket {}: cannot stat {}: {}", socket_path,
                                 p.string(), strerror(errno)));
    }
    if (st.st_uid != 0 && st.st_uid != me) {
      return PermissionDenied(fmt::format(
          "refusing socket {}: directory {} is owned by uid {}, who could "
          "replace the socket",
          socket_path, p.string(), st.st_uid));
    }
    const bool group_writes = st.st_mode & S_IWGRP;
    const bool others_write = (st.st_mode & S_IWOTH) || group_writes;
    if (others_write && (own_directory || !(st.st_mode & S_ISVTX))) {
      return PermissionDenied(fmt::format(
          "refusing socket {}: directory {} is writable by {} (mode {:04o}), "
          "who could replace the socket",
          socket_path, p.string(),
          (st.st_mode & S_IWOTH) ? "others" : "its group", st.st_mode & 07777));
    }
    own_directory = false;
    if (p == p.parent_path()) break;
  }
  return {};
}

Result<PeerCredentials> GetPeerCredentials(int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return IoError(fmt::format("SO_PEERCRED: {}", strerror(errno)));
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

Result<std::vector<gid_t>> GetPeerGroups(int fd) {
  std::vector<gid_t> groups(64);
  for (;;) {
    auto len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      return groups;
    }
    if (errno != ERANGE) {
      return IoError(fmt::format("SO_PEERGROUPS: {}", strerror(errno)));
    }
    groups.resize(len / sizeof(gid_t) + 1);  // the kernel said how many
  }
}

Status CheckServerPeer(int fd, const std::string& path) {
  CVM_ASSIGN_OR_RETURN(PeerCredentials peer, GetPeerCredentials(fd));
  if (peer.uid == 0 || peer.uid == ::geteuid()) return {};
  return PermissionDenied(fmt::format(
      "refusing to talk to {}: it is served by uid {} (pid {}), not by root: "
      "not cvmd",
      path, peer.uid, peer.pid));
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
