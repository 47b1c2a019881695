// Node presence and the leader lease over a real etcd (etcd_server.h).
// Leases of 2 s: each test takes 1 to 5 s.

#include "cluster_presence.h"

#include <gtest/gtest.h>

#include <thread>

#include "etcd_server.h"
#include "metadata_store.h"
#include "test_util.h"

namespace cvm {
namespace {

using Clock = std::chrono::steady_clock;

class PresenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(testing::EtcdServer::Get().uri(), "")
        << testing::EtcdServer::Get().error();
    uri_ = testing::UniqueEtcdUri();
    auto parsed = ParseEtcdUri(uri_);
    ASSERT_OK(parsed);
    parsed_ = *parsed;
  }

  std::unique_ptr<EtcdPresence> Node(const std::string& host) {
    PresenceOptions o;
    o.ttl = std::chrono::seconds(2);
    o.compact_every = std::chrono::seconds(0);
    auto p = std::make_unique<EtcdPresence>(parsed_, host, o);
    EXPECT_OK(p->Start());
    return p;
  }

  // Polls `done` every 50 ms up to `limit`; returns how long it took.
  template <typename F>
  std::chrono::milliseconds WaitFor(F done, std::chrono::seconds limit) {
    const auto start = Clock::now();
    while (!done() && Clock::now() - start < limit) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() -
                                                                 start);
  }

  std::string uri_;
  EtcdUri parsed_;
};

TEST_F(PresenceTest, OneLeaderAndEveryNodeListed) {
  auto a = Node("a");
  auto b = Node("b");
  EXPECT_TRUE(a->IsLeader());  // first to ask
  EXPECT_FALSE(b->IsLeader());
  const auto view = b->View();
  EXPECT_EQ(view["leader"], "a");
  EXPECT_TRUE(view["nodes"].contains("a"));
  EXPECT_TRUE(view["nodes"].contains("b"));
  ASSERT_EQ(view["etcd_members"].size(), 1u);
  EXPECT_EQ(view["etcd_members"][0]["healthy"], true);
  EXPECT_EQ(view["etcd_members"][0]["is_leader"], true);  // the only member
}

// A stopped leader revokes its lease: the next one takes over within a
// renewal period (ttl/3), and the stopped node is no longer listed.
TEST_F(PresenceTest, AnotherTakesOverWhenTheLeaderStops) {
  auto a = Node("a");
  auto b = Node("b");
  ASSERT_TRUE(a->IsLeader());
  a->Stop();
  const auto took =
      WaitFor([&] { return b->IsLeader(); }, std::chrono::seconds(10));
  EXPECT_TRUE(b->IsLeader());
  EXPECT_FALSE(b->View()["nodes"].contains("a"));
  std::cout << "leader handover after a stop: " << took.count() << " ms\n";
}

// The leader's writes need its lease on the leader key: once the lease is
// gone (expired while the process was paused, here revoked behind its
// back) they are refused, and another cvmd leads.
TEST_F(PresenceTest, ALeaderThatLostItsLeaseCannotWrite) {
  auto store = MetadataStore::Open(uri_);
  ASSERT_OK(store);
  for (int i = 1; i <= 5; ++i) {
    Host h;
    h.name = "h" + std::to_string(i);
    h.addresses = {"10.0.0." + std::to_string(i) + ":7800"};
    ASSERT_OK((*store)->AddHost(h));  // epochs 1..5
  }
  auto a = Node("a");
  ASSERT_TRUE(a->IsLeader());
  const int64_t old_lease = a->lease();
  auto pruned = (*store)->PruneEpochs(3, old_lease);
  ASSERT_OK(pruned);
  EXPECT_EQ(*pruned, 2u);
  EXPECT_EQ((*store)->EpochHistory()->size(), 3u);
  EXPECT_ERROR((*store)->GetMap(1), Code::kNotFound, "");

  EtcdClient etcd(parsed_.endpoints);
  ASSERT_OK(etcd.Call("/v3/lease/revoke", {{"ID", old_lease}}));
  auto b = Node("b");
  EXPECT_TRUE(b->IsLeader());
  EXPECT_ERROR((*store)->PruneEpochs(1, old_lease), Code::kUnavailable,
               "no longer holds the leader lease");
  EXPECT_EQ((*store)->EpochHistory()->size(), 3u);  // nothing went
  // a renews, finds its lease gone, takes a new one and follows b.
  WaitFor([&] { return a->lease() != old_lease; }, std::chrono::seconds(10));
  EXPECT_NE(a->lease(), old_lease);
  EXPECT_FALSE(a->IsLeader());
  EXPECT_EQ(a->View()["leader"], "b");
}

}  // namespace
}  // namespace cvm
