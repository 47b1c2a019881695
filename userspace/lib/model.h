#pragma once

// The cluster's metadata records (DESIGN.md "Data model"), their validation
// rules and their JSON form. The same JSON is what the store keeps on disk and
// what the API returns, so decoding validates everything a record promises:
// a record that decodes is a record the rest of the code may trust.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"
#include "units.h"

namespace cvm {

// Limits. Names are short identifiers usable in paths and on the kernel side.
inline constexpr size_t kMaxNameLength = 63;
inline constexpr size_t kMaxAddresses = 16;
inline constexpr size_t kMaxPathLength = 4095;
inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint64_t kVolumeBlockSize = 4 * KiB;  // what cvm.ko serves
inline constexpr uint64_t kMinObjectSize = 64 * KiB;
inline constexpr uint64_t kMaxObjectSize = 64 * MiB;
// A target keeps an object shard in one extent of this size
// (kernel/target/store.c, CVM_EXTENT_SIZE): a replicated object is one
// shard, an ec(k,m) object k data shards of object_size / k.
inline constexpr uint64_t kTargetExtentSize = 4 * MiB;
inline constexpr uint64_t kDefaultObjectSize = 4 * MiB;
inline constexpr uint64_t kMinStripeUnit = 4 * KiB;
inline constexpr uint64_t kDefaultEcStripeUnit = 4 * KiB;
inline constexpr uint64_t kMaxVolumeSize = uint64_t{1} << 60;  // 1 EiB
inline constexpr uint32_t kMaxReplicas = 5;
inline constexpr uint32_t kMinEcK = 2, kMaxEcK = 8;
inline constexpr uint32_t kMinEcM = 1, kMaxEcM = 4;
inline constexpr uint32_t kMaxPgNum = 32768;
inline constexpr uint32_t kDefaultPgNum = 64;
// Weights become 16.16 fixed point in the kernel map.
inline constexpr double kMaxWeight = 65535.0;
inline constexpr double kMinWeight = 1.0 / 65536;

enum class Transport { kTcp, kRdma };
enum class FailureDomain { kHost, kRack, kRow };
enum class Provisioning { kThin, kThick };

std::string_view ToString(Transport t);
std::string_view ToString(FailureDomain f);
std::string_view ToString(Provisioning p);
Result<Transport> ParseTransport(std::string_view s);
Result<FailureDomain> ParseFailureDomain(std::string_view s);
Result<Provisioning> ParseProvisioning(std::string_view s);

struct Host {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> addresses;  // "10.0.0.1:7800", "[fe80::1]:7800"
  Transport transport = Transport::kTcp;
  // Failure-domain path: the host sits in rack `rack` of row `row`. Empty
  // means "not placed": such a host is its own rack and row.
  std::string rack;
  std::string row;
  // Addresses (a subset of `addresses`) the host's cvm_target listens on,
  // as set by "target listen": cvmd re-listens on them when it starts.
  std::vector<std::string> listeners;
  // Joining a cluster (node_identity.h), as SHA-256 hex digests: of the
  // one-time join token `host add` printed, until the host's cvmd joins
  // with it; then of the key that cvmd keeps (its --node-key file). Both
  // empty: added before hosts joined (it must be given a token with `host
  // token`) or with RocksDB (one node, always joined).
  std::string join_hash;
  std::string key_hash;
  int64_t created = 0;  // unix seconds
};

struct Device {
  uint64_t id = 0;
  uint64_t host_id = 0;
  std::string path;  // backing block device on the host, e.g. /dev/nvme0n1
  uint64_t capacity = 0;
  double weight = 1.0;  // relative share of data placed here
  std::string device_class = "nvme";
  bool up = true;  // reachable
  bool in = true;  // eligible for placement
  // cvm_target serves it ("target device add"); cvmd re-adds it on start.
  // Not part of the map: changing it cuts no epoch.
  bool served = false;
  // Past the cluster's nearfull_ratio (backfill places nothing here) and
  // full_ratio (the map marks it full: writes that would reach it are
  // refused with NO_SPACE), as its node's cvmd last measured it.
  bool nearfull = false;
  bool full = false;
  int64_t created = 0;
};

struct Policy {
  enum class Kind { kReplicated, kErasure };
  Kind kind = Kind::kReplicated;
  uint32_t replicas = 3;  // kReplicated
  uint32_t k = 0, m = 0;  // kErasure

  static Policy Replicated(uint32_t n) { return {Kind::kReplicated, n, 0, 0}; }
  static Policy Erasure(uint32_t k, uint32_t m) {
    return {Kind::kErasure, 0, k, m};
  }
  // Devices each placement group needs.
  uint32_t width() const {
    return kind == Kind::kReplicated ? replicas : k + m;
  }
  bool operator==(const Policy&) const = default;
};

// "10.0.0.1:7800" or "[fe80::1]:7800" split into a numeric address (no
// brackets) and a port; kInvalidArgument when either part is missing or not
// numeric.
struct HostPort {
  std::string addr;
  uint16_t port = 0;
};
Result<HostPort> ParseHostPort(std::string_view address);

// What a new record must satisfy beyond what a stored one is checked for
// when read (records written by older builds still load, so they can be
// fixed or removed): a host's addresses are numeric IP:PORT, as the
// kernel's map and `target listen` take them, none twice; a device's
// weight is one the map's 16.16 fixed point can hold (at least 1/65536).
Status ValidateNewHost(const Host& h);
Status ValidateNewDevice(const Device& d);

// "replicated:3" or "ec:4,2" (also "ec:4+2").
Result<Policy> ParsePolicy(std::string_view text);
std::string ToString(const Policy& p);

struct Pool {
  uint64_t id = 0;
  std::string name;
  Policy policy;
  FailureDomain failure_domain = FailureDomain::kHost;
  uint32_t pg_num = kDefaultPgNum;
  std::string device_class;  // empty: any class
  // Copies (EC: shards) a write must reach to be acknowledged; 0: the
  // policy's default, EffectiveMinSize().
  uint32_t min_size = 0;
  int64_t created = 0;
};

// The pool's min_size, or its policy's default: replicated(n) a majority,
// n - n/2; ec(k,m) k + 1 for m >= 2, k for m = 1 (cvm_pool_min_size()).
uint32_t EffectiveMinSize(const Pool& p);
// Raw bytes the policy spends to store `bytes`: n copies, or (k + m) / k
// (rounded up).
uint64_t RawBytes(const Policy& p, uint64_t bytes);

struct Volume {
  uint64_t id = 0;
  std::string name;
  uint64_t pool_id = 0;
  uint64_t size = 0;
  uint64_t object_size = kDefaultObjectSize;
  uint64_t stripe_unit = kDefaultObjectSize;
  Provisioning provisioning = Provisioning::kThin;
  uint64_t snap_seq = 0;  // newest snapshot's seq; 0 = no snapshot yet
  // Where the volume is attached: a host name, "" when detached.
  std::string attached_host;
  // Bumped on every attach and sent with every request: targets fence
  // writers with an older epoch. Never goes down, also across detaches.
  uint64_t attach_epoch = 0;
  // The attach epoch a kernel device of attached_host last served (0:
  // none yet). An epoch not yet served may be used by the next attach
  // without a new one (a hand-over cuts it), one that was served never.
  uint64_t served_epoch = 0;
  // Host id -> the newest attach epoch that host's cvmd set on its
  // targets (fencing across nodes): an attach waits until every storage
  // node that is up has fenced its epoch.
  std::map<uint64_t, uint64_t> fenced;
  // A migration asked for: the host the attached host hands the volume to
  // once its device is closed; "" when none. migrate_error: why the last
  // one was refused ("" when it was not).
  std::string migrate_to;
  std::string migrate_error;
  // The map epoch whose pinned PGs the attached host's cvm.ko has copied
  // for this volume under attach epoch `backfilled_attach` (backfill.h;
  // 0: none). Valid only while attach_epoch is that one.
  uint64_t backfilled_epoch = 0;
  uint64_t backfilled_attach = 0;
  int64_t created = 0;
};

struct Snapshot {
  uint64_t id = 0;
  uint64_t volume_id = 0;
  std::string name;  // unique within its volume
  uint64_t seq = 0;
  uint64_t size = 0;  // the volume's size when taken
  int64_t created = 0;
};

// One numbered map epoch: why it was cut and when.
struct MapEpoch {
  uint64_t epoch = 0;
  int64_t created = 0;
  std::string reason;  // "host.add h1"
  // The sealed map of this epoch (metadata_store "maps"), or why there is
  // none: a topology kernel/common refuses to place on (no devices, fewer
  // failure domains than a pool needs, ...) is recorded, not served.
  uint64_t map_size = 0;
  uint32_t map_crc = 0;
  std::string problem;
  std::vector<std::string> left_out;  // pools the map could not place
};

// What cvm.ko last said about the path to a device: its PATH_DOWN and
// PATH_UP events (include/uapi/linux/cvm.h), as cvmd recorded them. Not
// topology: recording one cuts no map epoch.
inline constexpr size_t kMaxPathAddressLength = 63;
// What one initiator's cvm.ko last said of its path to a device.
struct InitiatorPath {
  bool up = false;
  int64_t since = 0;
  uint64_t stale_objects = 0;
  std::string address;
  bool operator==(const InitiatorPath&) const = default;
};

struct PathState {
  uint64_t device_id = 0;
  bool up = false;
  int64_t since = 0;  // unix seconds: when cvmd received the event
  // Objects recorded as stale for the device when the event was sent: on
  // "down" what it had missed by then, on "up" what is left to resync.
  uint64_t stale_objects = 0;
  std::string address;  // the target's, as the kernel printed it
  // The initiator host whose event this is ("" in older records); the
  // fields above are the newest event of any initiator.
  std::string host;
  // Each initiator's own last event, by host name.
  std::map<std::string, InitiatorPath> initiators;
  bool operator==(const PathState&) const = default;
};

// Cluster-wide settings (`cvmadm config`), one record in the store's meta.
struct ClusterSettings {
  // Seconds a device's path may stay down (every initiator that reported
  // on it says down) before the leader marks it out and its data is
  // rebuilt on the others; 0: never.
  uint64_t down_out_interval = 600;
  // Shares of a device's space past which it is nearfull (a warning;
  // backfill places no data there) and full (writes reaching it are
  // refused with NO_SPACE before any copy takes them).
  double nearfull_ratio = 0.85;
  double full_ratio = 0.95;
  // PGs of pools holding data the balancer moves at once to even out the
  // devices' shares (PGs still moving count against it); 0: none, rows
  // then only follow devices that leave.
  uint32_t balancer_max_moves = 64;
  // Failed requests (I/O errors of its disk, its path up) within a minute
  // after which a device is marked down and out; 0: never.
  uint32_t io_error_limit = 16;
  bool operator==(const ClusterSettings&) const = default;
};
// Each setting's name and what it means, for `config get` and errors.
const std::vector<std::pair<std::string, std::string>>& SettingNames();
// Sets `key` from its text form; kInvalidArgument (naming the key and the
// accepted values) for an unknown key or a bad value.
Status ApplySetting(ClusterSettings* s, std::string_view key,
                    std::string_view value);
nlohmann::json ToJson(const ClusterSettings& s);
// An absent record is the defaults; unknown fields are refused.
Result<ClusterSettings> DecodeClusterSettings(std::string_view bytes);

// Field rules, independent of other records (references are the store's job).
// `kind` is used in messages: "volume name 'a b' ...".
Status ValidateName(std::string_view kind, std::string_view name);
Status ValidateHost(const Host& h);
Status ValidateDevice(const Device& d);
Status ValidatePolicy(const Policy& p);
Status ValidatePool(const Pool& p);
Status ValidateVolume(const Volume& v);
Status ValidateSnapshot(const Snapshot& s);
Status ValidatePathState(const PathState& p);

nlohmann::json ToJson(const Host& h);
nlohmann::json ToJson(const Device& d);
nlohmann::json ToJson(const Policy& p);
nlohmann::json ToJson(const Pool& p);
nlohmann::json ToJson(const Volume& v);
nlohmann::json ToJson(const Snapshot& s);
nlohmann::json ToJson(const MapEpoch& e);
// {"device_id", "state": "up"|"down", "since", "stale_objects", "address"}
nlohmann::json ToJson(const PathState& p);

// Decoding: parse, check every field's presence and type, then the Validate*
// rules. Failures are kCorruption with a reason naming the field.
Result<Host> DecodeHost(std::string_view bytes);
Result<Device> DecodeDevice(std::string_view bytes);
Result<Pool> DecodePool(std::string_view bytes);
Result<Volume> DecodeVolume(std::string_view bytes);
Result<Snapshot> DecodeSnapshot(std::string_view bytes);
Result<MapEpoch> DecodeMapEpoch(std::string_view bytes);
Result<PathState> DecodePathState(std::string_view bytes);

// Policy from its JSON object form ({"type":"ec","k":4,"m":2}) or its text
// form ("ec:4,2"); `code` is the failure code.
Result<Policy> PolicyFromJson(const nlohmann::json& j, Code code);

std::string Encode(const nlohmann::json& record);

}  // namespace cvm
