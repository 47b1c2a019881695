// The map cvmd seals for each epoch: built from the store's records by
// kernel/common, refused with a reason when it cannot be served, stable
// bucket ids across epochs, and intact across a restart.
#include "cluster_map.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <set>

#include "metadata_store.h"
#include "test_util.h"
#include "units.h"

namespace cvm {
namespace {

using testing::TempDir;

struct DecodedMap {
  CMapPtr map;
  std::set<int32_t> bucket_ids;
};

DecodedMap Decode(const std::string& blob) {
  cvm_map* raw = nullptr;
  cvm_err err{};
  EXPECT_EQ(cvm_map_decode(blob.data(), blob.size(), &raw, &err), 0)
      << (err.why ? err.why : "");
  DecodedMap out{CMapPtr(raw), {}};
  if (raw) {
    for (uint32_t i = 0; i < raw->nr_buckets; ++i)
      out.bucket_ids.insert(raw->buckets[i].id);
  }
  return out;
}

// A store with three hosts in two racks, two devices each.
class ThreeHostStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    StoreOptions options;
    options.sync = false;
    auto opened = MetadataStore::Open(dir_.Sub("db"), std::move(options));
    ASSERT_OK(opened);
    store_ = std::move(opened).value();
  }

  int hosts_added_ = 0;  // one address per host
  void AddHost(const std::string& name, const std::string& rack, int devices) {
    Host h;
    h.name = name;
    h.addresses = {fmt::format("127.0.0.1:{}", 7800 + ++hosts_added_)};
    h.rack = rack;
    ASSERT_OK(store_->AddHost(h));
    for (int i = 0; i < devices; ++i) {
      ASSERT_OK(store_->AddDevice(
          {name, "/dev/nvme" + std::to_string(i) + "n1", TiB, 1.0, "nvme"}));
    }
  }

  void AddPool(const std::string& name, Policy policy) {
    Pool p;
    p.name = name;
    p.policy = policy;
    p.pg_num = 256;
    ASSERT_OK(store_->CreatePool(p));
  }

  uint64_t Epoch() { return *store_->CurrentEpoch(); }

  void PopulateThreeHosts() {
    AddHost("h1", "r1", 2);
    AddHost("h2", "r1", 2);
    AddHost("h3", "r2", 2);
    AddPool("rep", Policy::Replicated(3));
  }

  TempDir dir_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_F(ThreeHostStoreTest, EpochCarriesAServableSealedMap) {
  PopulateThreeHosts();
  auto epoch = store_->GetEpoch(Epoch());
  ASSERT_OK(epoch);
  EXPECT_EQ(epoch->problem, "");
  auto blob = store_->GetMap(Epoch());
  ASSERT_OK(blob);
  EXPECT_EQ(blob->size(), epoch->map_size);
  DecodedMap m = Decode(*blob);
  ASSERT_TRUE(m.map);
  EXPECT_EQ(m.map->epoch, Epoch());
  EXPECT_EQ(m.map->nr_devices, 6u);
  EXPECT_EQ(m.map->nr_pools, 1u);
  // root + 2 racks + 3 hosts
  EXPECT_EQ(m.map->nr_buckets, 6u);
}

TEST_F(ThreeHostStoreTest, PlacementPutsReplicasOnThreeHosts) {
  PopulateThreeHosts();
  auto blob = store_->GetMap(Epoch());
  ASSERT_OK(blob);
  auto placement = PlacementOf(*blob);
  ASSERT_OK(placement);
  ASSERT_EQ(placement->size(), 1u);
  const PoolPlacement& p = placement->front();
  EXPECT_EQ(p.width, 3u);
  EXPECT_EQ(p.unplaced, 0u);
  uint64_t total = 0;
  for (const auto& [dev, n] : p.pgs) {
    total += n;
    // Three hosts, every PG on each: each host's two devices share 256.
    EXPECT_GT(n, 60u) << "device " << dev;
  }
  EXPECT_EQ(total, 256u * 3);
}

TEST_F(ThreeHostStoreTest, TooFewFailureDomainsLeavesThePoolOut) {
  AddHost("h1", "", 1);
  AddHost("h2", "", 1);
  AddPool("rep", Policy::Replicated(3));
  auto epoch = store_->GetEpoch(Epoch());
  ASSERT_OK(epoch);
  ASSERT_EQ(epoch->left_out.size(), 1u);
  EXPECT_NE(epoch->left_out[0].find("failure domains"), std::string::npos)
      << epoch->left_out[0];
  EXPECT_EQ(PlacementOf(*store_->GetMap(Epoch()))->size(), 0u);
  // A third host places it in the next epoch.
  AddHost("h3", "", 1);
  EXPECT_EQ(store_->GetEpoch(Epoch())->left_out.size(), 0u);
  EXPECT_EQ(PlacementOf(*store_->GetMap(Epoch()))->size(), 1u);
}

TEST_F(ThreeHostStoreTest, EmptyClusterIsNotServable) {
  AddHost("h1", "", 0);
  EXPECT_TRUE(testing::IsError(store_->GetMap(Epoch()), Code::kNotFound,
                               "cannot be served"));
}

TEST_F(ThreeHostStoreTest, UnplaceablePoolIsLeftOutOthersServed) {
  PopulateThreeHosts();
  AddPool("ec", Policy::Erasure(4, 2));  // six hosts needed, three exist
  auto epoch = store_->GetEpoch(Epoch());
  ASSERT_OK(epoch);
  EXPECT_EQ(epoch->problem, "");
  ASSERT_EQ(epoch->left_out.size(), 1u);
  EXPECT_NE(epoch->left_out[0].find("pool 'ec'"), std::string::npos);
  auto placement = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(placement);
  ASSERT_EQ(placement->size(), 1u);
  EXPECT_EQ(placement->front().width, 3u);
}

TEST_F(ThreeHostStoreTest, NoDevicesIsNotServable) {
  AddHost("h1", "", 0);
  auto epoch = store_->GetEpoch(Epoch());
  ASSERT_OK(epoch);
  EXPECT_NE(epoch->problem.find("no devices"), std::string::npos)
      << epoch->problem;
}

TEST_F(ThreeHostStoreTest, RackBucketIdsSurviveNewRacksAndRestarts) {
  PopulateThreeHosts();
  const std::set<int32_t> before = Decode(*store_->GetMap(Epoch())).bucket_ids;
  // "r0" sorts before the existing racks: it must not renumber them.
  AddHost("h0", "r0", 1);
  Reopen();
  AddHost("h4", "r2", 1);
  const std::set<int32_t> after = Decode(*store_->GetMap(Epoch())).bucket_ids;
  for (int32_t id : before) EXPECT_TRUE(after.count(id)) << "bucket " << id;
  EXPECT_EQ(after.size(), before.size() + 3);  // rack r0, hosts h0 and h4
}

TEST_F(ThreeHostStoreTest, OutDeviceMovesOnlyItsOwnPlacementGroups) {
  PopulateThreeHosts();
  auto before = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(before);
  ASSERT_OK(store_->SetDeviceState(1, std::nullopt, false));
  auto after = PlacementOf(*store_->GetMap(Epoch()));
  ASSERT_OK(after);
  EXPECT_EQ(after->front().pgs.at(1), 0u);
  EXPECT_NE(before->front().table_crc, after->front().table_crc);
}

TEST_F(ThreeHostStoreTest, SealedMapSurvivesRestartAndIsChecked) {
  PopulateThreeHosts();
  const std::string blob = *store_->GetMap(Epoch());
  Reopen();
  auto again = store_->GetMap(Epoch());
  ASSERT_OK(again);
  EXPECT_EQ(*again, blob);
}

TEST(SealMapTest, WeightBeyondFixedPointIsAProblem) {
  Topology t;
  Host h;
  h.id = 1;
  h.name = "h1";
  t.hosts.push_back(h);
  Device d;
  d.id = 1;
  d.host_id = 1;
  d.weight = 70000.0;
  t.devices.push_back(d);
  SealedMap sealed = SealMap(1, t, {});
  EXPECT_EQ(sealed.blob, "");
  EXPECT_NE(sealed.problem.find("16.16"), std::string::npos) << sealed.problem;
}

}  // namespace
}  // namespace cvm
