#pragma once

// Serves the local API on a unix stream socket: newline-delimited JSON, one
// response line per request line, requests on one connection answered in
// order. A single poll() loop with non-blocking sockets: no client can block
// the daemon, idle connections are closed after a timeout, a request line has
// a size limit, and a client that does not read its answers stops being read.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "api.h"
#include "status.h"
#include "unique_fd.h"

namespace cvm {

struct ServerOptions {
  std::string socket_path = "/run/cvm/cvmd.sock";
  std::chrono::milliseconds idle_timeout{60000};
  size_t max_connections = 64;
  size_t max_pending_output = 8 << 20;
  // Root's (and this user's) alone, unless a group is given: then 0660 and
  // that group's members may connect too. Peers are checked on accept
  // (SO_PEERCRED), whatever the file's mode says.
  std::optional<gid_t> socket_group;
};

class ApiServer {
 public:
  ApiServer(Api& api, ServerOptions options);
  ~ApiServer();  // removes the socket file if this server created it
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Binds the socket. Refuses when a live daemon answers on it, or when its
  // directory could be written by another user (CheckSocketDirectory);
  // replaces a stale socket file left by a crash. Creates the parent
  // directory (0755).
  Status Listen();

  // Serves until Stop() is called or `stop_fd` (if >= 0: signalfd, eventfd,
  // pipe) becomes readable.
  Status Run(int stop_fd = -1);

  // Thread-safe and async-signal-safe: makes Run() return.
  void Stop();

  const std::string& socket_path() const { return options_.socket_path; }

 private:
  struct Connection;
  void Accept(std::vector<Connection>& conns);
  // Why the peer on `fd` may not use the API; empty when it may.
  std::string RefusePeer(int fd) const;
  // Returns false when the connection should be closed.
  bool ReadFrom(Connection& c);
  bool WriteTo(Connection& c);
  void ProcessLines(Connection& c);

  Api& api_;
  ServerOptions options_;
  UniqueFd listen_fd_;
  UniqueFd wake_fd_;  // eventfd behind Stop()
  bool bound_ = false;
};

}  // namespace cvm
