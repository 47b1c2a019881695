#include "backfill.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <linux/cvm_wire.h>

#include <algorithm>
#include <bit>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cluster_map.h"
#include "ec_journal.h"
#include "erasure_code.h"
#include "kernel_sync.h"
#include "log.h"
#include "object.h"
#include "wire_client.h"

namespace cvm {
namespace {

constexpr uint32_t kListEntryLen = 24;  // struct cvm_wire_list_ent
constexpr uint32_t kListBatch = 1024;
constexpr uint32_t kCopyChunk = CVM_WIRE_MAX_DATA_LEN;

struct ShardEntry {
  uint64_t object_no = 0;
  uint16_t shard = 0;
  uint32_t version = 0;
};

// One connection per device, opened on first use; a device that cannot be
// reached stays failed for the round.
class Connections {
 public:
  Connections(std::map<uint32_t, MapPath> paths, wire::Credentials creds)
      : paths_(std::move(paths)), creds_(creds) {}

  Result<wire::Client*> Get(uint32_t device) {
    if (auto it = open_.find(device); it != open_.end()) return &it->second;
    auto p = paths_.find(device);
    if (p == paths_.end()) {
      return Unavailable(
          fmt::format("device {} is not served by a target", device));
    }
    if (p->second.transport != "tcp") {
      return Unavailable(fmt::format(
          "device {} is reached over {}; the backfill speaks tcp only", device,
          p->second.transport));
    }
    wire::Hello hello;
    hello.cluster_id = creds_.cluster_id;
    hello.host_id = creds_.host_id;
    hello.key_id = creds_.key_id;
    hello.device_id = device;
    auto c = wire::Client::Connect(p->second.addr, p->second.port, hello,
                                   creds_.secret, 5000);
    if (!c.ok()) {
      return c.status().WithContext(fmt::format(
          "device {} at {}:{}", device, p->second.addr, p->second.port));
    }
    return &open_.emplace(device, std::move(*c)).first->second;
  }

 private:
  std::map<uint32_t, MapPath> paths_;
  wire::Credentials creds_;
  std::map<uint32_t, wire::Client> open_;
};

Status ReplyOk(const Result<wire::Reply>& r, std::string_view what) {
  if (!r.ok()) return r.status().WithContext(what);
  if (r->header.status != CVM_WIRE_STATUS_OK) {
    return Unavailable(
        fmt::format("{}: {}", what, wire::StatusName(r->header.status)));
  }
  return {};
}

// Every object shard of `volume_id` the device holds.
// LIST counts as a change for fencing: it speaks for the volume's current
// attach epoch.
Result<std::vector<ShardEntry>> ListShards(wire::Client& c, uint64_t volume_id,
                                           uint64_t attach_epoch) {
  std::vector<ShardEntry> out;
  std::set<std::pair<uint64_t, uint16_t>> seen;
  uint64_t from = 0;
  for (;;) {
    wire::Header h = wire::MakeRequest(CVM_WIRE_OP_LIST);
    h.volume_id = volume_id;
    h.attach_epoch = attach_epoch;
    h.object_no = from;
    h.length = kListBatch * kListEntryLen;
    auto r = c.Call(h);
    CVM_RETURN_IF_ERROR(ReplyOk(r, "LIST"));
    const auto& d = r->data;
    const size_t n = d.size() / kListEntryLen;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* e = d.data() + i * kListEntryLen;
      ShardEntry s;
      s.object_no = wire::GetLe(e, 8);
      s.shard = static_cast<uint16_t>(wire::GetLe(e + 8, 2));
      s.version = static_cast<uint32_t>(wire::GetLe(e + 12, 4));
      if (seen.insert({s.object_no, s.shard}).second) out.push_back(s);
    }
    if (n < kListBatch) return out;
    // Go on from the last object (its other shards may follow), or past
    // it if a whole batch was that one object.
    const uint64_t last = wire::GetLe(d.data() + (n - 1) * kListEntryLen, 8);
    from = last == from ? last + 1 : last;
  }
}

// Bytes of one object shard: the object (replicated), or its chunks of
// every stripe (EC), as kernel/common computes them.
uint64_t ShardSize(const Volume& v, const Pool& pool) {
  if (pool.policy.kind != Policy::Kind::kErasure) return v.object_size;
  cvm_layout l{};
  l.size = v.size;
  l.object_shift = static_cast<uint32_t>(std::countr_zero(v.object_size));
  l.ec_k = pool.policy.k;
  l.unit_shift = static_cast<uint32_t>(std::countr_zero(v.stripe_unit));
  return cvm_ec_shard_size(&l);
}

bool AllZero(const std::vector<uint8_t>& b) {
  return std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == 0; });
}

// Removes what `dst` holds of the shard (absent is fine).
Status RemoveShard(wire::Client& dst, const wire::ObjectKey& key) {
  auto removed = dst.Remove(key, /*fua=*/true);
  if (!removed.ok()) return removed.status().WithContext("REMOVE");
  if (removed->header.status != CVM_WIRE_STATUS_OK &&
      removed->header.status != CVM_WIRE_STATUS_NOT_FOUND) {
    return Unavailable(
        fmt::format("REMOVE: {}", wire::StatusName(removed->header.status)));
  }
  return {};
}

// The shard's bytes [off, off + len), from wherever they come.
using ChunkSource =
    std::function<Result<std::vector<uint8_t>>(uint64_t off, uint32_t len)>;

Result<std::vector<uint8_t>> ReadChunk(wire::Client& src,
                                       const wire::ObjectKey& key, uint64_t off,
                                       uint32_t len);

// The whole shard to `dst` at `version`, then SET_VERSION. Where `dst` holds
// none (`held` false), whatever was there goes first, then the first chunk
// and every other one that is not zeroes are written (FUA). Where it holds
// a copy (a device back from being out keeps its copies), each chunk is
// compared with it and only the chunks that differ are written: a returning
// device receives what it lacks, not everything again.
Result<uint64_t> WriteShard(wire::Client& dst, const wire::ObjectKey& key,
                            uint32_t version, uint64_t size,
                            const ChunkSource& read, bool held) {
  if (!held) CVM_RETURN_IF_ERROR(RemoveShard(dst, key));
  uint64_t bytes = 0;
  for (uint64_t off = 0; off < size; off += kCopyChunk) {
    const uint32_t len =
        static_cast<uint32_t>(std::min<uint64_t>(kCopyChunk, size - off));
    CVM_ASSIGN_OR_RETURN(std::vector<uint8_t> data, read(off, len));
    if (held) {
      CVM_ASSIGN_OR_RETURN(std::vector<uint8_t> there,
                           ReadChunk(dst, key, off, len));
      if (there == data) continue;
    } else if (off != 0 && AllZero(data)) {
      // Zeroes need no write, except the first chunk: the shard must exist
      // (SET_VERSION needs it; a thick volume's shard is all zeroes).
      continue;
    }
    // FUA, durable when answered: the old copies go once the pins are cut.
    CVM_RETURN_IF_ERROR(
        ReplyOk(dst.WriteVersioned(key, off, data, version), "WRITE"));
    bytes += len;
  }
  auto set = dst.VersionOp(CVM_WIRE_OP_SET_VERSION, key, version);
  if (!set.ok()) return set.status().WithContext("SET_VERSION");
  if (set->header.status != CVM_WIRE_STATUS_OK &&
      set->header.status != CVM_WIRE_STATUS_STALE_VERSION) {
    return Unavailable(
        fmt::format("SET_VERSION: {}", wire::StatusName(set->header.status)));
  }
  return bytes;
}

// READ of `len` bytes at `off` of a shard (an absent one reads as zeroes).
Result<std::vector<uint8_t>> ReadChunk(wire::Client& src,
                                       const wire::ObjectKey& key, uint64_t off,
                                       uint32_t len) {
  wire::ObjectKey read_key = key;
  read_key.attach_epoch = 0;  // a read speaks for no attachment
  auto data = src.Read(read_key, off, len);
  CVM_RETURN_IF_ERROR(ReplyOk(data, "READ"));
  if (data->data.size() != len) {
    return Unavailable(
        fmt::format("READ returned {} bytes of {}", data->data.size(), len));
  }
  return std::move(data->data);
}

// The whole shard from `src` to `dst`, at the source's version.
Result<uint64_t> CopyShard(wire::Client& src, wire::Client& dst,
                           const wire::ObjectKey& key, uint32_t version,
                           uint64_t size, bool held) {
  return WriteShard(
      dst, key, version, size,
      [&](uint64_t off, uint32_t len) { return ReadChunk(src, key, off, len); },
      held);
}

struct CMapView {
  CMapPtr map;
  std::map<uint32_t, std::vector<uint32_t>> tables;  // pool -> PG table
  std::map<uint32_t, bool> up;                       // device -> up and in map
  std::map<uint32_t, bool> in;                       // device -> marked in

  const uint32_t* Row(uint32_t pool, uint32_t pg, uint32_t width) const {
    return tables.at(pool).data() + static_cast<size_t>(pg) * width;
  }
  // In the map and up: its copies can be read. A device marked down (by
  // hand, or after down_out_interval) or removed (a pin then names none)
  // holds nothing backfill may use.
  bool Live(uint32_t dev) const {
    auto it = up.find(dev);
    return dev != CVM_DEV_NONE && it != up.end() && it->second;
  }
  // In the map and marked out: its copies are kept for its return.
  bool Out(uint32_t dev) const {
    auto it = in.find(dev);
    return it != in.end() && !it->second;
  }
};

// (object, shard) -> (version, device) of its newest copy in its row.
using NewestCopies =
    std::map<std::pair<uint64_t, uint16_t>, std::pair<uint32_t, uint32_t>>;

// Shard `key.shard` of an EC object, rebuilt from the pin's current shards
// (every slot not in `erased`: on a live device at the object's newest
// version; an absent one reads as zeroes) and written to `dst` at
// `version`.
Result<uint64_t> RebuildShard(Connections& conns, wire::Client& dst,
                              const wire::ObjectKey& key, const cvm_pg_pin& pin,
                              uint32_t width, const ErasureCode& code,
                              uint32_t erased, uint32_t version, uint64_t size,
                              bool held) {
  std::vector<wire::Client*> from(width, nullptr);
  for (uint32_t j = 0; j < width; ++j) {
    if (erased & (1u << j)) continue;
    CVM_ASSIGN_OR_RETURN(from[j], conns.Get(pin.devs[j]));
  }
  std::vector<std::vector<uint8_t>> bufs(width);
  return WriteShard(
      dst, key, version, size,
      [&](uint64_t off, uint32_t len) -> Result<std::vector<uint8_t>> {
        std::vector<uint8_t*> ptrs(width);
        for (uint32_t j = 0; j < width; ++j) {
          if (from[j]) {
            wire::ObjectKey k = key;
            k.shard = static_cast<uint16_t>(j);
            CVM_ASSIGN_OR_RETURN(bufs[j], ReadChunk(*from[j], k, off, len));
          } else {
            bufs[j].assign(len, 0);
          }
          ptrs[j] = bufs[j].data();
        }
        CVM_RETURN_IF_ERROR(code.Reconstruct(ptrs, erased, len));
        return bufs[key.shard];
      },
      held);
}

Result<CMapView> View(const std::string& blob) {
  CMapView v;
  cvm_map* raw = nullptr;
  cvm_err err{};
  if (int ret = cvm_map_decode(blob.data(), blob.size(), &raw, &err); ret) {
    return Corruption(fmt::format("map: {}", err.why ? err.why : "bad"));
  }
  v.map.reset(raw);
  for (uint32_t i = 0; i < raw->nr_devices; ++i) {
    v.up[raw->devices[i].id] = raw->devices[i].state & CVM_DEV_UP;
    v.in[raw->devices[i].id] = raw->devices[i].state & CVM_DEV_IN;
  }
  for (uint32_t i = 0; i < raw->nr_pools; ++i) {
    uint32_t* table = nullptr;
    size_t n = 0;
    if (cvm_pg_table_create(raw, raw->pools[i].id, &table, &n, &err)) {
      return Internal(fmt::format("PG table: {}", err.why ? err.why : "?"));
    }
    v.tables[raw->pools[i].id].assign(table, table + n);
    cvm_pg_table_free(table);
  }
  return v;
}

// Why a pool's pinned PGs cannot be copied yet ("" when they can). A PG
// with as many copies on down devices as its min_size may have had writes
// acknowledged by those alone, so the live ones may be stale: it waits for
// them to return (or for 'device remove --force', which gives them up).
// And a PG needs one live copy (EC: k shards) to copy from.
std::string PinsReadable(const cvm_map& map, const cvm_pool& cp,
                         const Pool& pool, const CMapView& view) {
  const uint32_t width = cvm_pool_width(&cp);
  const uint32_t min_size = EffectiveMinSize(pool);
  const uint32_t needed = cp.kind == CVM_POOL_EC ? cp.k : 1;
  for (uint32_t i = 0; i < map.nr_pins; ++i) {
    const cvm_pg_pin& pin = map.pins[i];
    if (pin.pool_id != cp.id) continue;
    std::vector<uint32_t> down;
    uint32_t live = 0, none = 0;
    for (uint32_t s = 0; s < width; ++s) {
      if (pin.devs[s] == CVM_DEV_NONE) {
        ++none;  // given up (device removed by force) or never placed
      } else if (view.Live(pin.devs[s])) {
        ++live;
      } else {
        down.push_back(pin.devs[s]);
      }
    }
    // Slots given up waive the rule for themselves only: a device down
    // besides them may still hold the only acknowledged copy.
    if (!down.empty() && down.size() + none >= min_size) {
      return fmt::format(
          "PG {} has {} copies on down devices ({}) and {} given up, as "
          "many as its min_size: writes may have been acknowledged by those "
          "alone, so it waits for them to return (or for 'device remove "
          "--force')",
          pin.pg, down.size(), fmt::join(down, ", "), none);
    }
    if (live < needed) {
      return fmt::format(
          "PG {} keeps {} of the {} {} it needs on live devices: its data "
          "waits for a device to return",
          pin.pg, live, needed, cp.kind == CVM_POOL_EC ? "shards" : "copy");
    }
  }
  return "";
}

// Slot `s` of a pinned PG's up row, a device the pin lacks there (EC: in
// that slot): a backfill target.
bool IsTarget(const cvm_pg_pin& pin, const uint32_t* up, uint32_t width,
              uint32_t s, bool ec) {
  if (up[s] == CVM_DEV_NONE) return false;
  return ec ? pin.devs[s] != up[s]
            : std::find(pin.devs, pin.devs + width, up[s]) == pin.devs + width;
}

// Pinned PG -> its up row (CVM_MAX_PG_WIDTH slots), for one pool.
using UpRows = std::map<uint32_t, std::vector<uint32_t>>;

Result<UpRows> PinnedUpRows(const cvm_map& map, const cvm_pool& cp) {
  UpRows rows;
  for (uint32_t i = 0; i < map.nr_pins; ++i) {
    const cvm_pg_pin& pin = map.pins[i];
    if (pin.pool_id != cp.id) continue;
    std::vector<uint32_t> up(CVM_MAX_PG_WIDTH);
    if (cvm_place_pg(&map, &cp, pin.pg, up.data())) {
      return Internal("placement");
    }
    rows[pin.pg] = std::move(up);
  }
  return rows;
}

// An EC pool's pinned PG whose target in one slot holds another of its
// shards in the pin: cvm.ko leaves it to cvmd (its stale sets are per object).
bool HasCrossedPg(const cvm_map& map, const cvm_pool& cp, const UpRows& rows) {
  if (cp.kind != CVM_POOL_EC) return false;
  const uint32_t width = cvm_pool_width(&cp);
  for (const auto& [pg, up] : rows) {
    const cvm_pg_pin* pin = cvm_map_pin(&map, cp.id, pg);
    for (uint32_t s = 0; s < width; ++s) {
      if (IsTarget(*pin, up.data(), width, s, true) &&
          std::find(pin->devs, pin->devs + width, up[s]) != pin->devs + width) {
        return true;
      }
    }
  }
  return false;
}

// (device, object, shard) -> version of what the pool's backfill targets
// hold of `v` already. A device back from being out keeps its copies: they
// are compared instead of copied again, and those of objects the pin no
// longer holds (discarded meanwhile) are removed, never read back.
using TargetHoldings =
    std::map<std::tuple<uint32_t, uint64_t, uint16_t>, uint32_t>;

// Does `dst` hold the shard at no newer a version than `version`? (A newer
// one, of an object removed and written anew meanwhile, is replaced whole.)
bool HeldAtMost(const TargetHoldings& held, uint32_t dst, uint64_t object_no,
                uint16_t shard, uint32_t version) {
  auto h = held.find({dst, object_no, shard});
  return h != held.end() && h->second <= version;
}

Result<TargetHoldings> ListTargetHoldings(const cvm_map& map,
                                          const cvm_pool& cp,
                                          const UpRows& rows,
                                          const CMapView& view,
                                          Connections& conns, const Volume& v) {
  const uint32_t width = cvm_pool_width(&cp);
  const bool ec = cp.kind == CVM_POOL_EC;
  std::set<uint32_t> targets;
  for (const auto& [pg, up] : rows) {
    const cvm_pg_pin* pin = cvm_map_pin(&map, cp.id, pg);
    for (uint32_t s = 0; s < width; ++s) {
      if (IsTarget(*pin, up.data(), width, s, ec) && view.Live(up[s])) {
        targets.insert(up[s]);
      }
    }
  }
  TargetHoldings held;
  for (uint32_t dev : targets) {
    CVM_ASSIGN_OR_RETURN(wire::Client * c, conns.Get(dev));
    auto shards = ListShards(*c, v.id, v.attach_epoch);
    if (!shards.ok()) {
      return shards.status().WithContext(fmt::format("device {}", dev));
    }
    for (const ShardEntry& e : *shards) {
      if (e.object_no >= CVM_EC_JOURNAL_OBJECT) continue;
      const uint32_t pg = cvm_object_pg(v.id, e.object_no, cp.pg_num);
      auto up = rows.find(pg);
      if (up == rows.end()) continue;
      const cvm_pg_pin* pin = cvm_map_pin(&map, cp.id, pg);
      for (uint32_t s = 0; s < width; ++s) {
        if (up->second[s] == dev && (!ec || s == e.shard) &&
            IsTarget(*pin, up->second.data(), width, s, ec)) {
          held[{dev, e.object_no, e.shard}] = e.version;
        }
      }
    }
  }
  return held;
}

}  // namespace

Backfill::Backfill(MetadataStore& store, std::function<bool(uint64_t)> all_have,
                   std::function<int64_t()> leader_lease)
    : store_(store),
      all_have_(std::move(all_have)),
      leader_lease_(std::move(leader_lease)) {}

Result<BackfillRound> Backfill::RunOnce() {
  BackfillRound round;
  CVM_ASSIGN_OR_RETURN(MetadataStore::MapSnapshot snap,
                       store_.ReadMapSnapshot());
  round.epoch = snap.epoch;
  if (snap.blob.empty()) return round;
  CVM_ASSIGN_OR_RETURN(CMapView view, View(snap.blob));
  const cvm_map& map = *view.map;
  round.counted = true;
  round.pgs_moving = map.nr_pins;
  for (const auto& [pool_id, table] : view.tables) {
    const cvm_pool* cp = cvm_map_pool(&map, pool_id);
    const uint32_t width = cp ? cvm_pool_width(cp) : 0;
    for (size_t r = 0; width && r + width <= table.size(); r += width) {
      round.pgs_degraded +=
          std::any_of(table.begin() + r, table.begin() + r + width,
                      [&](uint32_t d) { return !view.Live(d); });
    }
  }
  CVM_ASSIGN_OR_RETURN(auto paths,
                       BuildMapPaths(snap.blob, snap.hosts, snap.devices));
  // Only devices a target serves are ever contacted.
  std::set<uint32_t> served, nearfull;
  for (const Device& d : snap.devices) {
    if (d.served) served.insert(static_cast<uint32_t>(d.id));
    if (d.nearfull || d.full) nearfull.insert(static_cast<uint32_t>(d.id));
  }
  std::map<uint32_t, MapPath> by_device;
  for (MapPath& p : paths) {
    if (served.count(p.device_id)) by_device[p.device_id] = std::move(p);
  }
  Connections conns(std::move(by_device), creds_);
  CVM_ASSIGN_OR_RETURN(auto volumes, store_.ListVolumes());
  CVM_ASSIGN_OR_RETURN(auto pools, store_.ListPools());

  std::map<uint32_t, MetadataStore::CopiedVolumes> ready;  // pool -> copies
  std::set<uint32_t> pinned_pools;
  for (uint32_t i = 0; i < map.nr_pins; ++i) {
    pinned_pools.insert(map.pins[i].pool_id);
  }
  for (const Pool& pool : pools) {
    const auto pool_id = static_cast<uint32_t>(pool.id);
    if (!pinned_pools.count(pool_id)) continue;
    const cvm_pool* cp = cvm_map_pool(&map, pool_id);
    if (!cp) continue;
    const uint32_t width = cvm_pool_width(cp);
    const bool ec = cp->kind == CVM_POOL_EC;
    const auto wait = [&](const std::string& why) {
      round.waiting.push_back(fmt::format("pool '{}': {}", pool.name, why));
    };
    std::map<uint64_t, uint64_t> copied;  // volume id -> attach epoch
    std::string blocked = PinsReadable(map, *cp, pool, view);
    CVM_ASSIGN_OR_RETURN(const UpRows rows, PinnedUpRows(map, *cp));
    const bool crossed = HasCrossedPg(map, *cp, rows);
    std::optional<ErasureCode> code;
    if (ec) {
      CVM_ASSIGN_OR_RETURN(ErasureCode c, ErasureCode::Create(cp->k, cp->m));
      code.emplace(std::move(c));
    }
    for (const Volume& v : volumes) {
      if (!blocked.empty()) break;
      if (v.pool_id != pool.id) continue;
      if (!v.attached_host.empty()) {
        // Its initiator copies it, under its object fences (EC: shard by
        // shard), except a crossed PG (kernel/initiator/backfill.c).
        if (ec && crossed) {
          blocked = fmt::format(
              "volume '{}' is attached on '{}': a shard moves to a device "
              "holding another shard of its PG (it moves once the volume "
              "is detached)",
              v.name, v.attached_host);
          break;
        }
        if (v.backfilled_epoch != snap.epoch ||
            v.backfilled_attach != v.attach_epoch) {
          blocked = fmt::format("volume '{}' is being copied by its host '{}'",
                                v.name, v.attached_host);
          break;
        }
        copied[v.id] = v.attach_epoch;
        continue;
      }
      // Where each shard of the volume is, on the pins' live devices.
      std::set<uint32_t> sources;
      for (uint32_t i = 0; i < map.nr_pins; ++i) {
        if (map.pins[i].pool_id != pool_id) continue;
        for (uint32_t s = 0; s < width; ++s) {
          if (view.Live(map.pins[i].devs[s]))
            sources.insert(map.pins[i].devs[s]);
        }
      }
      NewestCopies best;
      for (uint32_t dev : sources) {
        auto c = conns.Get(dev);
        if (!c.ok()) {
          blocked = c.status().message();
          break;
        }
        auto shards = ListShards(**c, v.id, v.attach_epoch);
        if (!shards.ok()) {
          blocked =
              fmt::format("device {}: {}", dev, shards.status().message());
          break;
        }
        for (const ShardEntry& e : *shards) {
          if (e.object_no >= CVM_EC_JOURNAL_OBJECT) continue;
          const uint32_t pg = cvm_object_pg(v.id, e.object_no, cp->pg_num);
          const cvm_pg_pin* pin = cvm_map_pin(&map, pool_id, pg);
          if (!pin) continue;
          const bool in_row = ec ? e.shard < width && pin->devs[e.shard] == dev
                                 : std::find(pin->devs, pin->devs + width,
                                             dev) != pin->devs + width;
          if (!in_row) continue;
          auto [it, fresh] = best.try_emplace({e.object_no, e.shard},
                                              std::pair{e.version, dev});
          if (!fresh && e.version > it->second.first) {
            it->second = {e.version, dev};
          }
        }
      }
      if (!blocked.empty()) break;
      auto held = ListTargetHoldings(map, *cp, rows, view, conns, v);
      if (!held.ok()) {
        blocked = held.status().message();
        break;
      }
      // Every object of a pinned PG: each slot of its up row the pin lacks
      // gets the shard, copied from the pin's device, or (EC) rebuilt from
      // the others where that device is dead or gone.
      // Degraded PGs (a copy on a dead device or none) before misplaced
      // ones: their redundancy comes back first.
      std::set<std::pair<bool, uint64_t>> order;
      const auto enqueue = [&](uint64_t object_no) {
        const uint32_t pg = cvm_object_pg(v.id, object_no, cp->pg_num);
        const cvm_pg_pin* pin = cvm_map_pin(&map, pool_id, pg);
        const bool degraded =
            std::any_of(pin->devs, pin->devs + width,
                        [&](uint32_t d) { return !view.Live(d); });
        order.insert({!degraded, object_no});
      };
      for (const auto& [key, where] : best) enqueue(key.first);
      for (const auto& [where, version] : *held) {
        enqueue(std::get<1>(where));
      }
      const uint64_t shard_size = ShardSize(v, pool);
      for (const auto& [misplaced, object_no] : order) {
        const uint32_t pg = cvm_object_pg(v.id, object_no, cp->pg_num);
        const cvm_pg_pin* pin = cvm_map_pin(&map, pool_id, pg);
        const uint32_t* up = rows.at(pg).data();
        // EC: the pin's current shards, on a live device at the object's
        // newest version. A write a shard missed BUMPs the others (and
        // creates absent ones), so a lower version, or an absent shard
        // where the others have one, missed a write: never a source.
        uint32_t newest = 0, stale = 0, current = 0;
        for (uint32_t j = 0; ec && j < width; ++j) {
          auto at = best.find({object_no, static_cast<uint16_t>(j)});
          if (view.Live(pin->devs[j]) && at != best.end()) {
            newest = std::max(newest, at->second.first);
          }
        }
        for (uint32_t j = 0; ec && j < width; ++j) {
          auto at = best.find({object_no, static_cast<uint16_t>(j)});
          const uint32_t version = at != best.end() ? at->second.first : 0;
          if (view.Live(pin->devs[j]) && version == newest) {
            ++current;
          } else {
            stale |= 1u << j;
          }
        }
        for (uint32_t s = 0; s < width && blocked.empty(); ++s) {
          const uint32_t dst = up[s];
          if (!IsTarget(*pin, up, width, s, ec)) continue;
          if (nearfull.count(dst)) {
            blocked = fmt::format(
                "device {} is nearfull: backfill places no data there", dst);
            break;
          }
          const uint16_t shard = ec ? static_cast<uint16_t>(s) : 0;
          const wire::ObjectKey k{v.id, object_no, shard, v.attach_epoch};
          auto to = conns.Get(dst);
          Result<uint64_t> bytes = uint64_t{0};
          if (!to.ok()) {
            bytes = to.status();
          } else if (ec && (stale & (1u << s)) && current < cp->k) {
            bytes = Unavailable(fmt::format(
                "only {} of its shards are current ({} needed): the others "
                "are on down devices or missed writes",
                current, cp->k));
          } else if (ec && (stale & (1u << s))) {
            bytes = RebuildShard(
                conns, **to, k, *pin, width, *code, stale, newest, shard_size,
                HeldAtMost(*held, dst, object_no, shard, newest));
            if (bytes.ok()) ++round.shards_rebuilt;
          } else if (auto at = best.find({object_no, shard});
                     at != best.end()) {
            auto src = conns.Get(at->second.second);
            bytes = src.ok() ? CopyShard(**src, **to, k, at->second.first,
                                         shard_size,
                                         HeldAtMost(*held, dst, object_no,
                                                    shard, at->second.first))
                             : Result<uint64_t>(src.status());
          } else {
            // A current shard its live device never wrote: zeroes.
            Status removed = RemoveShard(**to, k);
            bytes = removed.ok() ? Result<uint64_t>(uint64_t{0})
                                 : Result<uint64_t>(removed);
          }
          if (!bytes.ok()) {
            blocked = fmt::format(
                "volume '{}' object {} shard {} to device "
                "{}: {}",
                v.name, object_no, shard, dst, bytes.status().message());
            break;
          }
          ++round.shards_copied;
          round.bytes_copied += *bytes;
        }
        if (!blocked.empty()) break;
      }
      if (!blocked.empty()) break;
      copied[v.id] = v.attach_epoch;
    }
    if (!blocked.empty()) {
      wait(blocked);
      continue;
    }
    ready[pool_id] = std::move(copied);
  }
  // Every pool whose data is in place is cut over in one epoch.
  if (!ready.empty()) {
    auto settled = store_.SettlePins(snap.epoch, ready,
                                     leader_lease_ ? leader_lease_() : 0);
    if (!settled.ok()) {
      round.waiting.push_back(settled.status().message());
      return round;
    }
    for (uint32_t i = 0; i < map.nr_pins; ++i) {
      round.pgs_settled += ready.count(map.pins[i].pool_id);
    }
    round.settled_epoch = *settled;
    LogInfo(
        "backfill: {} PGs of {} pools moved to their devices in map "
        "epoch {} ({} shards, {} rebuilt, {} MiB copied)",
        round.pgs_settled, ready.size(), *settled, round.shards_copied,
        round.shards_rebuilt, round.bytes_copied >> 20);
    return round;  // the sweep waits until every kernel has that epoch
  }

  // Copies on the rows PGs moved off (recorded when their pins were cut):
  // only once every kernel holds this epoch (none reads or writes them
  // then), only of PGs not pinned again, only devices the row no longer
  // names, and only where every device the row names holds the shard at
  // least as new.
  if (!all_have_(snap.epoch)) return round;
  CVM_ASSIGN_OR_RETURN(std::string moved_raw, store_.GetBackfillMoved());
  if (moved_raw.empty()) return round;
  const nlohmann::json moved =
      nlohmann::json::parse(moved_raw, nullptr, /*allow_exceptions=*/false);
  if (!moved.is_array()) return Corruption("backfill_moved is not an array");
  // (pool, pg) -> the devices it moved off.
  std::map<std::pair<uint32_t, uint32_t>, std::set<uint32_t>> off_row;
  for (const auto& m : moved) {
    if (!m.is_object() || !m.contains("devs") || !m["devs"].is_array()) {
      return Corruption("backfill_moved entry without devs");
    }
    auto& devs = off_row[{m.value("pool", 0u), m.value("pg", 0u)}];
    for (const auto& d : m["devs"]) {
      if (d.is_number_unsigned()) devs.insert(d.get<uint32_t>());
    }
  }
  bool complete = true;
  std::set<uint32_t> unreachable;
  uint64_t kept = 0;
  for (const Volume& v : volumes) {
    const cvm_pool* cp = cvm_map_pool(&map, static_cast<uint32_t>(v.pool_id));
    if (!cp) continue;
    const uint32_t width = cvm_pool_width(cp);
    const bool ec = cp->kind == CVM_POOL_EC;
    // The devices this pool's PGs moved off, and every device of their rows.
    std::set<uint32_t> devices;
    for (const auto& [key, devs] : off_row) {
      if (key.first != cp->id) continue;
      if (cvm_map_pin(&map, cp->id, key.second)) continue;
      devices.insert(devs.begin(), devs.end());
      const uint32_t* row = view.Row(cp->id, key.second, width);
      for (uint32_t s = 0; s < width; ++s) {
        if (row[s] != CVM_DEV_NONE) devices.insert(row[s]);
      }
    }
    // (object, shard) -> device -> version.
    std::map<std::pair<uint64_t, uint16_t>, std::map<uint32_t, uint32_t>> held;
    for (uint32_t dev : devices) {
      if (!view.up.count(dev)) continue;  // gone: nothing left to remove
      if (!view.Live(dev) || !served.count(dev) || view.Out(dev)) {
        // Down: its old copies go once it returns (the record keeps it).
        // Out: they are kept until it is marked in again, when the PGs
        // placement gives it back are compared, not copied again, and the
        // others go; or until it is removed.
        unreachable.insert(dev);
        continue;
      }
      auto c = conns.Get(dev);
      auto shards = c.ok() ? ListShards(**c, v.id, v.attach_epoch)
                           : Result<std::vector<ShardEntry>>(c.status());
      if (!shards.ok()) {
        complete = false;
        continue;
      }
      for (const ShardEntry& e : *shards) {
        if (e.object_no >= CVM_EC_JOURNAL_OBJECT) continue;
        held[{e.object_no, e.shard}][dev] = e.version;
      }
    }
    for (const auto& [key, where] : held) {
      const auto [object_no, shard] = key;
      const uint32_t pg = cvm_object_pg(v.id, object_no, cp->pg_num);
      auto moved_off = off_row.find({cp->id, pg});
      if (moved_off == off_row.end() || cvm_map_pin(&map, cp->id, pg)) {
        continue;
      }
      const uint32_t* row = view.Row(cp->id, pg, width);
      const auto named = [&](uint32_t dev) {
        return ec ? shard < width && row[shard] == dev
                  : std::find(row, row + width, dev) != row + width;
      };
      for (const auto& [dev, version] : where) {
        if (named(dev) || !moved_off->second.count(dev)) continue;
        bool covered = true;
        for (uint32_t s = 0; s < width; ++s) {
          if (row[s] == CVM_DEV_NONE || (ec && s != shard)) continue;
          auto at = where.find(row[s]);
          covered &= at != where.end() && at->second >= version;
        }
        if (!covered) {
          // The row is behind (a resync still to come): later.
          ++kept;
          complete = false;
          continue;
        }
        auto c = conns.Get(dev);
        if (!c.ok()) {
          complete = false;
          continue;
        }
        const wire::ObjectKey k{v.id, object_no, shard, v.attach_epoch};
        if (ReplyOk((*c)->Remove(k, /*fua=*/true), "REMOVE").ok()) {
          ++round.shards_removed;
        } else {
          complete = false;
        }
      }
    }
  }
  if (kept) {
    LogInfo(
        "backfill: {} copies off their rows wait: their rows do not hold "
        "them as new yet",
        kept);
  }
  // Every moved PG swept (those pinned again stay for a later round).
  bool pinned_again = false;
  for (const auto& [key, devs] : off_row) {
    pinned_again |= cvm_map_pin(&map, key.first, key.second) != nullptr;
  }
  if (complete && !pinned_again) {
    // What only down or out devices still hold stays recorded for their
    // return.
    nlohmann::json left = nlohmann::json::array();
    for (const auto& [key, devs] : off_row) {
      std::vector<uint32_t> down;
      for (uint32_t d : devs) {
        if (unreachable.count(d)) down.push_back(d);
      }
      if (!down.empty()) {
        left.push_back(
            {{"pool", key.first}, {"pg", key.second}, {"devs", down}});
      }
    }
    const std::string kept_record = left.empty() ? std::string() : left.dump();
    if (kept_record == moved_raw) {
      // Only down devices' copies are left: nothing to write.
    } else if (Status s = store_.ClearBackfillMoved(moved_raw, kept_record);
               !s.ok()) {
      LogInfo("backfill: sweep record kept: {}", s.message());
    }
  }
  if (round.shards_removed) {
    LogInfo("backfill: removed {} copies no map row names (epoch {})",
            round.shards_removed, snap.epoch);
  }
  return round;
}

}  // namespace cvm
