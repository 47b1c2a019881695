// The key-value layer under the metadata store, against both stores:
// embedded RocksDB and a real etcd (etcd_server.h).

#include "kv_store.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <random>
#include <thread>

#include "etcd_client.h"
#include "etcd_server.h"
#include "test_util.h"

namespace cvm {
namespace {

using testing::TempDir;

class KvStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    location_ = testing::StoreLocation(GetParam(), dir_);
    ASSERT_NE(location_, "") << testing::EtcdServer::Get().error();
    auto kv = OpenKvStore(location_);
    ASSERT_OK(kv);
    kv_ = std::move(kv).value();
  }

  Status Put(Cf cf, const std::string& key, const std::string& value) {
    CVM_RETURN_IF_ERROR(kv_->Begin());
    KvBatch b;
    b.Put(cf, key, value);
    Status s = kv_->Commit(b, true);
    kv_->End();
    return s;
  }

  std::string Random(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string out(n, '\0');
    for (auto& c : out) c = static_cast<char>(rng());
    return out;
  }

  TempDir dir_;
  std::string location_;
  std::unique_ptr<KvStore> kv_;
};

// Sealed maps run to megabytes; etcd refuses requests over 1.5 MiB.
TEST_P(KvStoreTest, LargeValuesRoundTrip) {
  const std::string big = Random(4 << 20, 1), other = Random(3 << 20, 2);
  ASSERT_OK(Put(Cf::kMaps, "a", big));
  ASSERT_OK(Put(Cf::kMaps, "b", "small"));
  auto got = kv_->Get(Cf::kMaps, "a");
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(**got == big);
  std::vector<std::pair<std::string, size_t>> seen;
  ASSERT_OK(kv_->Scan(Cf::kMaps, [&](std::string_view k, std::string_view v) {
    seen.emplace_back(std::string(k), v.size());
    return Status();
  }));
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, size_t>>{
                      {"a", big.size()}, {"b", 5}}));
  ASSERT_OK(Put(Cf::kMaps, "a", other));  // replaced, old pieces dropped
  EXPECT_TRUE(**kv_->Get(Cf::kMaps, "a") == other);
  ASSERT_OK(kv_->Begin());
  KvBatch del;
  del.Delete(Cf::kMaps, "a");
  ASSERT_OK(kv_->Commit(del, true));
  kv_->End();
  EXPECT_FALSE(kv_->Get(Cf::kMaps, "a")->has_value());
  EXPECT_EQ(*kv_->Count(Cf::kMaps), 1u);
  if (GetParam() == "etcd") {
    // The pieces live under PREFIX/pieces/maps/...: a store opened at
    // PREFIX/pieces counts them as its "maps". None are left behind.
    auto pieces = OpenKvStore(location_ + "/pieces");
    ASSERT_OK(pieces);
    EXPECT_EQ(*(*pieces)->Count(Cf::kMaps), 0u);
  }
}

TEST_P(KvStoreTest, FamiliesAreApartAndKeysOrdered) {
  ASSERT_OK(Put(Cf::kHosts, std::string("\x00\x02", 2), "two"));
  ASSERT_OK(Put(Cf::kHosts, std::string("\x00\x01", 2), "one"));
  ASSERT_OK(Put(Cf::kHosts, std::string("\xff", 1), "last"));
  ASSERT_OK(Put(Cf::kDevices, std::string("\x00\x01", 2), "device"));
  std::vector<std::string> values;
  ASSERT_OK(kv_->Scan(Cf::kHosts, [&](std::string_view, std::string_view v) {
    values.emplace_back(v);
    return Status();
  }));
  EXPECT_EQ(values, (std::vector<std::string>{"one", "two", "last"}));
  EXPECT_EQ(*kv_->Count(Cf::kDevices), 1u);
  EXPECT_EQ(*kv_->Count(Cf::kPools), 0u);
}

INSTANTIATE_TEST_SUITE_P(Stores, KvStoreTest,
                         ::testing::Values("rocksdb", "etcd"),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           return i.param;
                         });

// Two cvmds on one etcd: what one read at Begin, the other changed first.
TEST(EtcdKvTest, CommitAfterAnotherWritersCommitConflicts) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string uri = testing::UniqueEtcdUri();
  auto a = OpenKvStore(uri), b = OpenKvStore(uri);
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_OK((*a)->Begin());
  ASSERT_OK((*b)->Begin());
  KvBatch wa, wb;
  wa.Put(Cf::kHosts, "k", "from a");
  wb.Put(Cf::kHosts, "k", "from b");
  ASSERT_OK((*b)->Commit(wb, true));
  (*b)->End();
  EXPECT_ERROR((*a)->Commit(wa, true), Code::kConflict, "changed");
  (*a)->End();
  EXPECT_EQ(**(*a)->Get(Cf::kHosts, "k"), "from b");
  // Reads between Begin and End see the state at Begin.
  ASSERT_OK((*a)->Begin());
  ASSERT_OK((*b)->Begin());
  KvBatch wb2;
  wb2.Put(Cf::kHosts, "k", "newer");
  ASSERT_OK((*b)->Commit(wb2, true));
  (*b)->End();
  EXPECT_EQ(**(*a)->Get(Cf::kHosts, "k"), "from b");
  (*a)->End();
  EXPECT_EQ(**(*a)->Get(Cf::kHosts, "k"), "newer");
}

// Pieces no record names (a transaction whose outcome was unknown) are
// swept by the leader, but only at the second sweep that sees them, so a
// commit in flight keeps its pieces; a value's own pieces always stay.
TEST(EtcdKvTest, UnreferencedPiecesAreSwept) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string uri = testing::UniqueEtcdUri();
  auto kv = OpenKvStore(uri);
  ASSERT_OK(kv);
  const std::string big(1 << 20, 'x');
  ASSERT_OK((*kv)->Begin());
  KvBatch batch;
  batch.Put(Cf::kMaps, "a", big);
  ASSERT_OK((*kv)->Commit(batch, true));
  (*kv)->End();
  auto parsed = ParseEtcdUri(uri);
  ASSERT_OK(parsed);
  EtcdClient client(parsed->endpoints);
  for (int i = 0; i < 2; ++i) {  // an orphan of two pieces
    ASSERT_OK(client.Call(
        "/v3/kv/put",
        {{"key", EtcdB64(parsed->prefix + "/pieces/maps/61/deadbeef/" +
                         std::to_string(i))},
         {"value", EtcdB64("lost")}}));
  }
  auto pieces = OpenKvStore(uri + "/pieces");
  ASSERT_OK(pieces);
  const auto count = [&] { return *(*pieces)->Count(Cf::kMaps); };
  const uint64_t before = count();
  EXPECT_EQ(*(*kv)->SweepPieces(), 0u);  // first seen: left
  EXPECT_EQ(count(), before);
  EXPECT_EQ(*(*kv)->SweepPieces(), 1u);  // still unreferenced: gone
  EXPECT_EQ(count(), before - 2);
  EXPECT_EQ(*(*kv)->SweepPieces(), 0u);
  EXPECT_TRUE(**(*kv)->Get(Cf::kMaps, "a") == big);
}

// etcd's streaming calls (lease keepalive) answer errors as {"error":
// {...}}, an object; the client read "error" as a string and threw, which
// ended cvmd's presence thread and the daemon (seen in CI while etcd had
// lost quorum). Any error reply is a status with its reason. The server
// here answers as that etcd member did, byte for byte.
TEST(EtcdClientTest, ErrorRepliesOfAnyShapeAreStatuses) {
  httplib::Server server;
  server.set_keep_alive_max_count(1);  // stop() need not wait on a client
  const std::string streaming =
      R"({"error":{"grpc_code":14,"http_code":408,"message":"grpc: the )"
      R"(client connection is closing","http_status":"Request Timeout"}})";
  server.Post("/v3/lease/keepalive",
              [&](const httplib::Request&, httplib::Response& res) {
                res.status = 408;
                res.set_content(streaming, "application/json");
              });
  server.Post("/v3/kv/range",
              [](const httplib::Request&, httplib::Response& res) {
                res.status = 400;
                res.set_content(R"({"error":{"odd":[1,2]},"code":"x"})",
                                "application/json");
              });
  const int port = server.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  std::thread serving([&] { server.listen_after_bind(); });
  while (!server.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EtcdClient client({"127.0.0.1:" + std::to_string(port)});
  EXPECT_ERROR(client.Call("/v3/lease/keepalive", {{"ID", 1}}), Code::kIoError,
               "HTTP 408: grpc: the client connection is closing");
  auto odd = client.Call("/v3/kv/range", {{"key", "YQ=="}});
  EXPECT_FALSE(odd.ok());
  EXPECT_NE(odd.status().message().find("odd"), std::string::npos)
      << odd.status().message();
  server.stop();
  serving.join();
}

TEST(EtcdKvTest, BadUrisAndUnreachableEndpointsAreRefused) {
  EXPECT_ERROR(OpenKvStore("etcd://"), Code::kInvalidArgument,
               "at least one endpoint");
  EXPECT_ERROR(OpenKvStore("etcd://host"), Code::kInvalidArgument, "HOST:PORT");
  EXPECT_ERROR(OpenKvStore("etcd://h:0"), Code::kInvalidArgument, "port");
  EXPECT_ERROR(OpenKvStore("etcd://h:1/"), Code::kInvalidArgument, "prefix");
  EXPECT_ERROR(OpenKvStore("etcd://127.0.0.1:1"), Code::kUnavailable,
               "cannot take requests");
}

// A dead first endpoint: requests go on to the next one.
TEST(EtcdKvTest, FollowsToTheNextEndpoint) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string live = testing::UniqueEtcdUri();  // etcd://IP:PORT/PREFIX
  const std::string uri =
      "etcd://127.0.0.1:1," + live.substr(std::string("etcd://").size());
  auto kv = OpenKvStore(uri);
  ASSERT_OK(kv);
  ASSERT_OK((*kv)->Begin());
  KvBatch w;
  w.Put(Cf::kPools, "p", "v");
  EXPECT_OK((*kv)->Commit(w, true));
  (*kv)->End();
}

}  // namespace
}  // namespace cvm
