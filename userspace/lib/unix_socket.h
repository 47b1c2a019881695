#pragma once

// Unix stream socket helpers shared by the API server and client.

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <string>

#include "status.h"
#include "unique_fd.h"

namespace cvm {

inline constexpr const char* kDefaultSocketPath = "/run/cvm/cvmd.sock";

// Fills `addr` or fails if `path` does not fit in sun_path.
Status MakeUnixAddress(const std::string& path, sockaddr_un* addr);

// Connects to `path`, waiting at most `timeout`. kUnavailable when nobody
// listens there.
Result<UniqueFd> ConnectUnix(const std::string& path,
                             std::chrono::milliseconds timeout);

// True when something accepts connections at `path` (a live daemon), false
// when the path is absent or a stale socket. Fails when the path exists and
// is not a socket.
Result<bool> SocketIsLive(const std::string& path);

}  // namespace cvm
