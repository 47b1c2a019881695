#pragma once

// Generic-netlink client for the kernel modules' families "cvm" (initiator)
// and "cvm_target" (storage node), per include/uapi/linux/cvm.h: status,
// chunked map upload, volume attach/detach/list and the target's devices and
// listeners. Every request asks for an ack with NETLINK_EXT_ACK on, so a
// refusal comes back as a Status carrying the errno's text and the kernel's
// extended-ack message. A family that is not registered is kUnavailable
// "cvm module not loaded" (or "cvm_target module not loaded").
//
// PathEventSubscriber listens for cvm.ko's path events (the "events"
// multicast group) on a socket of its own.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "status.h"
#include "unique_fd.h"

struct nlmsghdr;

namespace cvm {

struct ModuleStatus {
  std::string family;
  bool loaded = false;  // false: the family is not registered (module absent)
  uint32_t role = 0;    // enum cvm_role
  std::string module_version;
  uint32_t genl_version = 0;
  uint32_t wire_version = 0;
  uint64_t map_epoch = 0;  // 0 = no map installed
  uint32_t objects = 0;    // volumes attached / devices served
  // Initiator only: (device, volume, object) copies a write missed and that
  // are not resynchronised yet, over all devices.
  std::optional<uint64_t> stale_objects;
};

nlohmann::json ToJson(const ModuleStatus& s);
// "initiator", "target" or "unknown".
std::string_view RoleName(uint32_t role);

// Asks `family` for its status. A missing family is not an error: the result
// has loaded == false. Errors are a failed socket, a refused request (not
// root) or a reply that breaks the contract.
Result<ModuleStatus> QueryModuleStatus(
    std::string_view family,
    std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Validates and decodes one CVM_CMD_STATUS_GET reply from `family`. Separate
// from the query so tests can feed it hand-built messages.
Result<ModuleStatus> ParseStatusReply(const nlmsghdr* nlh,
                                      std::string_view family);

// ---- requests beyond STATUS_GET ----

// One CVM_MAP_PATHS_ATTR_PATH: how to reach a device of the map.
struct MapPath {
  uint32_t device_id = 0;
  std::string addr;  // numeric IPv4 or IPv6, no brackets
  uint16_t port = 0;
  std::string transport = "tcp";
  bool operator==(const MapPath&) const = default;
};

struct MapSetRequest {
  std::string_view blob;  // the sealed map (kernel/common map codec)
  std::vector<MapPath> paths;
  uint64_t cluster_id = 0;
  uint64_t host_id = 0;
  // Empty, or this host's secret (CVM_WIRE_KEY_LEN bytes) and its
  // generation: without it no target lets this host in.
  std::string host_key;
  uint32_t key_id = 0;
};

// Where each MAP_SET message's chunk goes: in order, each at most
// `chunk_max` bytes; only the last one carries paths and ids.
struct MapChunk {
  uint32_t offset = 0;
  uint32_t length = 0;
  bool last = false;
  bool operator==(const MapChunk&) const = default;
};
std::vector<MapChunk> SplitMapChunks(size_t blob_len, size_t chunk_max);

// A volume as VOLUME_ATTACH takes it and VOLUME_LIST returns it.
struct KernelVolume {
  uint64_t id = 0;
  uint32_t pool_id = 0;
  uint64_t size = 0;
  uint32_t object_size = 0;
  uint32_t stripe_unit = 0;  // EC pools only; 0 for replicated
  uint64_t attach_epoch = 0;
  std::string name;
  uint32_t minor = 0;  // replies only
  // Replies only: the map epoch whose pinned PGs cvm.ko has copied for the
  // volume (0: not yet).
  uint64_t backfilled_epoch = 0;
};

// One device cvm_target serves, as CVM_CMD_TARGET_DEVICE_LIST reports it.
struct TargetDeviceUsage {
  uint32_t id = 0;
  std::string path;
  uint64_t capacity = 0;   // bytes of object space
  uint64_t used = 0;       // bytes allocated (whole extents)
  uint64_t objects = 0;    // object shards held
  uint64_t intents = 0;    // of them, with the write-intent bit set
  uint64_t io_errors = 0;  // requests it failed since it was added
  uint64_t copied = 0;     // bytes resync and backfill wrote to it since
  bool operator==(const TargetDeviceUsage&) const = default;
};
nlohmann::json ToJson(const TargetDeviceUsage& u);

struct Listener {
  std::string addr;  // numeric IPv4 or IPv6, no brackets
  uint16_t port = 0;
  std::string transport = "tcp";
};

// One host a target device lets in (CVM_CMD_TARGET_HOSTS_SET).
struct TargetHost {
  uint64_t host_id = 0;
  uint32_t key_id = 0;
  std::string key;  // the host's key for the device, CVM_WIRE_KEY_LEN bytes
  bool all_volumes = false;  // cvmd's agent: every volume of the device
  bool operator==(const TargetHost&) const = default;
};

// The kernel side as cvmd uses it. NetlinkKernel is the real one; tests
// substitute a fake.
class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual Result<ModuleStatus> Query(std::string_view family) = 0;
  virtual Status MapSet(const MapSetRequest& request) = 0;
  virtual Result<KernelVolume> VolumeAttach(const KernelVolume& volume) = 0;
  virtual Status VolumeDetach(uint64_t id, bool force) = 0;
  virtual Result<std::vector<KernelVolume>> VolumeList() = 0;
  virtual Status TargetDeviceAdd(uint32_t id, const std::string& path,
                                 bool format, bool force) = 0;
  virtual Status TargetDeviceRemove(uint32_t id) = 0;
  virtual Status TargetListen(const Listener& listener) = 0;
  virtual Status TargetUnlisten(const std::string& addr, uint16_t port) = 0;
  // Every device this node's cvm_target serves refuses requests of the
  // volume's attachments older than attach_epoch, and knows it after a
  // restart (CVM_CMD_TARGET_VOLUME_FENCE).
  // host_id: the attaching host (0: none), the only one without
  // all_volumes the devices let at the volume.
  virtual Status TargetVolumeFence(uint64_t volume_id, uint64_t attach_epoch,
                                   uint64_t host_id) = 0;
  // The hosts device_id lets in, replacing those it had.
  virtual Status TargetHostsSet(uint32_t device_id,
                                const std::vector<TargetHost>& hosts) = 0;
  // cvm.ko's secret changes (a rotation) without a new map.
  virtual Status HostKeySet(const std::string& secret, uint32_t key_id) = 0;
  // Every device this node's cvm_target serves, with its usage.
  virtual Result<std::vector<TargetDeviceUsage>> TargetDeviceList() = 0;
};

class NetlinkKernel : public Kernel {
 public:
  explicit NetlinkKernel(
      std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : timeout_(timeout) {}
  Result<ModuleStatus> Query(std::string_view family) override;
  Status MapSet(const MapSetRequest& request) override;
  Result<KernelVolume> VolumeAttach(const KernelVolume& volume) override;
  Status VolumeDetach(uint64_t id, bool force) override;
  Result<std::vector<KernelVolume>> VolumeList() override;
  Status TargetDeviceAdd(uint32_t id, const std::string& path, bool format,
                         bool force) override;
  Status TargetDeviceRemove(uint32_t id) override;
  Status TargetListen(const Listener& listener) override;
  Status TargetUnlisten(const std::string& addr, uint16_t port) override;
  Status TargetVolumeFence(uint64_t volume_id, uint64_t attach_epoch,
                           uint64_t host_id) override;
  Status TargetHostsSet(uint32_t device_id,
                        const std::vector<TargetHost>& hosts) override;
  Status HostKeySet(const std::string& secret, uint32_t key_id) override;
  Result<std::vector<TargetDeviceUsage>> TargetDeviceList() override;

 private:
  std::chrono::milliseconds timeout_;
};

// ---- path events (CVM_CMD_EVENT_PATH_DOWN / _UP) ----

enum class PathEventKind { kDown, kUp };
std::string_view ToString(PathEventKind kind);  // "down", "up"

// One event of cvm.ko's "events" group: the connection to a device's target
// was lost (down) or made (up).
struct PathEvent {
  PathEventKind kind = PathEventKind::kDown;
  uint32_t device_id = 0;
  std::string address;  // "127.0.0.1:7001", "[::1]:7001", as the kernel
                        // prints it
  // Objects recorded as stale for the device when the event was sent.
  uint64_t stale_objects = 0;
  bool operator==(const PathEvent&) const = default;
};

// Validates and decodes one multicast message of the "cvm" family: the
// command must be PATH_DOWN or PATH_UP and CVM_ATTR_EVENT must hold a u32
// device id, a NUL-terminated address of at most CVM_PATH_ADDR_LEN + 8
// bytes and a u64 stale count. Anything else is kBadRequest naming the
// problem. Separate from the subscriber so tests can feed it hand-built
// messages.
Result<PathEvent> ParsePathEvent(const nlmsghdr* nlh);

// Listens for path events on its own libnl-genl socket and hands each one,
// parsed, to a callback on the subscriber's thread. Malformed events are
// logged and skipped.
//
// cvm.ko need not be loaded: until the "cvm" family and its "events" group
// resolve, the subscriber retries every `retry`. It also follows the
// generic netlink controller's notifications, so a module that is unloaded
// and loaded again is re-joined at once (the kernel drops memberships of an
// unregistered family), and re-resolves and re-joins every `recheck` while
// joined in case a notification was lost. Events sent while nobody was
// joined are lost; the kernel's STATUS_GET stale count is the backstop.
//
// Start() makes the first attempt on the caller's thread, so events caused
// by what the caller does next (a map push connects paths) are not missed
// when the module is loaded. Stop(), and the destructor, wake the thread
// through an eventfd and join it.
class PathEventSubscriber {
 public:
  using Callback = std::function<void(const PathEvent&)>;
  struct Options {
    std::chrono::milliseconds retry{2000};
    std::chrono::milliseconds recheck{30000};
  };

  explicit PathEventSubscriber(Callback callback)
      : PathEventSubscriber(std::move(callback), Options{}) {}
  PathEventSubscriber(Callback callback, Options options);
  ~PathEventSubscriber();
  PathEventSubscriber(const PathEventSubscriber&) = delete;
  PathEventSubscriber& operator=(const PathEventSubscriber&) = delete;

  // Opens the wake-up eventfd, tries to join once and starts the thread.
  // Fails only when the eventfd cannot be made or it runs already.
  Status Start();
  // Thread-safe, idempotent: makes the thread return and joins it.
  void Stop();

  // True while the socket is a member of cvm.ko's "events" group.
  bool listening() const { return listening_.load(); }
  // Events delivered to the callback and malformed events skipped.
  uint64_t delivered() const { return delivered_.load(); }
  uint64_t skipped() const { return skipped_.load(); }

 private:
  struct Socket;
  void Run();

  Callback callback_;
  Options options_;
  std::unique_ptr<Socket> socket_;  // used by the thread only, once started
  UniqueFd wake_fd_;
  std::thread thread_;
  std::mutex start_stop_mutex_;
  std::atomic<bool> listening_{false};
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> skipped_{0};
};

// Maps a kernel errno to a Code: EEXIST kAlreadyExists, ENOENT and ENODEV
// kNotFound, EBUSY kInUse, EPERM kUnavailable, the rest kInvalidArgument.
Code CodeFromErrno(int err);

// Decodes the extended-ack message (NLMSGERR_ATTR_MSG) of an NLMSG_ERROR
// message; "" when it has none.
std::string ExtackMessage(const nlmsghdr* error_message);

}  // namespace cvm
