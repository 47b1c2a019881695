#pragma once

// A real etcd (Debian's etcd-server) for tests: one single-member cluster
// on loopback ports, started on first use by a test binary and stopped
// when it exits. Tests share it and keep apart by key prefix
// (UniqueEtcdUri). Starting it costs about a second.

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "kv_store.h"
#include "test_util.h"

extern char** environ;

namespace cvm::testing {

// A loopback port nobody listens on now.
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class EtcdServer {
 public:
  static EtcdServer& Get() {
    static EtcdServer server(false);
    return server;
  }
  // Another member over TLS only, with client certificates required
  // (--client-cert-auth), its certificates from scripts/etcd-certs.sh:
  // certs_dir()/ca.crt, client-n1 and client-n2.
  static EtcdServer& GetTls() {
    static EtcdServer server(true);
    return server;
  }
  // "etcds://127.0.0.1:PORT/PREFIX?ca=..&cert=..&key=.." for `client`'s
  // certificate.
  std::string TlsUri(const std::string& prefix,
                     const std::string& client = "n1") const {
    return uri_ + prefix + "?ca=" + certs_.Sub("ca.crt") +
           "&cert=" + certs_.Sub("client-" + client + ".crt") +
           "&key=" + certs_.Sub("client-" + client + ".key");
  }
  std::string certs_dir() const { return certs_.path(); }
  // "etcd://127.0.0.1:PORT"; empty when etcd could not start (the test
  // using it fails, never skips).
  const std::string& uri() const { return uri_; }
  const std::string& error() const { return error_; }

  // Stops the member's process (SIGSTOP: a store that does not answer) or
  // lets it go on.
  void Pause(bool paused) { ::kill(pid_, paused ? SIGSTOP : SIGCONT); }

 private:
  explicit EtcdServer(bool tls) {
    const int client = FreePort(), peer = FreePort();
    const std::string c = (tls ? "https://127.0.0.1:" : "http://127.0.0.1:") +
                          std::to_string(client);
    const std::string p = "http://127.0.0.1:" + std::to_string(peer);
    const std::string log = dir_.Sub("etcd.log");
    std::vector<std::string> args = {"/usr/bin/etcd",
                                     "--name=test",
                                     "--data-dir=" + data_.Sub("data"),
                                     "--listen-client-urls=" + c,
                                     "--advertise-client-urls=" + c,
                                     "--listen-peer-urls=" + p,
                                     "--initial-advertise-peer-urls=" + p,
                                     "--initial-cluster=test=" + p,
                                     "--log-outputs=" + log,
                                     "--logger=zap"};
    if (tls) {
      const std::string make = std::string(CVM_TOP) +
                               "/scripts/etcd-certs.sh " + certs_.path() +
                               " --server e=127.0.0.1 --client n1 --client n2";
      if (std::system(make.c_str()) != 0) {
        error_ = "scripts/etcd-certs.sh failed";
        return;
      }
      args.insert(args.end(), {"--cert-file=" + certs_.Sub("server-e.crt"),
                               "--key-file=" + certs_.Sub("server-e.key"),
                               "--client-cert-auth",
                               "--trusted-ca-file=" + certs_.Sub("ca.crt")});
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) !=
        0) {
      error_ = "cannot start /usr/bin/etcd (scripts/install-deps.sh)";
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    if (pid_ < 0) return;
    const std::string uri = (tls ? "etcds://127.0.0.1:" : "etcd://127.0.0.1:") +
                            std::to_string(client);
    // Poll until it serves (a second or two), 30 s at most.
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    Status last;
    while (std::chrono::steady_clock::now() < deadline) {
      uri_ = uri;
      auto kv = OpenKvStore(tls ? TlsUri("/probe") : uri + "/probe");
      if (kv.ok()) return;
      uri_.clear();
      last = kv.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    error_ = "etcd did not serve within 30 s: " + last.ToString();
  }
  ~EtcdServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }

  TempDir dir_;
  TempDir certs_;
  // etcd fsyncs every commit (3.4 has no switch for it): on tmpfs that is
  // free, and the tests measure the logic, not this machine's disk.
  TempDir data_{"/dev/shm"};
  pid_t pid_ = -1;
  std::string uri_;
  std::string error_;
};

// A fresh key prefix on the shared test etcd: a store of its own.
inline std::string UniqueEtcdUri() {
  static std::atomic<int> n{0};
  const auto& server = EtcdServer::Get();
  if (server.uri().empty()) return "etcd://127.0.0.1:1/unreachable";
  return server.uri() + "/t" + std::to_string(::getpid()) + "-" +
         std::to_string(n++);
}

// Where a test of the store suite keeps its store: "rocksdb", a directory
// in `dir`; "etcd", a fresh prefix of the shared test etcd ("" when it
// could not start: EtcdServer::Get().error() says why).
inline std::string StoreLocation(const std::string& store, const TempDir& dir) {
  if (store != "etcd") return dir.Sub("db");
  return EtcdServer::Get().uri().empty() ? "" : UniqueEtcdUri();
}

}  // namespace cvm::testing
