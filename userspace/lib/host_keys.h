#pragma once

// Host authentication keys (the scheme is in cvm_wire.h, "Authentication").
//
// Who holds what:
//   - each host's cvmd makes the host's secret S (32 random bytes, a
//     generation number, the key id) and keeps it in a file of its own,
//     mode 0600 (--host-secret); S never leaves the host: cvmd gives it to
//     its own cvm.ko (MAP_SET) and uses it for its own copies (backfill);
//   - for every device of the cluster, the host's cvmd derives the
//     per-device key K = HMAC(S, "cvm-host-key" || cluster || host ||
//     device) and records it in the store (host_keys, one row per device
//     and host);
//   - the cvmd of the node serving a device loads that device's rows into
//     its cvm_target.ko (TARGET_HOSTS_SET), with "every volume" for cvmd's
//     agent (the leader, whose cvmd copies detached volumes) and, for the
//     others, only the volumes fenced for them (attached there).
// A target thus holds only keys for its own devices: one stolen from it
// opens no other device, and S cannot be computed back from it.
//
// Rotation (cvmadm host rotate-key): a new generation becomes current and
// its keys are recorded next to the old ones, so targets take both; cvm.ko
// switches to it (existing connections stay up, new ones use it); once
// every device row carries it the old generation is retired.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sealed_box.h"
#include "status.h"
#include "wire_client.h"

namespace cvm {

struct HostSecret {
  uint32_t key_id = 0;
  wire::Key secret{};
  bool operator==(const HostSecret&) const = default;
};

// One host's keys for one device. The store holds them sealed
// (sealed_box.h) from the host's sealing key to the node serving the
// device, so a reader of etcd (another node's cvmd among them) does not
// learn them. The sealing public keys are in the store too, which any cvmd
// may write: each cvmd keeps the key it first saw for a host (KernelSync),
// so a node that replaces another's key gets nothing sealed to it.
struct HostKeyRow {
  uint64_t device_id = 0;
  uint64_t host_id = 0;
  struct Key {
    uint32_t key_id = 0;
    wire::Key key{};
    bool operator==(const Key&) const = default;
  };
  std::vector<Key> keys;  // newest first; empty until opened
  // As stored: the serving node's host id (0: the RocksDB node), both
  // parties' sealing public keys, and the box.
  uint64_t sealed_to = 0;
  SealPublic sender{};
  SealPublic recipient{};
  std::string box;
};
// The sealed form only; a row without a box (from before sealing) is
// refused.
std::string EncodeHostKeyRow(const HostKeyRow& row);
Result<HostKeyRow> DecodeHostKeyRow(std::string_view value);
// Seals row.keys from `my_seal_key` to `recipient`, the sealing key of
// node `sealed_to`.
Status SealHostKeyRow(HostKeyRow& row, const wire::Key& my_seal_key,
                      const SealPublic& recipient, uint64_t sealed_to);
// Fills row.keys, if `my_seal_key` is the sender's or the recipient's.
Status OpenHostKeyRow(HostKeyRow& row, const wire::Key& my_seal_key);

// This host's secrets in their file: the one in use (cvm.ko's, cvmd's
// copies'), then, while a rotation is under way, the next one, whose keys
// are recorded but which nobody uses until every target has them.
// Thread-safe.
class HostSecrets {
 public:
  // Reads `path`, or makes it with a first secret (key id 1) when it does
  // not exist. A file of the wrong mode, owner or form is refused.
  // `create` false: a missing file is an error (tools reading cvmd's).
  static Result<std::unique_ptr<HostSecrets>> Load(std::string path,
                                                   bool create = true);

  std::vector<HostSecret> All() const;
  // The one in use.
  HostSecret Current() const;
  // The next one: a new secret (key id + 1) after the one in use, or the
  // one an unfinished rotation made.
  Result<HostSecret> Rotate();
  // The next one is in use and the old one gone.
  Status Finish();
  // This host's X25519 key for sealing its rows (sealed_box.h); made with
  // the file (or added to one from before sealing). Zero when a tool read
  // an old file without creating.
  wire::Key SealKey() const;

 private:
  explicit HostSecrets(std::string path) : path_(std::move(path)) {}
  Status Save();  // under mutex_

  std::string path_;
  mutable std::mutex mutex_;
  std::vector<HostSecret> all_;
  wire::Key seal_key_{};
};

// K for `device`, from `s`.
wire::Key DeviceKey(const HostSecret& s, uint64_t cluster_id, uint64_t host_id,
                    uint64_t device_id);

}  // namespace cvm
