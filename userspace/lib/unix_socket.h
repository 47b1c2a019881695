#pragma once

// Unix stream socket helpers shared by the API server and client.

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <string>
#include <vector>

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

// Local privilege (issue 17). Whoever can replace the socket file can pose
// as cvmd to root's cvmadm, or hide it: every directory from the socket's up
// to / must be root's or this user's, and none writable by group or others,
// except that an ancestor with the sticky bit (/tmp) may be. Refused with
// the reason otherwise.
Status CheckSocketDirectory(const std::string& socket_path);

// The process at the other end of a connected unix socket (SO_PEERCRED).
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};
Result<PeerCredentials> GetPeerCredentials(int fd);
// Its supplementary groups (SO_PEERGROUPS).
Result<std::vector<gid_t>> GetPeerGroups(int fd);

// The client's check: the server is root or this user, not someone who
// bound a socket where cvmd's should be.
Status CheckServerPeer(int fd, const std::string& path);

// True when something accepts connections at `path` (a live daemon), false
// when the path is absent or a stale socket. Fails when the path exists and
// is not a socket.
Result<bool> SocketIsLive(const std::string& path);

}  // namespace cvm
