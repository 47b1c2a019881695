#include "balancer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <set>
#include <unordered_map>

namespace cvm {
namespace {

constexpr uint32_t kNone = CVM_DEV_NONE;
// Devices tried for one move before giving up on it: the first almost
// always fits (only the PG's other failure domains refuse).
constexpr size_t kCandidates = 64;
// How far a device may drift from its share before it is evened out
// (Even); at 100 or more placements per device it is at most one PG.
constexpr double kTolerance = 0.01;

// Each device's failure domain at every level: the highest ancestor below
// the root whose type is at most the level, as placement descends to it
// (levels may be skipped). Indexed by device index.
class Domains {
 public:
  explicit Domains(const cvm_map& map) : map_(map) {
    bucket_parent_.assign(map.nr_buckets, kNone);
    device_parent_.assign(map.nr_devices, kNone);
    std::unordered_map<int32_t, uint32_t> bucket_index;
    std::unordered_map<uint32_t, uint32_t> device_index;
    for (uint32_t b = 0; b < map.nr_buckets; ++b)
      bucket_index[map.buckets[b].id] = b;
    for (uint32_t d = 0; d < map.nr_devices; ++d)
      device_index[map.devices[d].id] = d;
    for (uint32_t b = 0; b < map.nr_buckets; ++b) {
      const cvm_bucket& bucket = map.buckets[b];
      for (uint32_t c = 0; c < bucket.nr_children; ++c) {
        const int32_t id = map.children[bucket.first_child + c];
        if (id < 0) {
          bucket_parent_[bucket_index.at(id)] = b;
        } else {
          device_parent_[device_index.at(static_cast<uint32_t>(id))] = b;
        }
      }
    }
  }

  // A number naming device `d`'s domain at `level`: the device itself
  // (its index) or its bucket (nr_devices + bucket index).
  uint32_t Of(uint32_t d, uint32_t level) const {
    if (level == CVM_TYPE_DEVICE) return d;
    uint32_t found = kNone;
    for (uint32_t b = device_parent_[d]; b != kNone; b = bucket_parent_[b]) {
      if (map_.buckets[b].type > level || bucket_parent_[b] == kNone) break;
      found = b;
    }
    return found == kNone ? d : map_.nr_devices + found;
  }

 private:
  const cvm_map& map_;
  std::vector<uint32_t> bucket_parent_;
  std::vector<uint32_t> device_parent_;
};

// One pool's rows and the counts that drive the moves.
class PoolBalancer {
 public:
  PoolBalancer(const cvm_map& map, const cvm_pool& pool, const Domains& domains,
               const BalanceOptions& options)
      : map_(map), pool_(pool), width_(cvm_pool_width(&pool)) {
    index_.reserve(map.nr_devices);
    domain_.resize(map.nr_devices);
    eligible_.resize(map.nr_devices);
    takes_.resize(map.nr_devices);
    up_.resize(map.nr_devices);
    weight_.resize(map.nr_devices);
    for (uint32_t d = 0; d < map.nr_devices; ++d) {
      const cvm_device& dev = map.devices[d];
      index_[dev.id] = d;
      domain_[d] = domains.Of(d, pool.failure_domain);
      eligible_[d] =
          (dev.state & CVM_DEV_IN) && dev.weight &&
          (!pool.device_class || cvm_dev_class(dev.state) == pool.device_class);
      // A slot is given only to a device that can be filled now.
      takes_[d] = eligible_[d] && (dev.state & CVM_DEV_UP) &&
                  !(dev.state & CVM_DEV_FULL) &&
                  !options.no_new_data.count(dev.id);
      weight_[d] = eligible_[d] ? dev.weight : 0;
      up_[d] = dev.state & CVM_DEV_UP;
    }
  }

  Status Start(const std::vector<uint32_t>* previous) {
    const size_t n = static_cast<size_t>(pool_.pg_num) * width_;
    crush_.resize(n);
    for (uint32_t pg = 0; pg < pool_.pg_num; ++pg) {
      if (cvm_place_pg(&map_, &pool_, pg, &crush_[size_t{pg} * width_]))
        return Internal(
            fmt::format("pool {} PG {}: placement failed", pool_.id, pg));
    }
    crush_slots_.assign(map_.nr_devices, {});
    for (size_t i = 0; i < n; ++i) {
      auto it = index_.find(crush_[i]);
      if (it != index_.end()) crush_slots_[it->second].push_back(i);
    }
    rows_.assign(n, kNone);
    const std::vector<uint32_t>& from =
        previous && previous->size() == n ? *previous : crush_;
    for (size_t i = 0; i < n; ++i) {
      auto it = index_.find(from[i]);
      rows_[i] = from[i] == kNone || it == index_.end() ? kNone : it->second;
    }
    // Straw2's empty slots stay empty: the tree has no device for them.
    slots_.assign(map_.nr_devices, {});
    count_.assign(map_.nr_devices, 0);
    std::vector<size_t> holes;
    for (uint32_t pg = 0; pg < pool_.pg_num; ++pg) {
      uint32_t* row = &rows_[size_t{pg} * width_];
      for (uint32_t s = 0; s < width_; ++s) {
        if (row[s] != kNone && !eligible_[row[s]]) row[s] = kNone;
      }
      for (uint32_t s = 0; s < width_; ++s) {
        const size_t at = size_t{pg} * width_ + s;
        const bool clash =
            row[s] != kNone && std::any_of(row, row + s, [&](uint32_t o) {
              return o != kNone && domain_[o] == domain_[row[s]];
            });
        if (row[s] != kNone && !clash) {
          Add(row[s], at);
        } else {
          row[s] = kNone;
          if (crush_[at] != kNone) holes.push_back(at);
        }
      }
    }
    placed_ = holes.size();
    for (uint32_t d = 0; d < map_.nr_devices; ++d) placed_ += count_[d];
    double total_weight = 0;
    for (uint32_t d = 0; d < map_.nr_devices; ++d) total_weight += weight_[d];
    share_.assign(map_.nr_devices, 0);
    for (uint32_t d = 0; d < map_.nr_devices; ++d) {
      share_[d] = total_weight ? placed_ * weight_[d] / total_weight : 0;
    }
    shares_known_ = true;
    for (uint32_t d = 0; d < map_.nr_devices; ++d) Rank(d);
    for (size_t at : holes) {
      const uint32_t pg = static_cast<uint32_t>(at / width_);
      const uint32_t s = static_cast<uint32_t>(at % width_);
      uint32_t to = kNone;
      auto c = index_.find(crush_[at]);
      if (c != index_.end() && Under(c->second) && Fits(pg, s, c->second)) {
        to = c->second;
      } else {
        to = LeastFilled(pg, s);
      }
      if (to == kNone)
        to = Fallback(pg, s, c == index_.end() ? kNone : c->second);
      if (to == kNone) {
        // Nothing fits: the PG keeps straw2's row whole (what the kernel
        // gives a row without overrides), so rows_ says what the map does.
        KeepStraw2Row(pg);
        continue;
      }
      rows_[at] = to;
      Add(to, at);
      ++result_.refilled;
    }
    return Status();
  }

  // Step 3. Returns the PGs moved; stops after `max_pgs` of them.
  //
  // A device is evened out when it is more than kTolerance over its share
  // (then down to its share rounded up) or more than kTolerance under it
  // (then up to its share rounded down). The gap between the trigger and
  // the goal is what keeps a small change from moving more than itself: a
  // new device lowers every share a little, and a goal alone would then
  // move one slot off each device whose rounded share went down.
  uint32_t Even(uint32_t max_pgs, bool* capped) {
    std::set<uint32_t> moved_pgs;
    std::set<std::pair<double, uint32_t>> over;  // fullest last
    for (uint32_t d = 0; d < map_.nr_devices; ++d) {
      if (TooFull(d)) over.emplace(Ratio(d), d);
    }
    while (!over.empty()) {
      if (moved_pgs.size() >= max_pgs) {
        *capped = true;
        break;
      }
      const uint32_t d = std::prev(over.end())->second;
      over.erase(std::prev(over.end()));
      if (!MoveOneOff(d, &moved_pgs)) continue;  // nothing fits: stuck
      if (Over(d)) over.emplace(Ratio(d), d);
    }
    std::set<std::pair<double, uint32_t>> under;  // emptiest first
    for (uint32_t d = 0; d < map_.nr_devices; ++d) {
      if (TooEmpty(d)) under.emplace(Ratio(d), d);
    }
    while (!under.empty() && !*capped) {
      if (moved_pgs.size() >= max_pgs) {
        *capped = true;
        break;
      }
      const uint32_t d = under.begin()->second;
      under.erase(under.begin());
      if (!MoveOneOnto(d, &moved_pgs)) continue;
      if (count_[d] < std::floor(share_[d])) under.emplace(Ratio(d), d);
    }
    result_.pgs_moved = static_cast<uint32_t>(moved_pgs.size());
    return result_.pgs_moved;
  }

  Result<PoolBalance> Finish(std::vector<cvm_pg_override>* out) {
    result_.pool_id = pool_.id;
    // The kernel ignores a PG's overrides that name a device twice: rows_
    // would then not be the map's row.
    for (uint32_t pg = 0; pg < pool_.pg_num; ++pg) {
      const uint32_t* row = &rows_[size_t{pg} * width_];
      for (uint32_t s = 1; s < width_; ++s) {
        if (row[s] != kNone && std::find(row, row + s, row[s]) != row + s)
          return Internal(fmt::format(
              "balancer: pool {} PG {} names a device twice", pool_.id, pg));
      }
    }
    result_.balanced = true;
    for (uint32_t d = 0; d < map_.nr_devices; ++d) {
      if (share_[d] > 0)
        result_.max_share = std::max(result_.max_share, Ratio(d));
      if (TooFull(d) || TooEmpty(d)) result_.balanced = false;
    }
    for (uint32_t pg = 0; pg < pool_.pg_num; ++pg) {
      for (uint32_t s = 0; s < width_; ++s) {
        const size_t at = size_t{pg} * width_ + s;
        const uint32_t id =
            rows_[at] == kNone ? kNone : map_.devices[rows_[at]].id;
        if (id == crush_[at] || id == kNone) continue;
        out->push_back({pool_.id, pg, s, id});
        ++result_.overrides;
      }
    }
    return result_;
  }

 private:
  double Ratio(uint32_t d) const {
    return share_[d] > 0 ? count_[d] / share_[d]
                         : (count_[d] ? std::numeric_limits<double>::max() : 0);
  }
  bool Over(uint32_t d) const { return count_[d] > std::ceil(share_[d]); }
  // Step 3's triggers (see Even).
  bool TooFull(uint32_t d) const {
    return eligible_[d] && count_[d] > std::max(std::ceil(share_[d]),
                                                share_[d] * (1 + kTolerance));
  }
  bool TooEmpty(uint32_t d) const {
    return takes_[d] && count_[d] < std::min(std::floor(share_[d]),
                                             share_[d] * (1 - kTolerance));
  }

  // Counts change only here, so ranked_ stays ordered (once shares are
  // known: Start fills it after counting the kept slots).
  void Add(uint32_t d, size_t at) {
    Unrank(d);
    slots_[d].push_back(at);
    ++count_[d];
    Rank(d);
  }
  void Remove(uint32_t d, size_t at) {
    Unrank(d);
    auto& v = slots_[d];
    *std::find(v.begin(), v.end(), at) = v.back();
    v.pop_back();
    --count_[d];
    Rank(d);
  }
  void Rank(uint32_t d) {
    if (shares_known_ && share_[d] > 0) ranked_.emplace(Ratio(d), d);
  }
  void Unrank(uint32_t d) {
    if (shares_known_) ranked_.erase({Ratio(d), d});
  }

  // No other slot of the PG uses d's failure domain.
  bool Fits(uint32_t pg, uint32_t slot, uint32_t d) const {
    for (uint32_t s = 0; s < width_; ++s) {
      const uint32_t o = rows_[size_t{pg} * width_ + s];
      if (s != slot && o != kNone && domain_[o] == domain_[d]) return false;
    }
    return true;
  }

  // When no device that takes new data fits a hole: straw2's own choice if
  // it fits (it is in; it may be down, nearfull or full), else the emptiest
  // device that may hold the pool's data and fits.
  uint32_t Fallback(uint32_t pg, uint32_t slot, uint32_t straw2) const {
    if (straw2 != kNone && !InRow(pg, straw2) && Fits(pg, slot, straw2))
      return straw2;
    for (const auto& [ratio, d] : ranked_) {
      if (!InRow(pg, d) && Fits(pg, slot, d)) return d;
    }
    return kNone;
  }

  void KeepStraw2Row(uint32_t pg) {
    for (uint32_t s = 0; s < width_; ++s) {
      const size_t at = size_t{pg} * width_ + s;
      if (rows_[at] != kNone) Remove(rows_[at], at);
      auto c = index_.find(crush_[at]);
      rows_[at] = c == index_.end() ? kNone : c->second;
      if (rows_[at] != kNone) Add(rows_[at], at);
    }
  }

  // The device furthest below its share that may take slot `slot` of `pg`.
  uint32_t LeastFilled(uint32_t pg, uint32_t slot) const {
    for (const auto& [ratio, d] : ranked_) {
      if (takes_[d] && !InRow(pg, d) && Fits(pg, slot, d)) return d;
    }
    return kNone;
  }

  bool Under(uint32_t d) const {
    return takes_[d] && count_[d] + 1 <= std::ceil(share_[d]) &&
           count_[d] < share_[d];
  }

  // Moves one slot of `over` to a device below its share; false when no
  // slot of it fits any.
  bool MoveOneOff(uint32_t over, std::set<uint32_t>* moved_pgs) {
    // Prefer a slot whose straw2 choice is below its share: the move
    // removes an override instead of adding one.
    for (size_t at : slots_[over]) {
      auto c = index_.find(crush_[at]);
      if (c == index_.end() || c->second == over || !Under(c->second)) continue;
      const uint32_t to = c->second;
      const uint32_t pg = static_cast<uint32_t>(at / width_);
      if (Movable(pg) && !InRow(pg, to) &&
          Fits(pg, static_cast<uint32_t>(at % width_), to)) {
        Move(over, to, at, moved_pgs);
        return true;
      }
    }
    size_t tried = 0;
    for (const auto& [ratio, to] : ranked_) {
      if (!takes_[to]) continue;
      if (!Under(to) || ++tried > kCandidates) break;
      for (size_t at : slots_[over]) {
        const uint32_t pg = static_cast<uint32_t>(at / width_);
        if (Movable(pg) && !InRow(pg, to) &&
            Fits(pg, static_cast<uint32_t>(at % width_), to)) {
          Move(over, to, at, moved_pgs);
          return true;
        }
      }
    }
    return false;
  }

  // Moves one slot to `under` from the fullest device over its share that
  // has one that fits.
  bool MoveOneOnto(uint32_t under, std::set<uint32_t>* moved_pgs) {
    // First the slots straw2 gives it: a device marked in again gets back
    // the PGs it held before it went out (straw2 is stable across out and
    // in), whose old copies are still on it.
    for (size_t at : crush_slots_[under]) {
      const uint32_t from = rows_[at];
      const uint32_t pg = static_cast<uint32_t>(at / width_);
      if (from != kNone && from != under && count_[from] > share_[from] &&
          Movable(pg) && !InRow(pg, under) &&
          Fits(pg, static_cast<uint32_t>(at % width_), under)) {
        Move(from, under, at, moved_pgs);
        return true;
      }
    }
    size_t tried = 0;
    for (auto it = ranked_.rbegin(); it != ranked_.rend(); ++it) {
      const uint32_t from = it->second;
      if (count_[from] <= share_[from] || ++tried > kCandidates) break;
      for (size_t at : slots_[from]) {
        const uint32_t pg = static_cast<uint32_t>(at / width_);
        if (Movable(pg) && !InRow(pg, under) &&
            Fits(pg, static_cast<uint32_t>(at % width_), under)) {
          Move(from, under, at, moved_pgs);
          return true;
        }
      }
    }
    return false;
  }

  // Step 3 leaves a PG with a copy on a down device where it is: moving it
  // would wait on that copy (backfill's min_size rule) and hold up the
  // moves that restore redundancy.
  bool Movable(uint32_t pg) const {
    const uint32_t* row = &rows_[size_t{pg} * width_];
    return std::all_of(row, row + width_,
                       [&](uint32_t d) { return d == kNone || up_[d]; });
  }

  bool InRow(uint32_t pg, uint32_t d) const {
    const uint32_t* row = &rows_[size_t{pg} * width_];
    return std::find(row, row + width_, d) != row + width_;
  }

  void Move(uint32_t from, uint32_t to, size_t at,
            std::set<uint32_t>* moved_pgs) {
    Remove(from, at);
    rows_[at] = to;
    Add(to, at);
    ++result_.moved;
    moved_pgs->insert(static_cast<uint32_t>(at / width_));
  }

  const cvm_map& map_;
  const cvm_pool& pool_;
  const uint32_t width_;
  std::unordered_map<uint32_t, uint32_t> index_;  // device id -> index
  std::vector<uint32_t> domain_;
  std::vector<bool> eligible_;  // may hold the pool's data
  std::vector<bool> takes_;     // may be given more of it now
  std::vector<bool> up_;
  std::vector<double> weight_;
  std::vector<double> share_;    // slots the device should hold
  std::vector<uint32_t> crush_;  // straw2's rows, device ids
  std::vector<std::vector<size_t>> crush_slots_;  // per device, in crush_
  std::vector<uint32_t> rows_;  // the balancer's rows, device indexes
  std::vector<std::vector<size_t>> slots_;  // per device, its row entries
  std::vector<uint32_t> count_;
  // Devices that may hold the pool's data, by slots / share, emptiest first.
  std::set<std::pair<double, uint32_t>> ranked_;
  bool shares_known_ = false;
  size_t placed_ = 0;
  PoolBalance result_;
};

}  // namespace

Result<Balance> ComputeBalance(
    const cvm_map& crush,
    const std::map<uint32_t, std::vector<uint32_t>>& previous,
    const BalanceOptions& options) {
  if (!crush.finalized || crush.nr_overrides)
    return Internal("the balancer needs a finalized map without overrides");
  Balance out;
  const Domains domains(crush);
  std::vector<const cvm_pool*> pools;
  for (uint32_t i = 0; i < crush.nr_pools; ++i)
    pools.push_back(&crush.pools[i]);
  std::sort(pools.begin(), pools.end(),
            [](const cvm_pool* a, const cvm_pool* b) { return a->id < b->id; });
  for (const cvm_pool* pool : pools) {
    PoolBalancer b(crush, *pool, domains, options);
    auto prev = previous.find(pool->id);
    CVM_RETURN_IF_ERROR(
        b.Start(prev == previous.end() ? nullptr : &prev->second));
    const bool capped_pool = options.capped_pools.count(pool->id) > 0;
    const uint32_t left =
        !capped_pool || options.max_moves == UINT32_MAX
            ? UINT32_MAX
            : options.max_moves - std::min(options.max_moves, out.pgs_moved);
    bool capped = false;
    const uint32_t moved = b.Even(left, &capped);
    if (capped_pool) {
      out.pgs_moved += moved;
      out.capped |= capped;
    }
    CVM_ASSIGN_OR_RETURN(PoolBalance done, b.Finish(&out.overrides));
    out.pools.push_back(done);
  }
  return out;
}

}  // namespace cvm
