#include "api_server.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include "api_client.h"
#include "log.h"
#include "test_util.h"
#include "unix_socket.h"

namespace cvm {
namespace {

using nlohmann::json;
using testing::TempDir;

// A server on a temp socket, running on a background thread, over an empty
// store; idle connections time out after 300 ms.
class RunningServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogLevel(LogLevel::kWarn);
    StoreOptions store_options;
    store_options.sync = false;
    auto store = MetadataStore::Open(dir_.Sub("db"), store_options);
    ASSERT_OK(store);
    store_ = std::move(store).value();
    api_ = std::make_unique<Api>(*store_);
    ServerOptions options;
    options.socket_path = dir_.Sub("run/cvmd.sock");
    options.idle_timeout = std::chrono::milliseconds(300);
    options.max_connections = 4;
    server_ = std::make_unique<ApiServer>(*api_, options);
    ASSERT_OK(server_->Listen());
    thread_ = std::thread([this] { run_status_ = server_->Run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
    EXPECT_OK(run_status_);
  }
  std::string Socket() const { return dir_.Sub("run/cvmd.sock"); }

  // Raw connection for misbehaving-client tests.
  UniqueFd Connect() {
    auto fd = ConnectUnix(Socket(), std::chrono::milliseconds(1000));
    EXPECT_OK(fd);
    return fd.ok() ? std::move(fd).value() : UniqueFd();
  }
  // Reads until `fd` closes or 2 s pass.
  std::string ReadAll(int fd) {
    std::string out;
    char buf[4096];
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (std::chrono::steady_clock::now() < deadline) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) break;
      if (n > 0) {
        out.append(buf, n);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<MetadataStore> store_;
  std::unique_ptr<Api> api_;
  std::unique_ptr<ApiServer> server_;
  std::thread thread_;
  Status run_status_;
};

TEST_F(RunningServerTest, ClientRoundTrip) {
  ApiClient client(Socket());
  auto status = client.Call("status");
  ASSERT_OK(status);
  EXPECT_EQ((*status)["map_epoch"], 0);
  ASSERT_OK(client.Call("host.add",
                        {{"name", "h1"}, {"addresses", {"10.0.0.1:7800"}}}));
  EXPECT_ERROR(client.Call("host.add",
                           {{"name", "h1"}, {"addresses", {"10.0.0.1:7800"}}}),
               Code::kAlreadyExists, "host 'h1' already exists");
  EXPECT_ERROR(client.Call("nope"), Code::kUnknownOp, "unknown op");
  auto raw = client.CallRaw("{garbage");
  ASSERT_OK(raw);
  EXPECT_EQ((*raw)["error"]["code"], "bad_request");
  // The connection is still usable after a bad request.
  EXPECT_OK(client.Call("host.list"));
}

TEST_F(RunningServerTest, PipelinedRequestsAnswerInOrder) {
  UniqueFd fd = Connect();
  const std::string requests =
      "{\"op\":\"map.epoch\",\"id\":1}\n\n{\"op\":\"nope\",\"id\":2}\r\n"
      "{\"op\":\"status\",\"id\":3}";  // the last one ends at EOF
  ASSERT_EQ(::send(fd.get(), requests.data(), requests.size(), 0),
            static_cast<ssize_t>(requests.size()));
  ::shutdown(fd.get(), SHUT_WR);
  const std::string reply = ReadAll(fd.get());
  std::vector<json> lines;
  size_t start = 0;
  for (size_t nl; (nl = reply.find('\n', start)) != std::string::npos;
       start = nl + 1) {
    lines.push_back(json::parse(reply.substr(start, nl - start)));
  }
  ASSERT_EQ(lines.size(), 3u) << reply;
  EXPECT_EQ(lines[0]["id"], 1);
  EXPECT_EQ(lines[1]["id"], 2);
  EXPECT_EQ(lines[1]["error"]["code"], "unknown_op");
  EXPECT_EQ(lines[2]["id"], 3);
}

TEST_F(RunningServerTest, OverlongLineIsRefusedAndClosed) {
  UniqueFd fd = Connect();
  const std::string chunk(64 * 1024, 'x');
  size_t sent = 0;
  while (sent <= kMaxRequestBytes + chunk.size()) {
    const ssize_t n =
        ::send(fd.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      break;  // the server hung up: fine, its answer is already queued
    }
  }
  const std::string reply = ReadAll(fd.get());
  EXPECT_NE(reply.find("exceeds"), std::string::npos) << reply.substr(0, 200);
}

TEST_F(RunningServerTest, IdleClientIsDisconnectedAndOthersStillServed) {
  UniqueFd idle = Connect();
  ::send(idle.get(), "{\"op\":", 6, 0);  // half a request, then silence
  ApiClient client(Socket());
  EXPECT_OK(client.Call("status"));  // the daemon is not stuck on it
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(ReadAll(idle.get()), "");  // closed by the server
  EXPECT_LT(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(1500));
}

// Beyond the limit a client waits in the backlog and is served once a
// connection leaves (it used to be hung up on).
TEST_F(RunningServerTest, ConnectionsBeyondTheLimitWaitTheirTurn) {
  std::vector<UniqueFd> held;
  for (int i = 0; i < 4; ++i) held.push_back(Connect());
  std::thread release([&held] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    held.pop_back();
  });
  ApiClient client(Socket(), std::chrono::milliseconds(5000));
  EXPECT_OK(client.Call("status"));
  release.join();
}

TEST_F(RunningServerTest, SecondServerOnALiveSocketIsRefused) {
  ServerOptions options;
  options.socket_path = Socket();
  ApiServer second(*api_, options);
  EXPECT_ERROR(second.Listen(), Code::kUnavailable, "in use by a running cvmd");
  EXPECT_OK(ApiClient(Socket()).Call("status"));  // first one unharmed
}

TEST(ApiServerTest, ReplacesAStaleSocketAndRemovesItOnExit) {
  SetLogLevel(LogLevel::kWarn);
  TempDir dir;
  StoreOptions store_options;
  store_options.sync = false;
  auto store = MetadataStore::Open(dir.Sub("db"), store_options);
  ASSERT_OK(store);
  Api api(**store);
  const std::string path = dir.Sub("s.sock");
  {
    // A bound but never-listening socket: what a crashed daemon leaves.
    UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr;
    ASSERT_OK(MakeUnixAddress(path, &addr));
    ASSERT_EQ(
        ::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
        0);
  }
  ServerOptions options;
  options.socket_path = path;
  {
    ApiServer server(api, options);
    ASSERT_OK(server.Listen());
    EXPECT_TRUE(std::filesystem::exists(path));
  }
  EXPECT_FALSE(std::filesystem::exists(path));

  std::ofstream(dir.Sub("file")) << "not a socket";
  options.socket_path = dir.Sub("file");
  ApiServer refused(api, options);
  EXPECT_ERROR(refused.Listen(), Code::kInvalidArgument, "is not a socket");
  EXPECT_TRUE(std::filesystem::exists(dir.Sub("file")));
}

TEST(ApiClientTest, NoDaemonIsUnavailable) {
  TempDir dir;
  ApiClient client(dir.Sub("none.sock"));
  EXPECT_ERROR(client.Call("status"), Code::kUnavailable, "is cvmd running?");
}

}  // namespace
}  // namespace cvm
