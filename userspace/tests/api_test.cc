#include "api.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "test_util.h"

namespace cvm {
namespace {

using nlohmann::json;
using testing::TempDir;

// An Api over an empty store in a temp directory.
class ApiOnEmptyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.sync = false;
    auto store = MetadataStore::Open(dir_.Sub("db"), options);
    ASSERT_OK(store);
    store_ = std::move(store).value();
    api_ = std::make_unique<Api>(*store_);
  }

  // Response object for a raw request text.
  json Handle(const std::string& text) { return api_->HandleRequest(text); }

  std::string ErrorCode(const json& response) {
    EXPECT_EQ(response.value("ok", true), false) << response.dump();
    return response["error"].value("code", "");
  }
  std::string ErrorMessage(const json& response) {
    return response["error"].value("message", "");
  }

  TempDir dir_;
  std::unique_ptr<MetadataStore> store_;
  std::unique_ptr<Api> api_;
};

TEST_F(ApiOnEmptyStoreTest, MalformedJsonIsABadRequest) {
  for (const char* text : {"{", "not json", "{\"op\":}", "", "\xff\xfe"}) {
    json r = Handle(text);
    EXPECT_EQ(ErrorCode(r), "bad_request") << text;
    EXPECT_NE(ErrorMessage(r).find("malformed JSON"), std::string::npos)
        << text;
  }
}

TEST_F(ApiOnEmptyStoreTest, RequestShapeIsChecked) {
  EXPECT_EQ(ErrorCode(Handle("[]")), "bad_request");
  EXPECT_EQ(ErrorCode(Handle("42")), "bad_request");
  EXPECT_EQ(ErrorCode(Handle("{}")), "bad_request");
  EXPECT_NE(ErrorMessage(Handle("{}")).find("'op' is required"),
            std::string::npos);
  EXPECT_EQ(ErrorCode(Handle(R"({"op":7})")), "bad_request");
  EXPECT_EQ(ErrorCode(Handle(R"({"op":"status","extra":1})")), "bad_request");
  EXPECT_EQ(ErrorCode(Handle(R"({"op":"status","args":[1]})")),
            "invalid_argument");
  EXPECT_EQ(ErrorCode(Handle(R"({"op":"status","id":{}})")), "bad_request");
  // Deep nesting is refused before parsing.
  EXPECT_EQ(
      ErrorCode(Handle(std::string(10000, '[') + std::string(10000, ']'))),
      "bad_request");
  // Oversized requests are refused.
  EXPECT_EQ(ErrorCode(Handle(std::string(kMaxRequestBytes + 1, ' '))),
            "bad_request");
}

TEST_F(ApiOnEmptyStoreTest, UnknownOpIsNamed) {
  json r = Handle(R"({"op":"volume.frobnicate"})");
  EXPECT_EQ(ErrorCode(r), "unknown_op");
  EXPECT_NE(ErrorMessage(r).find("volume.frobnicate"), std::string::npos);
}

TEST_F(ApiOnEmptyStoreTest, WrongArgumentTypesAreNamed) {
  json r = Handle(R"({"op":"host.add","args":{"name":5,"addresses":["a:1"]}})");
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
  EXPECT_EQ(ErrorMessage(r), "argument 'name' must be a string, got 5");
  r = Handle(R"({"op":"host.add","args":{"name":"h","addresses":"a:1"}})");
  EXPECT_EQ(ErrorMessage(r),
            "argument 'addresses' must be an array of strings, got string");
  r = Handle(
      R"({"op":"host.add","args":{"name":"h","addresses":["a:1"],"colour":1}})");
  EXPECT_NE(ErrorMessage(r).find("unknown argument 'colour'"),
            std::string::npos);
  r = Handle(
      R"({"op":"volume.create","args":{"name":"v","pool":"p","size":-1}})");
  EXPECT_EQ(ErrorMessage(r),
            "argument 'size' must be a non-negative integer, got -1");
  r = Handle(
      R"({"op":"volume.create","args":{"name":"v","pool":"p","size":1.5}})");
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
  r = Handle(R"({"op":"volume.create","args":{"name":"v","pool":"p"}})");
  EXPECT_EQ(ErrorMessage(r), "argument 'size' is required");
  r = Handle(R"({"op":"device.set_state","args":{"id":1,"up":"yes"}})");
  EXPECT_EQ(ErrorMessage(r), "argument 'up' must be true or false, got string");
  r = Handle(
      R"({"op":"pool.create","args":{"name":"p","policy":{"type":"ec","k":"4"}}})");
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
}

// A client's JSON encoder writes NaN and infinity as null: never "default".
TEST_F(ApiOnEmptyStoreTest, NullWeightIsRefusedNotDefaulted) {
  json added = Handle(
      R"({"op":"host.add","args":{"name":"h","addresses":["10.0.0.1:7800"]}})");
  ASSERT_EQ(added.value("ok", false), true) << added.dump();
  json r = Handle(
      R"({"op":"device.add","args":{"host":"h","path":"/dev/x","capacity":4096,"weight":null}})");
  EXPECT_EQ(ErrorCode(r), "invalid_argument");
  EXPECT_EQ(ErrorMessage(r), "device weight must be a finite number, got null");
}

TEST_F(ApiOnEmptyStoreTest, IdIsEchoed) {
  json r = Handle(R"({"op":"map.epoch","id":"abc"})");
  EXPECT_TRUE(r["ok"].get<bool>());
  EXPECT_EQ(r["id"], "abc");
  EXPECT_EQ(r["data"]["epoch"], 0);
  r = Handle(R"({"op":"nope","id":9})");
  EXPECT_EQ(r["id"], 9);
}

TEST_F(ApiOnEmptyStoreTest, FullLifecycleThroughCall) {
  ASSERT_OK(api_->Call("host.add", {{"name", "h1"},
                                    {"addresses", {"10.0.0.1:7800"}},
                                    {"transport", "rdma"},
                                    {"rack", "r1"}}));
  auto dev = api_->Call(
      "device.add",
      {{"host", "h1"}, {"path", "/dev/nvme0n1"}, {"capacity", 1ull << 40}});
  ASSERT_OK(dev);
  EXPECT_EQ((*dev)["host"], "h1");
  // ec:4,2 needs six hosts; volumes go only into placeable pools.
  for (int i = 2; i <= 6; ++i) {
    const std::string h = "h" + std::to_string(i);
    ASSERT_OK(api_->Call(
        "host.add",
        {{"name", h}, {"addresses", {fmt::format("10.0.0.{}:7800", i)}}}));
    ASSERT_OK(api_->Call(
        "device.add",
        {{"host", h}, {"path", "/dev/nvme0n1"}, {"capacity", 1ull << 40}}));
  }
  ASSERT_OK(api_->Call(
      "pool.create", {{"name", "ec"}, {"policy", "ec:4,2"}, {"pg_num", 128}}));
  ASSERT_OK(api_->Call(
      "pool.create", {{"name", "rep"},
                      {"policy", {{"type", "replicated"}, {"replicas", 2}}}}));
  auto vol = api_->Call("volume.create",
                        {{"name", "v"}, {"pool", "ec"}, {"size", 1 << 30}});
  ASSERT_OK(vol);
  EXPECT_EQ((*vol)["pool"], "ec");
  EXPECT_EQ((*vol)["object_size"], 4 << 20);
  auto shown = api_->Call("volume.get", {{"name", "v"}});
  ASSERT_OK(shown);
  EXPECT_EQ((*shown)["snapshots"], json::array());
  EXPECT_EQ(api_->Call("volume.list", {{"pool", "rep"}})->size(), 0u);
  EXPECT_EQ(api_->Call("volume.list", json::object())->size(), 1u);
  auto status = api_->Call("status", json::object());
  ASSERT_OK(status);
  EXPECT_EQ((*status)["map_epoch"], 14);
  EXPECT_EQ((*status)["counts"]["volumes"], 1);
  EXPECT_ERROR(api_->Call("pool.delete", {{"name", "ec"}}), Code::kInUse,
               "'v'");
  EXPECT_ERROR(api_->Call("volume.create",
                          {{"name", "w"}, {"pool", "x"}, {"size", 512}}),
               Code::kNotFound, "pool 'x' does not exist");
  // No data path behind snapshots yet: refused, and nothing recorded.
  EXPECT_ERROR(api_->Call("snapshot.create", {{"volume", "v"}, {"name", "s"}}),
               Code::kInvalidArgument, "not served yet");
  EXPECT_EQ(api_->Call("snapshot.list", {{"volume", "v"}})->size(), 0u);
  ASSERT_OK(api_->Call("volume.delete", {{"name", "v"}}));
  auto history = api_->Call("map.history", {{"limit", 1}});
  ASSERT_OK(history);
  EXPECT_EQ((*history)[0]["reason"], "pool.create rep");
  EXPECT_GE(api_->Call("ops", json::object())->size(), 20u);
}

}  // namespace
}  // namespace cvm
