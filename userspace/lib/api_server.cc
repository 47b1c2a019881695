#include "api_server.h"

#include <errno.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <vector>

#include "json_fields.h"
#include "log.h"
#include "unix_socket.h"

namespace cvm {

using Clock = std::chrono::steady_clock;

struct ApiServer::Connection {
  UniqueFd fd;
  uint64_t id = 0;
  std::string in;   // bytes received, not yet a complete line
  std::string out;  // responses not yet sent
  Clock::time_point last_active;
  bool read_closed = false;  // peer finished sending, or we stopped reading
};

ApiServer::ApiServer(Api& api, ServerOptions options)
    : api_(api),
      options_(std::move(options)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

ApiServer::~ApiServer() {
  if (bound_) {
    listen_fd_.reset();
    ::unlink(options_.socket_path.c_str());
  }
}

Status ApiServer::Listen() {
  if (!wake_fd_.valid())
    return IoError(fmt::format("eventfd: {}", strerror(errno)));
  const std::string& path = options_.socket_path;
  sockaddr_un addr;
  CVM_RETURN_IF_ERROR(MakeUnixAddress(path, &addr));
  CVM_ASSIGN_OR_RETURN(bool live, SocketIsLive(path));
  if (live) {
    return Unavailable(fmt::format(
        "socket {} is in use by a running cvmd; stop it first", path));
  }
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (!ec) {
      std::filesystem::permissions(parent,
                                   std::filesystem::perms::owner_all |
                                       std::filesystem::perms::group_read |
                                       std::filesystem::perms::group_exec |
                                       std::filesystem::perms::others_read |
                                       std::filesystem::perms::others_exec,
                                   ec);
    }
    if (ec) {
      return IoError(
          fmt::format("cannot create {}: {}", parent.string(), ec.message()));
    }
  }
  // Before anything is removed or bound there.
  CVM_RETURN_IF_ERROR(CheckSocketDirectory(path));
  if (std::filesystem::exists(path, ec)) {
    LogInfo("removing stale socket {}", path);
    ::unlink(path.c_str());
  }
  listen_fd_.reset(
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_fd_.valid())
    return IoError(fmt::format("socket: {}", strerror(errno)));
  // bind makes the file with the socket inode's mode (less the umask):
  // 0600 from the start, so nobody else connects before the chmod below.
  if (::fchmod(listen_fd_.get(), 0600) != 0) {
    return IoError(fmt::format("fchmod on a socket: {}", strerror(errno)));
  }
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr),
             sizeof(addr)) != 0) {
    return IoError(fmt::format("cannot bind {}: {}", path, strerror(errno)));
  }
  bound_ = true;
  if (const auto& group = options_.socket_group; group) {
    // The group must reach the socket: its directory too, when ours.
    struct stat st;
    const std::string dir = parent.empty() ? "." : parent.string();
    if (::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0 ||
        ::chmod(path.c_str(), 0660) != 0 || ::stat(dir.c_str(), &st) != 0 ||
        (st.st_uid == ::geteuid() &&
         (::chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0 ||
          ::chmod(dir.c_str(), (st.st_mode & 0705) | 0050) != 0))) {
      return IoError(fmt::format("cannot give {} to group {}: {}", path, *group,
                                 strerror(errno)));
    }
  }
  if (::listen(listen_fd_.get(), SOMAXCONN) != 0) {
    return IoError(
        fmt::format("cannot listen on {}: {}", path, strerror(errno)));
  }
  return {};
}

void ApiServer::Stop() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
}

// Accepts up to the connection limit. Clients beyond it wait in the listen
// backlog (their connect retries while that is full): a burst of cvmadm
// calls is served in turn, never hung up on.
void ApiServer::Accept(std::vector<Connection>& conns) {
  static uint64_t next_id = 1;
  while (conns.size() < options_.max_connections) {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr,
                          SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        LogWarn("accept on {}: {}", options_.socket_path, strerror(errno));
      }
      return;
    }
    if (const std::string why = RefusePeer(fd.get()); !why.empty()) {
      LogWarn("{}: {}", options_.socket_path, why);
      const std::string line =
          DumpJson(ErrorResponse(PermissionDenied(why))) + "\n";
      [[maybe_unused]] ssize_t n =
          ::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL);
      continue;  // closed
    }
    Connection c;
    c.fd = std::move(fd);
    c.id = next_id++;
    c.last_active = Clock::now();
    conns.push_back(std::move(c));
  }
}

std::string ApiServer::RefusePeer(int fd) const {
  auto peer = GetPeerCredentials(fd);
  if (!peer.ok()) return "refused a client: " + peer.status().message();
  if (peer->uid == 0 || peer->uid == ::geteuid()) return "";
  if (const auto& group = options_.socket_group; group) {
    if (peer->gid == *group) return "";
    auto groups = GetPeerGroups(fd);
    if (!groups.ok()) return "refused a client: " + groups.status().message();
    if (std::find(groups->begin(), groups->end(), *group) != groups->end()) {
      return "";
    }
  }
  return fmt::format(
      "refused a client: uid {} (pid {}) is neither root nor in the socket's "
      "group{}",
      peer->uid, peer->pid,
      options_.socket_group ? fmt::format(" ({})", *options_.socket_group)
                            : std::string(" (none given: root only)"));
}

void ApiServer::ProcessLines(Connection& c) {
  size_t start = 0;
  for (;;) {
    const size_t nl = c.in.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view line(c.in.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) {
      c.out += DumpJson(api_.HandleRequest(line));
      c.out += '\n';
    }
    start = nl + 1;
  }
  c.in.erase(0, start);
  if (c.in.size() > kMaxRequestBytes) {
    c.out += DumpJson(ErrorResponse(Status(
        Code::kBadRequest, fmt::format("request line exceeds {} bytes; closing",
                                       kMaxRequestBytes))));
    c.out += '\n';
    c.in.clear();
    c.read_closed = true;
  }
}

bool ApiServer::ReadFrom(Connection& c) {
  char buf[64 * 1024];
  while (!c.read_closed && c.out.size() < options_.max_pending_output) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      c.last_active = Clock::now();
      ProcessLines(c);
      continue;
    }
    if (n == 0) {
      // A last request without its newline still gets an answer.
      if (c.in.find_first_not_of(" \t\r\n") != std::string::npos) {
        c.in += '\n';
        ProcessLines(c);
      }
      c.read_closed = true;
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
    LogDebug("connection {}: recv: {}", c.id, strerror(errno));
    return false;
  }
  return true;
}

bool ApiServer::WriteTo(Connection& c) {
  while (!c.out.empty()) {
    const ssize_t n =
        ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      c.last_active = Clock::now();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    LogDebug("connection {}: send: {}", c.id, strerror(errno));
    return false;
  }
  return true;
}

Status ApiServer::Run(int stop_fd) {
  if (!listen_fd_.valid()) return Internal("Run() before Listen()");
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    fds.push_back({stop_fd, POLLIN, 0});  // poll ignores a negative fd
    // At the limit, new clients stay in the backlog until one leaves.
    fds.push_back(
        {conns.size() < options_.max_connections ? listen_fd_.get() : -1,
         POLLIN, 0});
    const size_t first_conn = fds.size();
    auto now = Clock::now();
    auto wait = std::chrono::milliseconds(1000);
    for (const auto& c : conns) {
      short events = 0;
      if (!c.read_closed && c.out.size() < options_.max_pending_output)
        events |= POLLIN;
      if (!c.out.empty()) events |= POLLOUT;
      fds.push_back({c.fd.get(), events, 0});
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          c.last_active + options_.idle_timeout - now);
      wait = std::clamp(left, std::chrono::milliseconds(0), wait);
    }
    const int n =
        ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()) + 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(fmt::format("poll: {}", strerror(errno)));
    }
    if (fds[0].revents != 0 || fds[1].revents != 0) break;

    now = Clock::now();
    std::vector<Connection> kept;
    kept.reserve(conns.size());
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      const short revents = fds[first_conn + i].revents;
      bool keep = true;
      if (revents & (POLLIN | POLLHUP | POLLERR)) keep = ReadFrom(c);
      if (keep && !c.out.empty()) keep = WriteTo(c);
      if (keep && c.read_closed && c.out.empty()) keep = false;
      if (keep && now - c.last_active > options_.idle_timeout) {
        LogInfo("connection {}: idle for {} ms, closing", c.id,
                options_.idle_timeout.count());
        keep = false;
      }
      if (keep) kept.push_back(std::move(c));
    }
    conns = std::move(kept);
    if (fds[2].revents & POLLIN) Accept(conns);
  }
  return {};
}

}  // namespace cvm
