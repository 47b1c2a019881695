// cvmd: the CVM metadata daemon. Keeps the metadata store (embedded RocksDB
// on one node, or etcd shared by every cvmd of a cluster) and serves
// the local API on a unix socket until SIGTERM or SIGINT. Detached, it logs
// to --log-file; with --foreground (as systemd runs it), to stderr.

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>

#include "api.h"
#include "api_server.h"
#include "backfill.h"
#include "cluster_presence.h"
#include "disk_errors.h"
#include "down_out.h"
#include "fullness.h"
#include "host_keys.h"
#include "https_server.h"
#include "kernel_sync.h"
#include "log.h"
#include "metadata_store.h"
#include "netlink_client.h"
#include "node_identity.h"
#include "periodic.h"
#include "recovery_progress.h"
#include "store_follower.h"
#include "tls_cert.h"
#include "unix_socket.h"
#include "version.h"

namespace po = boost::program_options;

namespace cvm {
namespace {

struct Config {
  std::string db = "/var/lib/cvm/db";
  std::string store;  // etcd://... or a RocksDB directory; default: db
  std::string socket = kDefaultSocketPath;
  std::string socket_group;  // may use the socket besides root; "": none
  std::string pid_file;
  // Where a detached cvmd logs: it must not keep the caller's stderr open
  // (`cvmd 2>&1 | head` would never return). In the foreground, stderr.
  std::string log_file = "/var/log/cvm/cvmd.log";
  std::string host;  // "this host": where volume attach attaches
  // Cluster only: the key this node joined with (node_identity.h).
  std::string node_key = "/var/lib/cvm/node.key";
  // This host's secret for the data path (host_keys.h); default: the node
  // key's path ending .secret (etcd), or in the database (RocksDB).
  std::string host_secret;
  // The HTTPS API (https_server.h): HOST:PORT, off when empty; its
  // certificate and key, made self-signed when both are missing (default:
  // api.crt and api.key beside the node key with etcd, in --db with
  // RocksDB).
  std::string api_listen;
  std::string api_cert;
  std::string api_key;
  // Cluster (etcd) only: this cvmd's lease, how many map epochs the leader
  // keeps, how often it compacts etcd.
  int lease_ttl = 10;
  uint64_t keep_epochs = 100;
  int compact_every = 3600;
  // Seconds between the leader's backfill rounds (backfill.h).
  int backfill_every = 2;
  bool foreground = false;
  bool debug = false;
};

// Without --foreground the parent waits on this pipe until the daemon either
// serves (it writes "R") or fails (it writes the reason), so `cvmd && cvmadm`
// works and a failed start still reports why and exits non-zero.
class Readiness {
 public:
  // Opens `log_file` first, so a log that cannot be written is refused on
  // the caller's terminal; the daemon's stderr then goes there.
  void Detach(const std::string& log_file) {
    std::error_code ec;
    std::filesystem::create_directories(
        std::filesystem::path(log_file).parent_path(), ec);
    const int log_fd = ::open(log_file.c_str(),
                              O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd < 0) {
      std::fprintf(stderr, "cvmd: cannot open log file %s: %s\n",
                   log_file.c_str(), std::strerror(errno));
      std::exit(1);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      std::perror("cvmd: pipe");
      std::exit(1);
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::perror("cvmd: fork");
      std::exit(1);
    }
    if (pid > 0) {
      ::close(fds[1]);
      std::string message;
      char buf[512];
      ssize_t n;
      while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) message.append(buf, n);
      if (message == "R") std::exit(0);
      std::fprintf(
          stderr, "cvmd: %s\n",
          message.empty() ? "daemon exited during startup" : message.c_str());
      std::exit(1);
    }
    ::close(fds[0]);
    fd_ = fds[1];
    ::setsid();
    if (::chdir("/") != 0) {
      // Not fatal: only avoids pinning the start directory.
    }
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd >= 0) {
      ::dup2(null_fd, STDIN_FILENO);
      ::dup2(null_fd, STDOUT_FILENO);
      ::close(null_fd);
    }
    ::dup2(log_fd, STDERR_FILENO);  // the log; the caller's stderr is let go
    ::close(log_fd);
  }
  void Ready() { Send("R"); }
  void Failed(const std::string& reason) { Send(reason); }

 private:
  void Send(const std::string& text) {
    if (fd_ < 0) return;
    [[maybe_unused]] ssize_t n = ::write(fd_, text.data(), text.size());
    ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

int Fail(Readiness& readiness, const std::string& message) {
  LogError("{}", message);
  readiness.Failed(message);
  return 1;
}

int Serve(const Config& config) {
  Readiness readiness;
  // Refuse before detaching, so the error reaches the terminal directly.
  auto live = SocketIsLive(config.socket);
  if (!live.ok()) return Fail(readiness, live.status().message());
  if (*live) {
    return Fail(readiness, fmt::format("socket {} is in use by a running cvmd; "
                                       "stop it first",
                                       config.socket));
  }
  if (!config.foreground) readiness.Detach(config.log_file);

  // Block the stop signals in every thread (RocksDB's included) and take them
  // through a signalfd that the server loop polls.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  UniqueFd signal_fd(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd.valid()) return Fail(readiness, "signalfd failed");

  std::error_code ec;
  const bool etcd = IsEtcdUri(config.store);
  if (!etcd) {
    std::filesystem::create_directories(config.store, ec);
    if (ec) {
      return Fail(readiness,
                  fmt::format("cannot create database directory {}: {}",
                              config.store, ec.message()));
    }
    // The database holds join tokens and node keys: root's alone, also
    // when an older cvmd made it readable to all.
    struct stat st;
    if (::stat(config.store.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      LogWarn("database directory {} was mode {:04o}: now 0700", config.store,
              st.st_mode & 07777);
      if (::chmod(config.store.c_str(), 0700) != 0) {
        return Fail(readiness, fmt::format("cannot chmod {}: {}", config.store,
                                           strerror(errno)));
      }
    }
  }
  StoreOptions store_options;
  // In a cluster the leader cuts map epochs, one for the changes pending.
  store_options.defer_epochs = etcd;
  auto store = MetadataStore::Open(config.store, store_options);
  if (!store.ok()) return Fail(readiness, store.status().message());

  // cvm.ko's path events are recorded as they come (no map epoch). Joined
  // before the reconcile below pushes a map, so the connections it makes
  // are seen; without cvm.ko the subscriber waits for it.
  PathEventSubscriber path_events(
      [&db = **store, host = config.host](const PathEvent& event) {
        static_cast<void>(RecordPathEvent(db, host, event));
      });
  if (Status s = path_events.Start(); !s.ok()) {
    return Fail(readiness, s.message());
  }

  const int64_t started = std::time(nullptr);
  const nlohmann::json node_info = {
      {"pid", ::getpid()}, {"version", Version()}, {"started", started}};
  // Which cvmds are up and which one leads: over etcd a lease per cvmd and
  // a leader key (the leader prunes old map epochs and compacts etcd);
  // with RocksDB this cvmd alone.
  std::unique_ptr<Presence> presence;
  std::function<int64_t()> leader_lease;  // 0 unless this cvmd leads (etcd)
  if (etcd) {
    auto uri = ParseEtcdUri(config.store);
    if (!uri.ok()) return Fail(readiness, uri.status().message());
    PresenceOptions options;
    options.ttl = std::chrono::seconds(config.lease_ttl);
    options.compact_every = std::chrono::seconds(config.compact_every);
    options.node_info = node_info;
    options.leader_tick = [&db = **store, keep = config.keep_epochs,
                           ticks = 0](int64_t lease) mutable {
      // About every 20 lease renewals: pieces no record names.
      if (++ticks % 20 == 0) {
        auto swept = db.SweepPieces();
        if (!swept.ok()) {
          LogWarn("sweeping unreferenced pieces: {}", swept.status().message());
        } else if (*swept > 0) {
          LogInfo("swept the pieces of {} unreferenced values", *swept);
        }
      }
      // Changes left pending by a leader that stopped: cut now.
      if (auto cut = db.CutPendingEpoch(lease); !cut.ok()) {
        LogWarn("cutting a map epoch: {}", cut.status().message());
      }
      auto pruned = db.PruneEpochs(keep, lease);
      if (!pruned.ok()) {
        LogWarn("pruning map epochs: {}", pruned.status().message());
      } else if (*pruned > 0) {
        LogInfo("pruned {} map epochs (keeping the newest {})", *pruned, keep);
      }
    };
    auto etcd_presence =
        std::make_unique<EtcdPresence>(*uri, config.host, std::move(options));
    if (Status s = etcd_presence->Start(); !s.ok()) {
      return Fail(readiness,
                  "joining the cluster's presence in etcd: " + s.message());
    }
    leader_lease = [p = etcd_presence.get()]() -> int64_t {
      return p->IsLeader() ? p->lease() : 0;
    };
    presence = std::move(etcd_presence);
  } else {
    presence = std::make_unique<LocalPresence>(config.host, node_info);
  }
  // Which host this cvmd may act for: the one whose join token it was given.
  NodeIdentity identity(**store, config.host, config.node_key, etcd);
  if (const std::string why = identity.Check(); !why.empty()) {
    LogWarn("not joined, applying nothing of the store: {}", why);
  }
  Api api(**store);
  api.SetPresence(presence.get());
  api.SetNodeIdentity(&identity);
  api.SetStatusInfo([&config, &path_events, &identity, started] {
    return nlohmann::json{
        {"pid", ::getpid()},
        {"host", config.host},
        {"joined", identity.joined()},
        {"socket", config.socket},
        {"started", started},
        {"path_events",
         path_events.listening() ? "listening" : "waiting for cvm.ko"}};
  });
  // Bring the kernel to what the store records before serving, so a
  // restarted cvmd and the kernel agree once `cvmd` returns.
  NetlinkKernel kernel;
  KernelSync sync(**store, kernel, config.host);
  sync.SetCluster(etcd);
  auto host_secrets = HostSecrets::Load(config.host_secret);
  if (!host_secrets.ok()) {
    return Fail(readiness, "host secret: " + host_secrets.status().message());
  }
  sync.SetHostSecrets(host_secrets->get());
  // The leader's cvmd copies detached volumes: the targets let it at all.
  sync.SetAgent([&presence, &config]() -> std::string {
    const nlohmann::json view = presence->View(/*members=*/false);
    if (view.contains("error")) return "";
    return view.value("leader", config.host);
  });
  if (etcd) {
    sync.SetPublishKeysLoaded([&presence](const nlohmann::json& loaded) {
      if (Status s = presence->Publish({{"keys_loaded", loaded}}); !s.ok())
        LogWarn("publishing loaded host keys: {}", s.message());
    });
    sync.SetKeysLoadedEverywhere(
        [&presence, &db = **store](uint64_t host_id,
                                   uint32_t key_id) -> Result<bool> {
          const nlohmann::json view = presence->View(/*members=*/false);
          if (view.contains("error"))
            return Unavailable(view["error"].get<std::string>());
          CVM_ASSIGN_OR_RETURN(auto devices, db.ListDevices());
          CVM_ASSIGN_OR_RETURN(auto hosts, db.ListHosts());
          const nlohmann::json nodes =
              view.value("nodes", nlohmann::json::object());
          for (const Host& h : hosts) {
            const bool serves = std::any_of(
                devices.begin(), devices.end(),
                [&](const Device& d) { return d.served && d.host_id == h.id; });
            if (!serves) continue;
            if (!nodes.contains(h.name)) return false;  // its cvmd is down
            const nlohmann::json loaded =
                nodes[h.name].value("keys_loaded", nlohmann::json::object());
            const std::string me = std::to_string(host_id);
            if (!loaded.contains(me) || loaded[me].get<uint32_t>() < key_id)
              return false;
          }
          return true;
        });
  }
  sync.SetJoined([&identity] { return identity.joined(); });
  sync.SetMapInstalled([&presence](uint64_t epoch) {
    if (Status s = presence->Publish({{"map_epoch", epoch}}); !s.ok()) {
      LogWarn("publishing map epoch {}: {}", epoch, s.message());
      return false;
    }
    return true;
  });
  // The hosts whose cvmd holds its lease: the others' kernels are not
  // asked to vouch for anything (reconcile, down/out).
  const auto live_hosts = [&presence]() -> Result<std::set<std::string>> {
    const nlohmann::json view = presence->View(/*members=*/false);
    if (view.contains("error")) {
      return Unavailable("which cvmds are up: " +
                         view["error"].get<std::string>());
    }
    std::set<std::string> live;
    const nlohmann::json nodes = view.value("nodes", nlohmann::json::object());
    for (const auto& [host, info] : nodes.items()) live.insert(host);
    return live;
  };
  sync.SetLiveHosts(live_hosts);
  const nlohmann::json reconciled = sync.Reconcile();
  LogInfo("kernel reconciled as host '{}': {}", config.host, reconciled.dump());
  api.SetKernelSync(&sync);
  // In a cluster other cvmds change the store too: apply this host's part
  // of every change (maps, its attachments, devices, listeners).
  std::unique_ptr<StoreFollower> follower;
  if (etcd) {
    follower = std::make_unique<StoreFollower>(**store, [&] {
      // The leader cuts one epoch for the changes that came in together.
      if (const int64_t lease = leader_lease(); lease != 0) {
        auto cut = (*store)->CutPendingEpoch(lease);
        if (!cut.ok()) {
          LogWarn("cutting a map epoch: {}", cut.status().message());
        } else if (*cut != 0) {
          LogInfo("map epoch {} cut", *cut);
        }
      }
      static_cast<void>(sync.Reconcile());
    });
    follower->Start();
  }
  // The leader moves the data of pinned PGs to where placement wants it
  // (backfill.h); with RocksDB this cvmd is the leader.
  Backfill backfill(
      **store,
      [&presence](uint64_t epoch) {
        const nlohmann::json view = presence->View(/*members=*/false);
        if (view.contains("error")) return false;
        const nlohmann::json nodes =
            view.value("nodes", nlohmann::json::object());
        for (const auto& [host, info] : nodes.items()) {
          if (info.contains("map_epoch") &&
              info["map_epoch"].get<uint64_t>() < epoch) {
            return false;
          }
        }
        return true;
      },
      leader_lease);
  backfill.SetCredentials(sync.Credentials());
  FullnessMonitor fullness(**store);
  DiskErrorMonitor disk_errors(**store);
  RecoveryCache recovery_cache;
  std::set<std::string> backfill_waits;  // logged once each, while they last
  Periodic backfill_rounds;
  backfill_rounds.Start(std::chrono::seconds(config.backfill_every), [&] {
    if (!identity.joined()) return;
    // The leader may have changed: its cvmd's copies need every volume.
    static_cast<void>(sync.SyncHostKeys());
    backfill.SetCredentials(sync.Credentials());
    // Every node reports what its cvm.ko copied; the leader acts on it.
    sync.ReportBackfill();
    // And how full its target's devices are (fullness.h).
    if (auto usage = sync.TargetUsage(); usage.ok()) {
      auto changes = fullness.Round(*usage, std::time(nullptr));
      if (!changes.ok()) {
        LogWarn("fullness: {}", changes.status().message());
      } else if (!changes->empty() && !etcd) {
        sync.PushMapBestEffort("device fullness");
      }
      // And whether their disks keep failing (disk_errors.h).
      auto failing = disk_errors.Round(*usage, std::time(nullptr));
      if (!failing.ok()) {
        LogWarn("disk errors: {}", failing.status().message());
      } else if (!failing->empty() && !etcd) {
        sync.PushMapBestEffort("device disk errors");
      }
    }
    if (etcd && leader_lease() == 0) {
      recovery_cache.loaded = false;  // another leader may write it
      return;
    }
    // A device down for down_out_interval goes out: its data is rebuilt.
    // On etcd, only the cvmds up vouch for their paths: with no view of
    // who is up, no device goes out this round (backfill still runs).
    auto hosts = etcd ? live_hosts()
                      : Result<std::set<std::string>>(std::set<std::string>());
    if (!hosts.ok()) {
      LogWarn("down/out check: {}", hosts.status().message());
    } else {
      std::optional<std::set<std::string>> live;
      if (etcd) live = std::move(*hosts);
      auto marked = MarkDownDevicesOut(**store, std::time(nullptr), live);
      if (!marked.ok()) {
        // The store cannot answer: the backfill round would not either.
        LogWarn("down/out check: {}", marked.status().message());
        return;
      }
      if (!marked->empty() && !etcd) {
        sync.PushMapBestEffort("device down/out");
      }
    }
    auto round = backfill.RunOnce();
    if (!round.ok()) {
      LogWarn("backfill: {}", round.status().message());
      return;
    }
    if (Status s = ObserveRecovery(**store, *round, std::time(nullptr),
                                   &recovery_cache);
        !s.ok()) {
      LogWarn("recovery progress: {}", s.message());
    }
    std::set<std::string> waits(round->waiting.begin(), round->waiting.end());
    for (const std::string& why : waits) {
      if (!backfill_waits.count(why)) LogInfo("backfill waits: {}", why);
    }
    backfill_waits = std::move(waits);
    // Over etcd every cvmd's follower installs it; here, this one.
    if (round->settled_epoch != 0 && !etcd) sync.PushMapBestEffort("backfill");
  });
  ServerOptions server_options;
  server_options.socket_path = config.socket;
  if (!config.socket_group.empty()) {
    const struct group* g = ::getgrnam(config.socket_group.c_str());
    if (!g) {
      return Fail(readiness, fmt::format("--socket-group: no group '{}'",
                                         config.socket_group));
    }
    server_options.socket_group = g->gr_gid;
  }
  ApiServer server(api, server_options);
  if (Status s = server.Listen(); !s.ok()) return Fail(readiness, s.message());

  std::unique_ptr<HttpsServer> https;
  if (!config.api_listen.empty()) {
    HttpsOptions https_options;
    const size_t colon = config.api_listen.rfind(':');
    https_options.address = config.api_listen.substr(0, colon);
    if (https_options.address.size() > 2 &&
        https_options.address.front() == '[')
      https_options.address =
          https_options.address.substr(1, https_options.address.size() - 2);
    https_options.port = std::stoi(config.api_listen.substr(colon + 1));
    https_options.cert_path = config.api_cert;
    https_options.key_path = config.api_key;
    std::vector<std::string> names = {config.host, "localhost", "127.0.0.1",
                                      "::1"};
    if (https_options.address != "0.0.0.0" && https_options.address != "::")
      names.push_back(https_options.address);
    if (Status s = EnsureSelfSignedCert(config.api_cert, config.api_key, names);
        !s.ok()) {
      return Fail(readiness, "HTTPS API certificate: " + s.message());
    }
    https = std::make_unique<HttpsServer>(api, **store, https_options);
    if (Status s = https->Start(); !s.ok()) return Fail(readiness, s.message());
    auto fingerprint = CertFingerprint(config.api_cert);
    LogInfo("HTTPS API on {} (certificate {}, SHA-256 {})", config.api_listen,
            config.api_cert,
            fingerprint.ok() ? *fingerprint : fingerprint.status().message());
  }

  if (!config.pid_file.empty()) {
    std::ofstream pid(config.pid_file, std::ios::trunc);
    pid << ::getpid() << "\n";
    if (!pid) {
      return Fail(readiness, fmt::format("cannot write {}", config.pid_file));
    }
  }
  auto epoch = (*store)->CurrentEpoch();
  LogInfo("cvmd {} serving {} (store {}, map epoch {})", Version(),
          config.socket, config.store, epoch.ok() ? *epoch : 0);
  readiness.Ready();

  Status run = server.Run(signal_fd.get());
  if (https) https->Stop();
  backfill_rounds.Stop();
  if (follower) follower->Stop();
  path_events.Stop();
  signalfd_siginfo info{};
  if (::read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
    LogInfo("received {}, shutting down",
            strsignal(static_cast<int>(info.ssi_signo)));
  }
  if (!config.pid_file.empty()) std::filesystem::remove(config.pid_file, ec);
  if (!run.ok()) {
    LogError("server failed: {}", run.message());
    return 1;
  }
  LogInfo("stopped");
  return 0;  // server (socket file) and store (database) close on return
}

}  // namespace
}  // namespace cvm

int main(int argc, char** argv) {
  // Everything cvmd creates (database, keys, logs, socket) is its own.
  ::umask(077);
  cvm::SetLogTag("cvmd");
  cvm::Config config;
  po::options_description options("Usage: cvmd [options]\n\nOptions");
  options.add_options()("help,h", "show this help")("version",
                                                    "print the version")(
      "db", po::value(&config.db)->value_name("DIR")->default_value(config.db),
      "metadata database directory (RocksDB, this node alone)")(
      "store", po::value(&config.store)->value_name("LOCATION"),
      "the metadata store: etcd://HOST:PORT[,HOST:PORT...][/PREFIX] for a "
      "cluster (every cvmd on one etcd), etcds://...[/PREFIX]?cert=FILE&"
      "key=FILE[&ca=FILE] for etcd over TLS with this node's client "
      "certificate (scripts/etcd-certs.sh; absolute paths), or a RocksDB "
      "directory (default: --db)")(
      "socket",
      po::value(&config.socket)
          ->value_name("PATH")
          ->default_value(config.socket),
      "unix socket for the local API (root's alone: 0600, its "
      "directory root's and not writable by others)")(
      "socket-group", po::value(&config.socket_group)->value_name("GROUP"),
      "members of GROUP may use the local API too (socket 0660)")(
      "lease-ttl",
      po::value(&config.lease_ttl)->value_name("S")->default_value(10),
      "etcd store: seconds this cvmd's lease lives without renewal (its "
      "node is shown down, and another cvmd may lead, after that)")(
      "keep-epochs",
      po::value(&config.keep_epochs)->value_name("N")->default_value(100),
      "etcd store: map epochs the leader keeps (older ones are pruned)")(
      "compact-every",
      po::value(&config.compact_every)->value_name("S")->default_value(3600),
      "etcd store: seconds between the leader's compactions and "
      "defragmentations of etcd (0: never)")(
      "backfill-every",
      po::value(&config.backfill_every)->value_name("S")->default_value(2),
      "seconds between the leader's backfill rounds, which move pinned "
      "PGs' data to their up rows")(
      "foreground,f", po::bool_switch(&config.foreground),
      "stay in the foreground (default: detach once serving)")(
      "pid-file", po::value(&config.pid_file)->value_name("PATH"),
      "write the daemon's pid here")(
      "log-file",
      po::value(&config.log_file)
          ->value_name("PATH")
          ->default_value(config.log_file),
      "where a detached cvmd logs (appended; in the foreground: stderr)")(
      "host", po::value(&config.host)->value_name("NAME"),
      "this host's name in the cluster: volumes attach here and are "
      "recorded as attached to it (default: the machine's hostname)")(
      "node-key",
      po::value(&config.node_key)
          ->value_name("PATH")
          ->default_value(config.node_key),
      "etcd store: the key this node joined the cluster with (written by "
      "'cvmadm join', mode 0600)")(
      "host-secret", po::value(&config.host_secret)->value_name("PATH"),
      "this host's secret for the data path, made when missing (mode 0600; "
      "default: --node-key's path ending .secret with etcd, host.secret in "
      "--db with RocksDB)")(
      "api-listen", po::value(&config.api_listen)->value_name("HOST:PORT"),
      "serve the API over HTTPS here (e.g. 0.0.0.0:7480; off by default): "
      "callers need a token (cvmadm token create)")(
      "api-cert", po::value(&config.api_cert)->value_name("PATH"),
      "the HTTPS API's certificate (PEM), made self-signed with --api-key "
      "when both are missing (default: api.crt beside --node-key with etcd, "
      "in --db with RocksDB)")(
      "api-key", po::value(&config.api_key)->value_name("PATH"),
      "the HTTPS API's private key (PEM, mode 0600; default: api.key beside "
      "the certificate's default)")("debug", po::bool_switch(&config.debug),
                                    "log debug messages");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(options).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "cvmd: " << e.what() << "\n\n" << options << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "cvmd " << cvm::Version() << "\n";
    return 0;
  }
  if (config.debug) cvm::SetLogLevel(cvm::LogLevel::kDebug);
  if (config.host.empty()) {
    char name[256] = {};
    if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') {
      std::cerr << "cvmd: cannot read the hostname; give --host NAME\n";
      return 2;
    }
    config.host = name;
    // A dotted FQDN: its first label, as host names are short identifiers.
    config.host = config.host.substr(0, config.host.find('.'));
  }
  if (config.lease_ttl < 2 || config.lease_ttl > 3600 ||
      config.keep_epochs < 1 || config.compact_every < 0 ||
      config.backfill_every < 1 || config.backfill_every > 3600) {
    std::cerr << "cvmd: --lease-ttl must be 2..3600 s, --keep-epochs >= 1, "
                 "--compact-every >= 0, --backfill-every 1..3600 s\n";
    return 2;
  }
  if (auto s = cvm::ValidateName("host", config.host); !s.ok()) {
    std::cerr << "cvmd: --host: " << s.message() << "\n";
    return 2;
  }
  // Detaching changes to "/": relative paths must mean what the user meant.
  if (config.store.empty()) config.store = config.db;
  if (config.host_secret.empty()) {
    config.host_secret =
        cvm::IsEtcdUri(config.store)
            ? std::filesystem::path(config.node_key)
                  .replace_extension(".secret")
                  .string()
            : (std::filesystem::path(config.store) / "host.secret").string();
  }
  const std::filesystem::path state_dir =
      cvm::IsEtcdUri(config.store)
          ? std::filesystem::path(config.node_key).parent_path()
          : std::filesystem::path(config.store);
  if (config.api_cert.empty()) config.api_cert = state_dir / "api.crt";
  if (config.api_key.empty()) config.api_key = state_dir / "api.key";
  if (!config.api_listen.empty()) {
    const size_t colon = config.api_listen.rfind(':');
    int port = 0;
    const std::string port_text =
        colon == std::string::npos ? "" : config.api_listen.substr(colon + 1);
    const auto [end, ec] = std::from_chars(
        port_text.data(), port_text.data() + port_text.size(), port);
    if (colon == 0 || colon == std::string::npos || port_text.empty() ||
        ec != std::errc() || end != port_text.data() + port_text.size() ||
        port < 1 || port > 65535) {
      std::cerr << "cvmd: --api-listen must be HOST:PORT (e.g. 0.0.0.0:7480, "
                   "[::]:7480), port 1..65535\n";
      return 2;
    }
  }
  for (std::string* path :
       {&config.db, &config.socket, &config.pid_file, &config.log_file,
        &config.node_key, &config.host_secret, &config.api_cert,
        &config.api_key}) {
    if (!path->empty()) *path = std::filesystem::absolute(*path).string();
  }
  if (!cvm::IsEtcdUri(config.store)) {
    config.store = std::filesystem::absolute(config.store).string();
  }
  return cvm::Serve(config);
}
