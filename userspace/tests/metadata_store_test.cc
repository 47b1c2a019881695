#include "metadata_store.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <ctime>
#include <set>
#include <thread>

#include "../tools/map_builder.h"
#include "cluster_map.h"
#include "disk_errors.h"
#include "down_out.h"
#include "etcd_server.h"
#include "fullness.h"
#include "raw_store.h"
#include "recovery_progress.h"
#include "test_util.h"

namespace cvm {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::WriteRaw;

// The suite runs against both stores: embedded RocksDB in a fresh
// directory, and a fresh prefix of a real etcd (etcd_server.h).
std::string StoreName(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// An empty store, with a fixed clock and a commit-failure switch; Reopen()
// closes and opens it again as a restart would.
class EmptyStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    location_ = testing::StoreLocation(GetParam(), dir_);
    ASSERT_NE(location_, "") << testing::EtcdServer::Get().error();
    Reopen();
  }

  void Reopen(bool defer_epochs = false) {
    store_.reset();
    StoreOptions options;
    options.defer_epochs = defer_epochs;
    options.clock = [] { return int64_t{1700000000}; };
    options.fail_commit = [this] { return fail_commit_.load(); };
    options.sync = false;
    auto opened = MetadataStore::Open(location_, std::move(options));
    ASSERT_OK(opened);
    store_ = std::move(opened).value();
  }

  Host MakeHost(const std::string& name) {
    Host h;
    h.name = name;
    h.addresses = {fmt::format("10.0.0.{}:7800", ++hosts_made_)};
    return h;
  }
  int hosts_made_ = 0;  // one address per host

  uint64_t Epoch() { return *store_->CurrentEpoch(); }

  TempDir dir_;
  std::string location_;  // the RocksDB directory or the etcd URI
  std::unique_ptr<MetadataStore> store_;
  std::atomic<bool> fail_commit_{false};
};

// Adds host h1 with device /dev/nvme0n1, pool "rep" (replicated:1, so the
// one host can place it: volumes go only into placeable pools) and volume
// "vol" in it.
class PopulatedStoreTest : public EmptyStoreTest {
 protected:
  void SetUp() override {
    EmptyStoreTest::SetUp();
    ASSERT_OK(store_->AddHost(MakeHost("h1")));
    ASSERT_OK(store_->AddDevice({"h1", "/dev/nvme0n1", TiB, 1.0, "nvme"}));
    Pool p;
    p.name = "rep";
    p.policy = Policy::Replicated(1);
    ASSERT_OK(store_->CreatePool(p));
    VolumeSpec v;
    v.name = "vol";
    v.pool = "rep";
    v.size = 10 * GiB;
    ASSERT_OK(store_->CreateVolume(v));
  }

  VolumeSpec Volume(const std::string& name, const std::string& pool = "rep") {
    VolumeSpec v;
    v.name = name;
    v.pool = pool;
    v.size = GiB;
    return v;
  }
};

TEST_P(EmptyStoreTest, StartsEmptyAtEpochZero) {
  EXPECT_EQ(Epoch(), 0u);
  auto counts = store_->Count();
  ASSERT_OK(counts);
  EXPECT_EQ(counts->hosts + counts->devices + counts->pools + counts->volumes,
            0u);
  EXPECT_TRUE(store_->EpochHistory()->empty());
}

TEST_P(EmptyStoreTest, HostCrud) {
  auto h = store_->AddHost(MakeHost("h1"));
  ASSERT_OK(h);
  EXPECT_EQ(h->id, 1u);
  EXPECT_EQ(h->created, 1700000000);
  auto h2 = store_->AddHost(MakeHost("h2"));
  ASSERT_OK(h2);
  EXPECT_EQ(h2->id, 2u);
  EXPECT_EQ(store_->ListHosts()->size(), 2u);
  EXPECT_EQ(store_->GetHost("h2")->id, 2u);
  ASSERT_OK(store_->RemoveHost("h1"));
  EXPECT_ERROR(store_->GetHost("h1"), Code::kNotFound,
               "host 'h1' does not exist");
  EXPECT_EQ(store_->ListHosts()->size(), 1u);
}

TEST_P(EmptyStoreTest, NamesAreUniquePerKind) {
  ASSERT_OK(store_->AddHost(MakeHost("same")));
  EXPECT_ERROR(store_->AddHost(MakeHost("same")), Code::kAlreadyExists,
               "host 'same' already exists");
  Pool p;
  p.name = "same";  // a pool may share a host's name
  ASSERT_OK(store_->CreatePool(p));
  EXPECT_ERROR(store_->CreatePool(p), Code::kAlreadyExists,
               "pool 'same' already exists");
}

TEST_P(EmptyStoreTest, RefusesInvalidRecords) {
  EXPECT_ERROR(store_->AddHost(MakeHost("bad name")), Code::kInvalidArgument,
               "host name 'bad name' is invalid");
  Pool p;
  p.name = "p";
  p.pg_num = 48;
  EXPECT_ERROR(store_->CreatePool(p), Code::kInvalidArgument, "power of two");
  p.pg_num = 64;
  p.policy = Policy::Erasure(4, 5);
  EXPECT_ERROR(store_->CreatePool(p), Code::kInvalidArgument, "m in 1..4");
  EXPECT_EQ(store_->Count()->pools, 0u);
}

TEST_P(EmptyStoreTest, ReferencesMustExist) {
  EXPECT_ERROR(store_->AddDevice({"nohost", "/dev/nvme0n1", TiB, 1.0, "nvme"}),
               Code::kNotFound, "host 'nohost' does not exist");
  VolumeSpec v;
  v.name = "v";
  v.pool = "nopool";
  v.size = GiB;
  EXPECT_ERROR(store_->CreateVolume(v), Code::kNotFound,
               "pool 'nopool' does not exist");
  EXPECT_ERROR(store_->CreateSnapshot("novol", "s"), Code::kNotFound,
               "volume 'novol' does not exist");
}

TEST_P(PopulatedStoreTest, DeviceCrudAndUniquePathPerHost) {
  EXPECT_ERROR(store_->AddDevice({"h1", "/dev/nvme0n1", TiB, 1.0, "nvme"}),
               Code::kAlreadyExists, "already exists as device 1");
  auto d = store_->AddDevice({"h1", "/dev/nvme1n1", 2 * TiB, 2.0, "nvme"});
  ASSERT_OK(d);
  EXPECT_EQ(d->id, 2u);
  EXPECT_EQ(d->host_id, 1u);
  EXPECT_EQ(store_->ListDevices()->size(), 2u);
  ASSERT_OK(store_->RemoveDevice(2));
  EXPECT_ERROR(store_->GetDevice(2), Code::kNotFound,
               "device 2 does not exist");
  EXPECT_ERROR(store_->RemoveDevice(99), Code::kNotFound, "device 99");
}

TEST_P(PopulatedStoreTest, VolumeCrudAndValidation) {
  auto v = store_->GetVolume("vol");
  ASSERT_OK(v);
  EXPECT_EQ(v->size, 10 * GiB);
  EXPECT_EQ(v->object_size, 4 * MiB);
  EXPECT_EQ(v->stripe_unit, 4 * MiB);
  EXPECT_ERROR(store_->CreateVolume(Volume("vol")), Code::kAlreadyExists,
               "volume 'vol' already exists");
  VolumeSpec bad = Volume("v2");
  bad.size = 1000;
  EXPECT_ERROR(store_->CreateVolume(bad), Code::kInvalidArgument, "sector");
  bad = Volume("v2");
  bad.object_size = 3 * MiB;
  EXPECT_ERROR(store_->CreateVolume(bad), Code::kInvalidArgument,
               "power of two");
  bad.object_size = 128 * MiB;
  EXPECT_ERROR(store_->CreateVolume(bad), Code::kInvalidArgument, "64 MiB");
  // Valid, but a target cannot hold such a shard (4 MiB extents): every
  // I/O past 4 MiB of an object would fail.
  bad.object_size = 8 * MiB;
  EXPECT_ERROR(store_->CreateVolume(bad), Code::kInvalidArgument,
               "a target keeps at most 4 MiB per shard");
  ASSERT_OK(store_->DeleteVolume("vol"));
  EXPECT_ERROR(store_->DeleteVolume("vol"), Code::kNotFound, "does not exist");
}

TEST_P(PopulatedStoreTest, RefusesToDeleteWhatIsInUse) {
  EXPECT_ERROR(store_->RemoveHost("h1"), Code::kInUse,
               "host 'h1' still has devices 1 (/dev/nvme0n1)");
  EXPECT_ERROR(store_->DeletePool("rep"), Code::kInUse,
               "pool 'rep' still has volumes 'vol'");
  ASSERT_OK(store_->CreateSnapshot("vol", "s1"));
  EXPECT_ERROR(store_->DeleteVolume("vol"), Code::kInUse,
               "volume 'vol' still has snapshots 's1'");
  // Unblock from the leaves up.
  ASSERT_OK(store_->DeleteSnapshot("vol", "s1"));
  ASSERT_OK(store_->DeleteVolume("vol"));
  ASSERT_OK(store_->DeletePool("rep"));
  ASSERT_OK(store_->RemoveDevice(1));
  ASSERT_OK(store_->RemoveHost("h1"));
}

TEST_P(PopulatedStoreTest, SnapshotsAdvanceTheVolumeSeq) {
  auto s1 = store_->CreateSnapshot("vol", "s1");
  ASSERT_OK(s1);
  EXPECT_EQ(s1->seq, 1u);
  auto s2 = store_->CreateSnapshot("vol", "s2");
  ASSERT_OK(s2);
  EXPECT_EQ(s2->seq, 2u);
  EXPECT_EQ(store_->GetVolume("vol")->snap_seq, 2u);
  EXPECT_ERROR(store_->CreateSnapshot("vol", "s1"), Code::kAlreadyExists,
               "'vol@s1' already exists");
  ASSERT_OK(store_->CreateVolume(Volume("other")));
  ASSERT_OK(store_->CreateSnapshot("other", "s1"));  // per-volume names
}

// Issue 15: a pool the topology could no longer place was silently left out
// of the map while it held volumes, and volumes could be created in a pool
// that could not be placed.
TEST_P(EmptyStoreTest, PoolsWithVolumesStayPlaceable) {
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  ASSERT_OK(store_->CreatePool(p));
  EXPECT_EQ(*store_->PoolPlacementProblem(p), "");
  Pool ec;
  ec.name = "ec";
  ec.policy = Policy::Erasure(4, 2);
  ASSERT_OK(store_->CreatePool(ec));
  EXPECT_NE(store_->PoolPlacementProblem(ec)->find("failure domains"),
            std::string::npos);
  VolumeSpec v;
  v.name = "v";
  v.pool = "ec";
  v.size = GiB;
  EXPECT_ERROR(store_->CreateVolume(v), Code::kUnavailable,
               "pool 'ec' cannot be placed on the current topology");
  v.pool = "rep3";
  ASSERT_OK(store_->CreateVolume(v));

  const uint64_t epoch = Epoch();
  EXPECT_ERROR(store_->RemoveDevice(3), Code::kInUse,
               "device.remove 3 would leave pool 'rep3' (1 volume) "
               "unplaceable");
  EXPECT_EQ(Epoch(), epoch);  // nothing committed
  // The ec pool, unplaceable all along and empty, does not block anything.
  ASSERT_OK(store_->DeleteVolume("v"));
  ASSERT_OK(store_->RemoveDevice(3));
}

// Issue 16: adding capacity moved PGs of a pool holding a volume onto empty
// devices, so the volume read back zeroes. Now a PG whose data is elsewhere
// keeps its previous row as a pin in the map, a pool without volumes moves
// freely, and a change that would drop a pinned copy is refused.
TEST_P(EmptyStoreTest, PgsHoldingDataStayPinnedWhereTheirDataIs) {
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  p.pg_num = 64;
  ASSERT_OK(store_->CreatePool(p));
  Pool empty = p;
  empty.name = "empty";
  ASSERT_OK(store_->CreatePool(empty));
  VolumeSpec v;
  v.name = "v";
  v.pool = "rep3";
  v.size = GiB;
  ASSERT_OK(store_->CreateVolume(v));
  const auto before = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(before);

  for (const char* h : {"h4", "h5"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  const auto after = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(after);
  ASSERT_EQ(after->size(), 2u);
  // Every PG of the pool with a volume reads from where it was written.
  EXPECT_EQ((*after)[0].table_crc, (*before)[0].table_crc);
  EXPECT_GT((*after)[0].pinned, 10u) << "2 of 5 hosts added: ~60% move";
  EXPECT_EQ((*after)[0].pgs.at(4), 0u);  // the new devices hold none of it
  EXPECT_EQ((*after)[0].pgs.at(5), 0u);
  // The empty pool moved as placement says.
  EXPECT_EQ((*after)[1].pinned, 0u);
  EXPECT_NE((*after)[1].table_crc, (*before)[1].table_crc);
  EXPECT_GT((*after)[1].pgs.at(4), 0u);

  // Device 1 holds pinned copies: removing it is refused (its target is not
  // serving it, so only the pin stands in the way).
  const uint64_t epoch = Epoch();
  EXPECT_ERROR(store_->RemoveDevice(1), Code::kInUse,
               "device.remove 1 would drop");
  EXPECT_EQ(Epoch(), epoch);
  // Without the volume nothing is pinned any more, and it can go.
  ASSERT_OK(store_->DeleteVolume("v"));
  ASSERT_OK(store_->RemoveDevice(1));
  const auto last = PlacementOf(*store_->GetMap(Epoch()));
  EXPECT_EQ((*last)[0].pinned, 0u);
}

// Issue 16's balancer in the map cvmd seals: every device gets its share of
// a pool's PGs exactly; a new device is given PGs by the balancer, at most
// balancer_max_moves of them at once (none with 0), and every PG it moves
// stays pinned to its data.
TEST_P(EmptyStoreTest, MapsAreBalancedAndMovesAreCapped) {
  for (const char* h : {"h1", "h2", "h3", "h4"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  p.pg_num = 256;
  ASSERT_OK(store_->CreatePool(p));
  VolumeSpec v;
  v.name = "v";
  v.pool = "rep3";
  v.size = GiB;
  ASSERT_OK(store_->CreateVolume(v));
  auto placed = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(placed);
  for (uint32_t d = 1; d <= 4; ++d) EXPECT_EQ((*placed)[0].pgs.at(d), 192u);
  EXPECT_GT((*placed)[0].overrides, 0u) << "straw2 alone is not this even";

  // Up rows holding device `dev`, as cvm.ko computes them.
  auto up_rows_with = [&](uint32_t dev) {
    auto blob = store_->GetMap(Epoch());
    cvm_map* raw = nullptr;
    EXPECT_EQ(cvm_map_decode(blob->data(), blob->size(), &raw, nullptr), 0);
    CMapPtr map(raw);
    uint32_t n = 0;
    for (uint32_t pg = 0; pg < 256; ++pg) {
      uint32_t row[CVM_MAX_PG_WIDTH];
      EXPECT_EQ(cvm_place_pg(map.get(), &map->pools[0], pg, row), 0);
      n += std::count(row, row + 3, dev);
    }
    return n;
  };
  ASSERT_OK(store_->SetSetting("balancer_max_moves", "0"));
  ASSERT_OK(store_->AddHost(MakeHost("h5")));
  ASSERT_OK(store_->AddDevice({"h5", "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  placed = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(placed);
  EXPECT_EQ((*placed)[0].pinned, 0u) << "nothing moves with 0";
  EXPECT_EQ(up_rows_with(5), 0u);

  // A new cap cuts an epoch at once: the balancer gives h5 40 PGs.
  const uint64_t before_cap = Epoch();
  ASSERT_OK(store_->SetSetting("balancer_max_moves", "40"));
  EXPECT_EQ(Epoch(), before_cap + 1);
  placed = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(placed);
  EXPECT_EQ((*placed)[0].pinned, 40u);
  EXPECT_EQ((*placed)[0].pgs.at(5), 0u)
      << "the data stays where it is until copied";
  EXPECT_EQ(up_rows_with(5), 40u) << "each move takes one copy to h5";
  // 40 PGs still moving: another change moves nothing more.
  ASSERT_OK(store_->AddHost(MakeHost("h6")));
  ASSERT_OK(store_->AddDevice({"h6", "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  EXPECT_EQ(up_rows_with(6), 0u);
  EXPECT_EQ(up_rows_with(5), 40u);

  // The batch is copied and its pins cut: in that same epoch the balancer
  // moves the next batch, and a PG it moves again stays pinned to the row
  // its data was just copied to (it used to lose its pin: reads of empty
  // devices).
  const uint64_t e = Epoch();
  const Volume vol = *store_->GetVolume("v");
  const auto cut = store_->SettlePins(
      e, {{static_cast<uint32_t>(vol.pool_id), {{vol.id, 0}}}}, 0);
  ASSERT_OK(cut);
  ASSERT_EQ(*cut, e + 1);
  auto decode = [&](uint64_t epoch) {
    auto blob = store_->GetMap(epoch);
    cvm_map* raw = nullptr;
    EXPECT_EQ(cvm_map_decode(blob->data(), blob->size(), &raw, nullptr), 0);
    return CMapPtr(raw);
  };
  const CMapPtr before = decode(e), after = decode(e + 1);
  const std::vector<uint32_t> table = tools::PgTable(after.get(), 1);
  uint32_t moved_again = 0;
  for (uint32_t pg = 0; pg < 256; ++pg) {
    uint32_t was[CVM_MAX_PG_WIDTH], now[CVM_MAX_PG_WIDTH];
    ASSERT_EQ(cvm_place_pg(before.get(), &before->pools[0], pg, was), 0);
    ASSERT_EQ(cvm_place_pg(after.get(), &after->pools[0], pg, now), 0);
    EXPECT_TRUE(std::equal(was, was + 3, table.begin() + pg * 3))
        << "PG " << pg << " is not served from where its data is";
    moved_again +=
        cvm_map_pin(before.get(), 1, pg) && !std::equal(was, was + 3, now);
  }
  EXPECT_GT((*PlacementOf(*store_->GetMap(e + 1)))[0].pinned, 0u)
      << "the next batch";
  EXPECT_GT(moved_again, 0u) << "the case this checks did not arise";
}

// Issue 16: a device whose disk keeps failing while its path is up is
// marked down and out once it failed io_error_limit requests within a
// minute; errors spread thinner, a counter starting over, a limit of 0 and
// the half-of-the-devices guard leave devices in.
TEST_P(EmptyStoreTest, FailingDisksAreMarkedOut) {
  for (const char* h : {"h1", "h2", "h3", "h4", "h5"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  ASSERT_OK(store_->SetSetting("io_error_limit", "5"));
  DiskErrorMonitor monitor(*store_);
  std::map<uint64_t, TargetDeviceUsage> usage;
  auto round = [&](int64_t now, std::map<uint64_t, uint64_t> errors) {
    for (auto [id, n] : errors) usage[id].io_errors = n;
    auto marked = monitor.Round(usage, now);
    EXPECT_OK(marked);
    return marked.ok() ? *marked : std::vector<uint64_t>{};
  };
  auto device = [&](uint64_t id) { return *store_->GetDevice(id); };
  // Errors from before this cvmd started do not count.
  EXPECT_TRUE(round(0, {{1, 100}, {2, 0}, {3, 0}, {4, 0}, {5, 0}}).empty());
  EXPECT_TRUE(round(10, {{2, 3}, {3, 4}}).empty());
  EXPECT_EQ(round(20, {{2, 6}}), std::vector<uint64_t>{2});
  EXPECT_FALSE(device(2).in);
  EXPECT_FALSE(device(2).up);
  EXPECT_TRUE(device(1).in) << "old errors";
  // Device 3: 4 errors at 10, 4 more at 80: never 5 within a minute.
  EXPECT_TRUE(round(80, {{3, 8}}).empty());
  EXPECT_TRUE(device(3).in);
  // A counter that goes down (served again) starts over.
  EXPECT_TRUE(round(90, {{3, 2}}).empty());
  EXPECT_TRUE(round(95, {{3, 6}}).empty());
  EXPECT_EQ(round(96, {{3, 7}}), std::vector<uint64_t>{3});
  // With 2 of 5 out, a third would leave fewer than half in: down only.
  EXPECT_TRUE(round(100, {{4, 50}}).empty());
  EXPECT_TRUE(device(4).in);
  EXPECT_FALSE(device(4).up);
  // 0: never.
  ASSERT_OK(store_->SetSetting("io_error_limit", "0"));
  EXPECT_TRUE(round(110, {{5, 500}}).empty());
  EXPECT_TRUE(device(5).in && device(5).up);
}

// `host drain` takes every device of a host out in one epoch; `host in`
// brings them back up and in.
TEST_P(EmptyStoreTest, HostDevicesGoOutAndInTogether) {
  for (const char* h : {"h1", "h2", "h3", "h4"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  ASSERT_OK(store_->AddDevice({"h4", "/dev/nvme1n1", TiB, 1.0, "nvme"}));
  ASSERT_OK(store_->AddHost(MakeHost("empty")));
  Pool p;
  p.name = "rep3";
  ASSERT_OK(store_->CreatePool(p));
  const uint64_t e = Epoch();
  auto out = store_->SetHostIn("h4", false);
  ASSERT_OK(out);
  EXPECT_EQ(out->size(), 2u);
  EXPECT_EQ(Epoch(), e + 1) << "one epoch for both";
  for (const Device& d : *store_->ListDevices()) {
    EXPECT_EQ(d.in, d.host_id != store_->GetHost("h4")->id) << d.id;
  }
  EXPECT_EQ(store_->SetHostIn("h4", false)->size(), 0u);
  EXPECT_EQ(Epoch(), e + 1) << "nothing changed, no epoch";
  EXPECT_ERROR(store_->SetHostIn("nope", false), Code::kNotFound,
               "host 'nope' does not exist");
  EXPECT_ERROR(store_->SetHostIn("empty", false), Code::kInvalidArgument,
               "host 'empty' has no devices");
  ASSERT_OK(store_->SetDeviceState(4, false, std::nullopt));
  ASSERT_OK(store_->SetHostIn("h4", true));
  for (const Device& d : *store_->ListDevices()) {
    EXPECT_TRUE(d.in && d.up) << d.id;
  }
}

// Backfill's cut-over (backfill.h): pins go only when every volume of the
// pool is copied under the attach epoch it still has, and an attached one
// was reported copied by its own host for this very epoch.
TEST_P(EmptyStoreTest, PinsAreCutOnlyOnceEveryVolumeIsCopied) {
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  p.pg_num = 32;
  ASSERT_OK(store_->CreatePool(p));
  VolumeSpec v;
  v.pool = "rep3";
  v.size = GiB;
  v.name = "a";
  ASSERT_OK(store_->CreateVolume(v));
  v.name = "b";
  ASSERT_OK(store_->CreateVolume(v));
  ASSERT_OK(store_->AttachVolume("b", "h1"));
  ASSERT_OK(store_->AddHost(MakeHost("h4")));
  ASSERT_OK(store_->AddDevice({"h4", "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  const uint64_t e = Epoch();
  ASSERT_GT((*PlacementOf(*store_->GetMap(e)))[0].pinned, 0u);
  const uint64_t a_id = store_->GetVolume("a")->id;
  const Volume b = *store_->GetVolume("b");
  const std::map<uint32_t, MetadataStore::CopiedVolumes> copied = {
      {1, {{a_id, 0}, {b.id, b.attach_epoch}}}};

  EXPECT_ERROR(store_->SettlePins(e, {{1, {{a_id, 0}}}}, 0), Code::kUnavailable,
               "volume 'b' was not copied");
  EXPECT_ERROR(store_->SettlePins(e, copied, 0), Code::kUnavailable,
               "volume 'b' is not copied yet by its host 'h1'");
  // A report from another host, or of another epoch, does not count.
  EXPECT_FALSE(*store_->RecordBackfilled("b", "h2", b.attach_epoch, e));
  EXPECT_TRUE(*store_->RecordBackfilled("b", "h1", b.attach_epoch, e - 1));
  EXPECT_ERROR(store_->SettlePins(e, copied, 0), Code::kUnavailable,
               "not copied yet");
  EXPECT_TRUE(*store_->RecordBackfilled("b", "h1", b.attach_epoch, e));
  EXPECT_ERROR(store_->SettlePins(e - 1, copied, 0), Code::kUnavailable,
               "was cut since the copy");
  EXPECT_EQ(Epoch(), e);
  const auto settled = store_->SettlePins(e, copied, 0);
  ASSERT_OK(settled);
  EXPECT_EQ(*settled, e + 1);
  EXPECT_EQ((*PlacementOf(*store_->GetMap(e + 1)))[0].pinned, 0u);
  // The rows they moved off are recorded for the sweep, and forgotten only
  // as the sweep read them.
  const std::string moved = *store_->GetBackfillMoved();
  EXPECT_NE(moved.find("\"devs\""), std::string::npos) << moved;
  EXPECT_ERROR(store_->ClearBackfillMoved("[]"), Code::kUnavailable,
               "moved since");
  ASSERT_OK(store_->ClearBackfillMoved(moved));
  EXPECT_EQ(*store_->GetBackfillMoved(), "");

  // A volume attached again since its copy stops the cut.
  ASSERT_OK(store_->SetDeviceState(4, std::nullopt, false));
  const uint64_t e2 = Epoch();
  ASSERT_GT((*PlacementOf(*store_->GetMap(e2)))[0].pinned, 0u);
  ASSERT_OK(store_->DetachVolume("b", "h1"));
  ASSERT_OK(store_->AttachVolume("b", "h2"));
  EXPECT_ERROR(store_->SettlePins(e2, copied, 0), Code::kUnavailable,
               "volume 'b' was attached since its copy");
}

// Issue 15, the leader cuts epochs: with defer_epochs (a cluster) changes
// are checked at once but only recorded as pending, and one epoch carries
// all that came in together. A pool is placeable for its volumes as soon
// as its change is committed; an invalid change is still refused at once.
TEST_P(EmptyStoreTest, PendingChangesShareTheEpochTheLeaderCuts) {
  Reopen(/*defer_epochs=*/true);
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  ASSERT_OK(store_->CreatePool(p));
  EXPECT_EQ(Epoch(), 0u);
  EXPECT_EQ(*store_->CarryingEpoch(), 1u);
  VolumeSpec v;
  v.name = "v";
  v.pool = "rep3";
  v.size = GiB;
  ASSERT_OK(store_->CreateVolume(v));  // placeable by the pending map
  Pool ec;
  ec.name = "ec";
  ec.policy = Policy::Erasure(4, 2);
  ASSERT_OK(store_->CreatePool(ec));
  v.name = "w";
  v.pool = "ec";
  EXPECT_ERROR(store_->CreateVolume(v), Code::kUnavailable,
               "pool 'ec' cannot be placed");

  EXPECT_EQ(*store_->CutPendingEpoch(0), 1u);
  EXPECT_EQ(Epoch(), 1u);
  const MapEpoch e = *store_->GetEpoch(1);
  EXPECT_NE(e.reason.find("host.add h1; device.add"), std::string::npos)
      << e.reason;
  EXPECT_NE(e.reason.find("pool.create ec"), std::string::npos) << e.reason;
  EXPECT_OK(store_->GetMap(1));
  EXPECT_EQ(*store_->CutPendingEpoch(0), 0u);  // nothing pending
  EXPECT_EQ(*store_->CarryingEpoch(), 1u);

  EXPECT_ERROR(store_->RemoveDevice(3), Code::kInUse,
               "would leave pool 'rep3' (1 volume) unplaceable");
  EXPECT_EQ(*store_->CarryingEpoch(), 1u);  // refused: nothing pending
  ASSERT_OK(store_->AddHost(MakeHost("h4")));
  EXPECT_EQ(*store_->CarryingEpoch(), 2u);
  EXPECT_EQ(*store_->CutPendingEpoch(0), 2u);
}

TEST_P(EmptyStoreTest, TopologyChangesBumpTheEpochOthersDoNot) {
  ASSERT_OK(store_->AddHost(MakeHost("h1")));
  EXPECT_EQ(Epoch(), 1u);
  auto d = store_->AddDevice({"h1", "/dev/nvme0n1", TiB, 1.0, "nvme"});
  ASSERT_OK(d);
  EXPECT_EQ(Epoch(), 2u);
  ASSERT_OK(store_->SetDeviceState(d->id, false, std::nullopt));
  EXPECT_EQ(Epoch(), 3u);
  ASSERT_OK(store_->SetDeviceState(d->id, false, std::nullopt));  // no change
  EXPECT_EQ(Epoch(), 3u);
  Pool p;
  p.name = "p";
  p.policy = Policy::Replicated(1);
  ASSERT_OK(store_->CreatePool(p));
  EXPECT_EQ(Epoch(), 4u);
  VolumeSpec v;
  v.name = "v";
  v.pool = "p";
  v.size = GiB;
  ASSERT_OK(store_->CreateVolume(v));
  ASSERT_OK(store_->CreateSnapshot("v", "s"));
  ASSERT_OK(store_->DeleteSnapshot("v", "s"));
  ASSERT_OK(store_->DeleteVolume("v"));
  EXPECT_EQ(Epoch(), 4u);  // volumes are not topology
  ASSERT_OK(store_->RemoveDevice(d->id));
  EXPECT_EQ(Epoch(), 5u);
  // Failed changes cut no epoch.
  EXPECT_FALSE(store_->AddHost(MakeHost("h1")).ok());
  EXPECT_FALSE(store_->RemoveHost("nope").ok());
  EXPECT_EQ(Epoch(), 5u);

  auto history = store_->EpochHistory();
  ASSERT_OK(history);
  ASSERT_EQ(history->size(), 5u);
  EXPECT_EQ((*history)[0].epoch, 1u);
  EXPECT_EQ((*history)[0].reason, "host.add h1");
  EXPECT_EQ((*history)[0].created, 1700000000);
  EXPECT_EQ((*history)[4].reason, "device.remove 1");
  EXPECT_EQ(store_->EpochHistory(2)->front().epoch, 4u);
}

// min_size is part of the map: a change cuts an epoch; bad values refused.
TEST_P(EmptyStoreTest, PoolMinSizeIsValidatedAndCutsAnEpoch) {
  Pool p;
  p.name = "p";
  p.min_size = 4;  // replicated(3)
  EXPECT_ERROR(store_->CreatePool(p), Code::kInvalidArgument, "min_size 4");
  p.min_size = 0;
  ASSERT_OK(store_->CreatePool(p));
  const uint64_t before = Epoch();
  auto set = store_->SetPoolMinSize("p", 3);
  ASSERT_OK(set);
  EXPECT_EQ(set->min_size, 3u);
  EXPECT_EQ(Epoch(), before + 1);
  EXPECT_EQ(store_->GetPool("p")->min_size, 3u);
  EXPECT_EQ(store_->EpochHistory(1)->front().reason, "pool.set p min_size 3");
  EXPECT_ERROR(store_->SetPoolMinSize("p", 5), Code::kInvalidArgument,
               "min_size 5");
  EXPECT_ERROR(store_->SetPoolMinSize("nope", 1), Code::kNotFound, "nope");
  EXPECT_EQ(Epoch(), before + 1);  // refused changes cut nothing
  ASSERT_OK(store_->SetPoolMinSize("p", 0));
  EXPECT_EQ(EffectiveMinSize(*store_->GetPool("p")), 2u);

  Pool ec;
  ec.name = "ec";
  ec.policy = Policy::Erasure(4, 2);
  EXPECT_EQ(EffectiveMinSize(ec), 5u);  // k + 1 for m >= 2
  ec.min_size = 3;                      // fewer than k shards
  EXPECT_ERROR(store_->CreatePool(ec), Code::kInvalidArgument, "from 4 to 6");
  ec.policy = Policy::Erasure(4, 1);
  ec.min_size = 0;
  EXPECT_EQ(EffectiveMinSize(ec), 4u);  // k for m = 1
}

TEST_P(EmptyStoreTest, FailedCommitLeavesNothingBehind) {
  ASSERT_OK(store_->AddHost(MakeHost("h1")));
  fail_commit_ = true;
  EXPECT_ERROR(store_->AddHost(MakeHost("h2")), Code::kIoError, "injected");
  EXPECT_ERROR(store_->AddDevice({"h1", "/dev/nvme0n1", TiB, 1.0, "nvme"}),
               Code::kIoError, "injected");
  fail_commit_ = false;
  // No record, no epoch, no consumed id.
  EXPECT_EQ(Epoch(), 1u);
  EXPECT_ERROR(store_->GetHost("h2"), Code::kNotFound, "");
  EXPECT_EQ(store_->ListDevices()->size(), 0u);
  auto h2 = store_->AddHost(MakeHost("h2"));
  ASSERT_OK(h2);
  EXPECT_EQ(h2->id, 2u);
  EXPECT_EQ(Epoch(), 2u);
}

TEST_P(EmptyStoreTest, RejectedOpConsumesNoId) {
  ASSERT_OK(store_->AddHost(MakeHost("h1")));
  EXPECT_FALSE(store_->AddHost(MakeHost("h1")).ok());
  EXPECT_FALSE(store_->AddHost(MakeHost("bad name")).ok());
  EXPECT_EQ(store_->AddHost(MakeHost("h2"))->id, 2u);
}

TEST_P(PopulatedStoreTest, SurvivesRestart) {
  ASSERT_OK(store_->CreateSnapshot("vol", "s1"));
  const uint64_t epoch = Epoch();
  Reopen();
  EXPECT_EQ(Epoch(), epoch);
  EXPECT_EQ(store_->GetHost("h1")->addresses[0], "10.0.0.1:7800");
  EXPECT_EQ(store_->GetDevice(1)->capacity, TiB);
  EXPECT_EQ(store_->GetPool("rep")->policy, Policy::Replicated(1));
  EXPECT_EQ(store_->GetVolume("vol")->snap_seq, 1u);
  EXPECT_EQ(store_->ListSnapshots()->size(), 1u);
  EXPECT_EQ(store_->EpochHistory()->size(), epoch);
  // Counters continue where they were.
  EXPECT_EQ(store_->AddHost(MakeHost("h2"))->id, 2u);
  EXPECT_EQ(Epoch(), epoch + 1);
}

// RocksDB has one process at a time; etcd is shared by every cvmd.
TEST_P(PopulatedStoreTest, SecondOpenIsRefusedOnlyForRocksDb) {
  auto second = MetadataStore::Open(location_);
  if (GetParam() == "rocksdb") {
    EXPECT_ERROR(second, Code::kUnavailable, "is locked by another process");
  } else {
    ASSERT_OK(second);
    EXPECT_EQ((*second)->GetVolume("vol")->size, 10 * GiB);
  }
}

PathState Path(uint64_t device, bool up, uint64_t stale,
               std::string address = "127.0.0.1:7001") {
  PathState p;
  p.device_id = device;
  p.up = up;
  p.stale_objects = stale;
  p.address = std::move(address);
  return p;
}

// Issue 15: path states as seen by each initiator. Two initiators report
// the same device's path: each keeps its own last event, the top fields
// are the newest, and an older record (no initiators) still reads.
TEST_P(PopulatedStoreTest, PathStatesAreKeptPerInitiator) {
  PathState down = Path(1, false, 7);
  down.host = "c1";
  ASSERT_OK(store_->RecordPathState(down));
  PathState up = Path(1, true, 0);
  up.host = "c2";
  ASSERT_OK(store_->RecordPathState(up));
  auto got = store_->GetPathState(1);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  const PathState& p = **got;
  EXPECT_TRUE(p.up);
  EXPECT_EQ(p.host, "c2");
  ASSERT_EQ(p.initiators.size(), 2u);
  EXPECT_FALSE(p.initiators.at("c1").up);
  EXPECT_EQ(p.initiators.at("c1").stale_objects, 7u);
  EXPECT_TRUE(p.initiators.at("c2").up);
  const json j = ToJson(p);
  EXPECT_EQ(j["initiators"]["c1"]["state"], "down") << j.dump();
  EXPECT_EQ(*DecodePathState(Encode(j)), p);
  // A record written before initiators were kept.
  json old = j;
  old.erase("initiators");
  old.erase("host");
  auto decoded = DecodePathState(Encode(old));
  ASSERT_OK(decoded);
  EXPECT_TRUE(decoded->initiators.empty());
  old["initiators"] = {{"c 1", {{"state", "up"}}}};
  EXPECT_EQ(DecodePathState(Encode(old)).status().code(), Code::kCorruption);
}

TEST_P(PopulatedStoreTest, PathStateRoundTripsWithoutANewEpoch) {
  const uint64_t epoch = Epoch();
  auto none = store_->GetPathState(1);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  EXPECT_TRUE(store_->ListPathStates()->empty());

  auto down = store_->RecordPathState(Path(1, false, 7));
  ASSERT_OK(down);
  EXPECT_EQ(down->since, 1700000000);  // assigned from the store's clock
  auto got = store_->GetPathState(1);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, *down);
  EXPECT_EQ(ToJson(**got)["state"], "down");

  // The next event replaces the record.
  ASSERT_OK(store_->RecordPathState(Path(1, true, 3, "[::1]:7001")));
  auto list = store_->ListPathStates();
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_TRUE((*list)[0].up);
  EXPECT_EQ((*list)[0].stale_objects, 3u);
  EXPECT_EQ((*list)[0].address, "[::1]:7001");
  EXPECT_EQ(Epoch(), epoch) << "a path event must not cut a map epoch";
  EXPECT_EQ(store_->EpochHistory()->size(), epoch);
}

TEST_P(PopulatedStoreTest, PathStateSurvivesRestart) {
  ASSERT_OK(store_->RecordPathState(Path(1, false, 12)));
  Reopen();
  auto got = store_->GetPathState(1);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, (PathState{1, false, 1700000000, 12, "127.0.0.1:7001"}));
}

TEST_P(PopulatedStoreTest, PathStateBelongsToAKnownDevice) {
  EXPECT_ERROR(store_->RecordPathState(Path(9, true, 0)), Code::kNotFound,
               "device 9 does not exist");
  EXPECT_ERROR(store_->RecordPathState(Path(1, true, 0, "")),
               Code::kInvalidArgument, "path address");
  EXPECT_ERROR(store_->RecordPathState(Path(1, true, 0, "a b")),
               Code::kInvalidArgument, "space");
  fail_commit_ = true;
  EXPECT_ERROR(store_->RecordPathState(Path(1, true, 0)), Code::kIoError,
               "injected");
  fail_commit_ = false;
  EXPECT_FALSE(store_->GetPathState(1)->has_value());

  // Removing the device removes its path record in the same commit (the
  // volume goes first: its pool would have nowhere to be placed).
  ASSERT_OK(store_->RecordPathState(Path(1, false, 5)));
  ASSERT_OK(store_->DeleteVolume("vol"));
  ASSERT_OK(store_->RemoveDevice(1));
  EXPECT_TRUE(store_->ListPathStates()->empty());
}

TEST_P(PopulatedStoreTest, CorruptRecordIsRefusedWithAReason) {
  store_.reset();
  WriteRaw(location_, Cf::kVolumes, EncodeIdKey(1), "{\"id\":1,\"name\":");
  Reopen();
  EXPECT_ERROR(store_->GetVolume("vol"), Code::kCorruption,
               "volumes/1: volume record is not valid JSON");
  EXPECT_ERROR(store_->ListVolumes(), Code::kCorruption, "volumes/1");
  // Changes that must see every volume refuse too, rather than guess.
  EXPECT_ERROR(store_->DeletePool("rep"), Code::kCorruption, "volumes/1");
  // Unrelated kinds still work.
  EXPECT_OK(store_->GetHost("h1"));
}

TEST_P(PopulatedStoreTest, RecordUnderTheWrongKeyIsCorrupt) {
  const std::string host2 =
      R"({"id":7,"name":"h7","addresses":["a:1"],)"
      R"("transport":"tcp","rack":"","row":"","created":0})";
  store_.reset();
  WriteRaw(location_, Cf::kHosts, EncodeIdKey(2), host2);
  WriteRaw(location_, Cf::kDevices, "short", "{}");
  Reopen();
  EXPECT_ERROR(store_->ListHosts(), Code::kCorruption,
               "hosts/2: record says id 7");
  EXPECT_ERROR(store_->ListDevices(), Code::kCorruption, "key of 5 bytes");
}

TEST_P(PopulatedStoreTest, CorruptPathRecordIsRefusedWithAReason) {
  store_.reset();
  WriteRaw(location_, Cf::kPaths, EncodeIdKey(1),
           R"({"device_id":1,"state":"sideways","since":0,)"
           R"("stale_objects":0,"address":"a:1"})");
  Reopen();
  EXPECT_ERROR(store_->GetPathState(1), Code::kCorruption,
               "paths/1: path record: state 'sideways'");
  EXPECT_ERROR(store_->ListPathStates(), Code::kCorruption, "paths/1");
  EXPECT_OK(store_->GetDevice(1));  // the device itself is fine
}

TEST_P(EmptyStoreTest, RefusesAnUnknownSchemaVersion) {
  store_.reset();
  WriteRaw(location_, Cf::kMeta, "schema_version", "99");
  auto opened = MetadataStore::Open(location_);
  EXPECT_ERROR(opened, Code::kCorruption, "schema version 99");
}

// A host with a new row and a new rack takes two bucket ids in one
// change: one counter written once (etcd refuses a key twice in one
// transaction; RocksDB took it).
TEST_P(EmptyStoreTest, HostWithANewRowAndRackIsOneChange) {
  Host h = MakeHost("h1");
  h.row = "row1";
  h.rack = "rack1";
  ASSERT_OK(store_->AddHost(h));
  EXPECT_EQ(Epoch(), 1u);
  Host h2 = MakeHost("h2");
  h2.row = "row2";
  h2.rack = "rack2";
  ASSERT_OK(store_->AddHost(h2));
  EXPECT_EQ(Epoch(), 2u);
}

// Two writers add the same 30 host names at once: over etcd two stores (two
// cvmds), over RocksDB two threads of one. Each name is taken exactly once,
// ids are unique and every epoch is one more than the last.
TEST_P(EmptyStoreTest, ConcurrentWritersNeverBothWin) {
  std::unique_ptr<MetadataStore> second;
  if (GetParam() == "etcd") {
    auto opened = MetadataStore::Open(location_);
    ASSERT_OK(opened);
    second = std::move(opened).value();
  }
  MetadataStore* stores[2] = {store_.get(),
                              second ? second.get() : store_.get()};
  constexpr int kNames = 30;
  std::atomic<int> won{0}, lost{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (int i = 0; i < kNames; ++i) {
        Host h;
        h.name = fmt::format("h{}", i);
        // Distinct addresses per writer: only the name collides.
        h.addresses = {fmt::format("10.{}.0.{}:7800", w, i + 1)};
        auto added = stores[w]->AddHost(h);
        if (added.ok()) {
          ++won;
        } else if (added.status().code() == Code::kAlreadyExists) {
          ++lost;
        } else {
          ADD_FAILURE() << added.status().ToString();
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(won, kNames);
  EXPECT_EQ(lost, kNames);
  auto hosts = store_->ListHosts();
  ASSERT_OK(hosts);
  std::set<std::string> names;
  std::set<uint64_t> ids;
  for (const auto& h : *hosts) {
    names.insert(h.name);
    ids.insert(h.id);
  }
  EXPECT_EQ(hosts->size(), static_cast<size_t>(kNames));
  EXPECT_EQ(names.size(), static_cast<size_t>(kNames));
  EXPECT_EQ(ids.size(), static_cast<size_t>(kNames));
  auto history = store_->EpochHistory();
  ASSERT_OK(history);
  ASSERT_EQ(history->size(), static_cast<size_t>(kNames));
  for (size_t i = 0; i < history->size(); ++i) {
    EXPECT_EQ((*history)[i].epoch, i + 1);
  }
  EXPECT_EQ(Epoch(), static_cast<uint64_t>(kNames));
}

// Issue 16: cluster settings are validated and kept.
TEST_P(EmptyStoreTest, SettingsAreValidatedAndKept) {
  auto s = store_->GetSettings();
  ASSERT_OK(s);
  EXPECT_EQ(s->down_out_interval, 600u);
  ASSERT_OK(store_->SetSetting("down_out_interval", "5"));
  EXPECT_ERROR(store_->SetSetting("down_out_interval", "5s"),
               Code::kInvalidArgument, "down_out_interval must be");
  EXPECT_ERROR(store_->SetSetting("down_out_interval", "-1"),
               Code::kInvalidArgument, "down_out_interval must be");
  EXPECT_ERROR(store_->SetSetting("no_such", "1"), Code::kInvalidArgument,
               "unknown setting 'no_such' (known: down_out_interval, "
               "nearfull_ratio, full_ratio, balancer_max_moves, "
               "io_error_limit)");
  EXPECT_EQ(s->io_error_limit, 16u);
  EXPECT_ERROR(store_->SetSetting("io_error_limit", "-3"),
               Code::kInvalidArgument,
               "io_error_limit must be 0 (never) to 1048576 requests");
  EXPECT_EQ(s->balancer_max_moves, 64u);
  ASSERT_OK(store_->SetSetting("balancer_max_moves", "0"));
  EXPECT_ERROR(store_->SetSetting("balancer_max_moves", "many"),
               Code::kInvalidArgument, "balancer_max_moves must be 0 (none)");
  EXPECT_ERROR(store_->SetSetting("balancer_max_moves", "99999999"),
               Code::kInvalidArgument, "balancer_max_moves must be");
  EXPECT_EQ(store_->GetSettings()->balancer_max_moves, 0u);
  EXPECT_EQ(store_->GetSettings()->down_out_interval, 5u);
  EXPECT_EQ(
      DecodeClusterSettings(R"({"down_out_interval":"x"})").status().code(),
      Code::kCorruption);
  EXPECT_EQ(DecodeClusterSettings(R"({"nearfull_ratio":0.9,"full_ratio":0.8})")
                .status()
                .code(),
            Code::kCorruption);
  EXPECT_EQ(DecodeClusterSettings(R"({"down_out_interval":1})")->full_ratio,
            0.95);
  EXPECT_EQ(DecodeClusterSettings(R"({"down_out_interval":1,"bogus":2})")
                .status()
                .code(),
            Code::kCorruption);
}

// Issue 16: a device whose path stays down from every initiator for
// down_out_interval is marked down and out (its PGs stay pinned to it until
// rebuilt elsewhere); a dead device goes only with --force, which gives up
// its copies, and never when a PG would keep too few to rebuild from.
TEST_P(EmptyStoreTest, DeadDevicesGoOutAndForceRemovalGivesUpTheirCopies) {
  for (const char* h : {"h1", "h2", "h3", "h4", "h5", "h6"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  p.pg_num = 64;
  ASSERT_OK(store_->CreatePool(p));
  VolumeSpec v;
  v.name = "v";
  v.pool = "rep3";
  v.size = GiB;
  ASSERT_OK(store_->CreateVolume(v));
  ASSERT_OK(store_->SetSetting("down_out_interval", "5"));
  PathState down = Path(6, false, 3);
  down.host = "c1";
  ASSERT_OK(store_->RecordPathState(down));
  PathState half = Path(3, false, 0);  // down from c1, up from c2
  half.host = "c1";
  ASSERT_OK(store_->RecordPathState(half));
  half.up = true;
  half.host = "c2";
  ASSERT_OK(store_->RecordPathState(half));
  const uint64_t epoch = Epoch();
  const int64_t now = 1700000000;  // the fixture's clock

  auto early = MarkDownDevicesOut(*store_, now + 2);
  ASSERT_OK(early);
  EXPECT_TRUE(early->empty());
  EXPECT_EQ(Epoch(), epoch);
  auto marked = MarkDownDevicesOut(*store_, now + 10);
  ASSERT_OK(marked);
  ASSERT_EQ(marked->size(), 1u);  // device 3 still has a path up
  EXPECT_EQ((*marked)[0].device_id, 6u);
  EXPECT_FALSE(store_->GetDevice(6)->in);
  EXPECT_FALSE(store_->GetDevice(6)->up);
  EXPECT_TRUE(store_->GetDevice(3)->in);
  EXPECT_EQ(Epoch(), epoch + 1);
  auto placed = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(placed);
  EXPECT_GT((*placed)[0].pinned, 0u) << "its PGs wait for the rebuild";
  EXPECT_GT((*placed)[0].pgs.at(6), 0u);
  ASSERT_OK(MarkDownDevicesOut(*store_, now + 20));
  EXPECT_EQ(Epoch(), epoch + 1) << "marked once";

  // Interval 0: never.
  ASSERT_OK(store_->SetSetting("down_out_interval", "0"));
  half.up = false;
  ASSERT_OK(store_->RecordPathState(half));
  ASSERT_OK(MarkDownDevicesOut(*store_, now + 100000));
  EXPECT_TRUE(store_->GetDevice(3)->in);

  // Its pinned copies keep device 6 in the map...
  EXPECT_ERROR(store_->RemoveDevice(6), Code::kInUse,
               "device.remove 6 would drop");
  // ...--force is for dead devices only...
  EXPECT_ERROR(store_->RemoveDevice(1, /*force=*/true), Code::kInUse,
               "device 1 is up: --force removes only a dead device");
  // ...and gives its copies up: the pins name no device in their place.
  ASSERT_OK(store_->RemoveDevice(6, /*force=*/true));
  placed = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(placed);
  EXPECT_GT((*placed)[0].pinned, 0u);
  EXPECT_EQ((*placed)[0].pgs.count(6), 0u);
  // Two more dead devices would leave PGs with no copy at all.
  ASSERT_OK(store_->SetDeviceState(1, false, false));
  ASSERT_OK(store_->SetDeviceState(2, false, false));
  ASSERT_OK(store_->RemoveDevice(1, /*force=*/true));
  EXPECT_ERROR(store_->RemoveDevice(2, /*force=*/true), Code::kInUse,
               "too few copies to rebuild their data from");
}

// Issue 16: a storage node powered off for good is also an initiator; its
// last report on its own disk's path ("up") must not keep that disk in.
// Only the hosts whose cvmd is up vouch for a path (the cluster test found
// the device never marked out).
TEST_P(EmptyStoreTest, OnlyLiveInitiatorsKeepADeviceIn) {
  for (const char* h : {"h1", "h2", "h3", "h4"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  ASSERT_OK(store_->SetSetting("down_out_interval", "5"));
  PathState p = Path(4, true, 0);  // h4's own disk, as h4 last saw it
  p.host = "h4";
  ASSERT_OK(store_->RecordPathState(p));
  p.up = false;
  for (const char* h : {"h1", "h2"}) {
    p.host = h;
    ASSERT_OK(store_->RecordPathState(p));
  }
  PathState only_dead = Path(3, true, 0);  // reported by h4 alone
  only_dead.host = "h4";
  ASSERT_OK(store_->RecordPathState(only_dead));
  const int64_t later = 1700000000 + 10;  // the fixture's clock, past 5 s

  auto all = MarkDownDevicesOut(*store_, later);  // no presence: all count
  ASSERT_OK(all);
  EXPECT_TRUE(all->empty());
  auto with_h4 = MarkDownDevicesOut(*store_, later,
                                    std::set<std::string>{"h1", "h2", "h4"});
  ASSERT_OK(with_h4);
  EXPECT_TRUE(with_h4->empty()) << "h4 is up and sees its disk";
  auto without = MarkDownDevicesOut(*store_, later,
                                    std::set<std::string>{"h1", "h2", "h3"});
  ASSERT_OK(without);
  ASSERT_EQ(without->size(), 1u);
  EXPECT_EQ((*without)[0].device_id, 4u);
  EXPECT_FALSE(store_->GetDevice(4)->in);
  EXPECT_TRUE(store_->GetDevice(3)->in) << "no live initiator reported it";
}

// Issue 16: the leader's recovery record, from the first round that finds
// PGs moving (the start) through a stall to the round that finds none.
TEST_P(EmptyStoreTest, RecoveryProgressIsKeptFromStartToEnd) {
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  Pool p;
  p.name = "rep3";
  p.pg_num = 32;
  ASSERT_OK(store_->CreatePool(p));
  VolumeSpec v;
  v.name = "v";
  v.pool = "rep3";
  v.size = GiB;
  ASSERT_OK(store_->CreateVolume(v));
  BackfillRound round;
  round.epoch = Epoch();
  ASSERT_OK(ObserveRecovery(*store_, round, 1000));
  EXPECT_EQ(*store_->GetRecoveryRecord(), "") << "nothing moves";

  ASSERT_OK(store_->AddHost(MakeHost("h4")));
  ASSERT_OK(store_->AddDevice({"h4", "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  auto counts = CountPgs(*store_);
  ASSERT_OK(counts);
  ASSERT_GT(counts->moving, 0u);
  EXPECT_EQ(counts->misplaced, counts->moving);
  EXPECT_EQ(counts->degraded, 0u);
  round.epoch = Epoch();
  round.bytes_copied = 1 << 20;
  round.shards_rebuilt = 1;
  ASSERT_OK(ObserveRecovery(*store_, round, 1000));
  auto rp = DecodeRecoveryProgress(*store_->GetRecoveryRecord());
  ASSERT_OK(rp);
  EXPECT_EQ(rp->started, 1000);
  EXPECT_EQ(rp->pgs_total, counts->moving);
  EXPECT_EQ(rp->pgs_moving, counts->moving);
  EXPECT_EQ(rp->bytes_copied, 1u << 20);
  EXPECT_FALSE(rp->stalled);
  ASSERT_OK(ObserveRecovery(*store_, round, 1061));
  rp = DecodeRecoveryProgress(*store_->GetRecoveryRecord());
  EXPECT_TRUE(rp->stalled) << "no PG moved for 61 s";
  EXPECT_EQ(rp->bytes_copied, 2u << 20);
  EXPECT_EQ(rp->shards_rebuilt, 2u);
  // A dead device: its PGs are degraded, not merely misplaced.
  ASSERT_OK(store_->SetDeviceState(1, false, std::nullopt));
  counts = CountPgs(*store_);
  EXPECT_GT(counts->degraded, 0u);
  EXPECT_EQ(DecodeRecoveryProgress("{}").status().code(), Code::kCorruption);

  // Nothing moves any more: the record goes.
  ASSERT_OK(store_->DeleteVolume("v"));
  ASSERT_OK(store_->SetDeviceState(1, true, std::nullopt));
  ASSERT_EQ(CountPgs(*store_)->moving, 0u);
  ASSERT_OK(ObserveRecovery(*store_, round, 1100));
  EXPECT_EQ(*store_->GetRecoveryRecord(), "");
}

// Issue 16: fullness. Past nearfull_ratio a device is marked nearfull (no
// new epoch); past full_ratio full, which the map carries (CVM_DEV_FULL);
// the marks clear only below their ratios by the margin.
TEST_P(EmptyStoreTest, DevicesPastTheirRatiosAreMarkedFull) {
  for (const char* h : {"h1", "h2", "h3"}) {
    ASSERT_OK(store_->AddHost(MakeHost(h)));
    ASSERT_OK(store_->AddDevice({h, "/dev/nvme0n1", TiB, 1.0, "nvme"}));
  }
  EXPECT_ERROR(store_->SetSetting("full_ratio", "0.5"), Code::kInvalidArgument,
               "nearfull_ratio 0.85 must not exceed full_ratio 0.5");
  EXPECT_ERROR(store_->SetSetting("full_ratio", "1.5"), Code::kInvalidArgument,
               "full_ratio must be a share from 0.05 to 0.99");
  ASSERT_OK(store_->SetSetting("nearfull_ratio", "0.4"));
  ASSERT_OK(store_->SetSetting("full_ratio", "0.5"));
  const auto usage = [](uint64_t used) {
    std::map<uint64_t, TargetDeviceUsage> u;
    u[1] = {1, "/dev/nvme0n1", 1000, used, 0, 0};
    return u;
  };
  const uint64_t epoch = Epoch();
  FullnessMonitor fullness(*store_);
  auto changes = fullness.Round(usage(300), 1000);
  ASSERT_OK(changes);
  EXPECT_TRUE(changes->empty());
  changes = fullness.Round(usage(450), 1001);
  ASSERT_EQ(changes->size(), 1u);
  EXPECT_TRUE(store_->GetDevice(1)->nearfull);
  EXPECT_FALSE(store_->GetDevice(1)->full);
  EXPECT_EQ(Epoch(), epoch) << "nearfull is not in the map";
  ASSERT_OK(fullness.Round(usage(500), 1002));
  EXPECT_TRUE(store_->GetDevice(1)->full);
  EXPECT_EQ(Epoch(), epoch + 1);
  auto blob = store_->GetMap(Epoch());
  ASSERT_OK(blob);
  cvm_map* raw = nullptr;
  cvm_err err{};
  ASSERT_EQ(cvm_map_decode(blob->data(), blob->size(), &raw, &err), 0);
  CMapPtr map(raw);
  for (uint32_t i = 0; i < map->nr_devices; ++i) {
    EXPECT_EQ((map->devices[i].state & CVM_DEV_FULL) != 0,
              map->devices[i].id == 1);
  }
  // Hysteresis: 49% keeps it full, 47% clears it.
  ASSERT_OK(fullness.Round(usage(490), 1003));
  EXPECT_TRUE(store_->GetDevice(1)->full);
  ASSERT_OK(fullness.Round(usage(470), 1004));
  EXPECT_FALSE(store_->GetDevice(1)->full);
  EXPECT_TRUE(store_->GetDevice(1)->nearfull);
  EXPECT_EQ(Epoch(), epoch + 2);
  ASSERT_OK(fullness.Round(usage(0), 1005));
  EXPECT_FALSE(store_->GetDevice(1)->nearfull);
}

INSTANTIATE_TEST_SUITE_P(Stores, EmptyStoreTest,
                         ::testing::Values("rocksdb", "etcd"), StoreName);
INSTANTIATE_TEST_SUITE_P(Stores, PopulatedStoreTest,
                         ::testing::Values("rocksdb", "etcd"), StoreName);

}  // namespace
}  // namespace cvm
