#include "kernel_sync.h"

#include <gtest/gtest.h>
#include <linux/cvm.h>

#include <map>
#include <set>
#include <thread>

#include "api.h"
#include "cluster_presence.h"
#include "etcd_server.h"
#include "store_follower.h"
#include "test_util.h"

namespace cvm {
namespace {

using nlohmann::json;
using testing::TempDir;

// cvm.ko and cvm_target.ko as plain data: what was pushed, attached, served.
class FakeKernel : public Kernel {
 public:
  bool initiator_loaded = true;
  bool target_loaded = true;
  uint64_t map_epoch = 0;
  MapSetRequest last_map;
  std::string last_blob;
  int map_sets = 0;
  std::map<uint64_t, KernelVolume> volumes;
  std::map<uint32_t, std::string> devices;
  std::vector<std::string> listeners;  // "addr:port"
  Status next_attach_error;
  bool open = false;  // VOLUME_DETACH without force: EBUSY

  Result<ModuleStatus> Query(std::string_view family) override {
    ModuleStatus s;
    s.family = std::string(family);
    s.loaded = family == CVM_GENL_NAME ? initiator_loaded : target_loaded;
    s.map_epoch = family == CVM_GENL_NAME ? map_epoch : 0;
    return s;
  }
  Status MapSet(const MapSetRequest& r) override {
    if (!initiator_loaded) return Unavailable("cvm module not loaded");
    ++map_sets;
    last_map = r;
    last_blob = std::string(r.blob);
    last_map.blob = last_blob;
    cvm_map* raw = nullptr;
    cvm_err err{};
    if (cvm_map_decode(r.blob.data(), r.blob.size(), &raw, &err) < 0) {
      return InvalidArgument("bad blob");
    }
    map_epoch = raw->epoch;
    cvm_map_free(raw);
    return {};
  }
  std::function<void(const KernelVolume&)> on_attach;
  Result<KernelVolume> VolumeAttach(const KernelVolume& v) override {
    if (!initiator_loaded) return Unavailable("cvm module not loaded");
    if (on_attach) on_attach(v);
    if (!next_attach_error.ok()) return std::exchange(next_attach_error, {});
    if (volumes.count(v.id)) return AlreadyExists("attached");
    KernelVolume k = v;
    k.minor = static_cast<uint32_t>(volumes.size());
    volumes[v.id] = k;
    return k;
  }
  Status VolumeDetach(uint64_t id, bool force) override {
    if (!volumes.count(id)) return NotFound("no such volume");
    if (open && !force) return InUse("volume detach refused by cvm: busy");
    volumes.erase(id);
    return {};
  }
  Result<std::vector<KernelVolume>> VolumeList() override {
    if (!initiator_loaded) return Unavailable("cvm module not loaded");
    std::vector<KernelVolume> out;
    for (auto& [id, v] : volumes) out.push_back(v);
    return out;
  }
  Status TargetDeviceAdd(uint32_t id, const std::string& path, bool,
                         bool) override {
    if (!target_loaded) return Unavailable("cvm_target module not loaded");
    if (devices.count(id)) return AlreadyExists("served");
    devices[id] = path;
    return {};
  }
  Status TargetDeviceRemove(uint32_t id) override {
    if (!devices.erase(id)) return NotFound("no device");
    return {};
  }
  Status TargetListen(const Listener& l) override {
    const std::string a = l.addr + ":" + std::to_string(l.port);
    if (std::find(listeners.begin(), listeners.end(), a) != listeners.end())
      return AlreadyExists("listening");
    listeners.push_back(a);
    return {};
  }
  Status TargetUnlisten(const std::string& addr, uint16_t port) override {
    const auto n = std::erase(listeners, addr + ":" + std::to_string(port));
    return n ? Status() : NotFound("no listener");
  }
  Status TargetHostsSet(uint32_t device_id,
                        const std::vector<TargetHost>& h) override {
    hosts[device_id] = h;
    return {};
  }
  std::map<uint32_t, std::vector<TargetHost>> hosts;
  Status HostKeySet(const std::string& secret, uint32_t key_id) override {
    host_secret = secret;
    host_key_id = key_id;
    return {};
  }
  std::string host_secret;
  uint32_t host_key_id = 0;
  Status TargetVolumeFence(uint64_t volume_id, uint64_t epoch,
                           uint64_t /*host_id*/) override {
    if (!target_loaded) return Unavailable("cvm_target module not loaded");
    if (fences[volume_id] > epoch)
      return InUse("target volume fence refused by cvm_target: newer epoch");
    fences[volume_id] = epoch;
    return {};
  }
  std::map<uint64_t, uint64_t> fences;  // volume -> attach epoch
  Result<std::vector<TargetDeviceUsage>> TargetDeviceList() override {
    if (!target_loaded) return Unavailable("cvm_target module not loaded");
    std::vector<TargetDeviceUsage> out;
    for (const auto& [id, path] : devices) {
      TargetDeviceUsage u{id, path, 64ull << 22, 0, 0, 0};
      u.objects = objects[id];
      u.used = u.objects << 22;
      out.push_back(u);
    }
    return out;
  }
  std::map<uint32_t, uint64_t> objects;  // device -> object shards held
};

// Three hosts of one device each, a replicated(3) pool and a volume;
// cvmd runs as "h1".
class KernelSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions options;
    options.sync = false;
    auto store = MetadataStore::Open(dir_.Sub("db"), options);
    ASSERT_OK(store);
    store_ = std::move(store).value();
    sync_ = std::make_unique<KernelSync>(*store_, kernel_, "h1");
    api_ = std::make_unique<Api>(*store_);
    api_->SetKernelSync(sync_.get());
    for (int i = 1; i <= 3; ++i) {
      ASSERT_OK(Call("host.add",
                     {{"name", "h" + std::to_string(i)},
                      {"addresses", {"127.0.0.1:700" + std::to_string(i)}}}));
      ASSERT_OK(Call("device.add", {{"host", "h" + std::to_string(i)},
                                    {"path", "/dev/ram" + std::to_string(i)},
                                    {"capacity", 1 << 28}}));
    }
    ASSERT_OK(
        Call("pool.create",
             {{"name", "rep3"}, {"policy", "replicated:3"}, {"pg_num", 64}}));
    ASSERT_OK(Call("volume.create",
                   {{"name", "vol0"}, {"pool", "rep3"}, {"size", 1 << 27}}));
  }

  Result<json> Call(std::string_view op, const json& args) {
    return api_->Call(op, args);
  }
  Volume Vol(std::string_view name) {
    auto v = store_->GetVolume(name);
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : Volume{};
  }

  TempDir dir_;
  FakeKernel kernel_;
  std::unique_ptr<MetadataStore> store_;
  std::unique_ptr<KernelSync> sync_;
  std::unique_ptr<Api> api_;
};

TEST_F(KernelSyncTest, TopologyChangesPushTheServableMap) {
  auto epoch = store_->CurrentEpoch();
  ASSERT_OK(epoch);
  EXPECT_EQ(kernel_.map_epoch, *epoch);
  // Paths: every map device at its host's first address, tcp.
  ASSERT_EQ(kernel_.last_map.paths.size(), 3u);
  EXPECT_EQ(kernel_.last_map.paths[1], (MapPath{2, "127.0.0.1", 7002, "tcp"}));
  auto h1 = store_->GetHost("h1");
  ASSERT_OK(h1);
  EXPECT_EQ(kernel_.last_map.host_id, h1->id);
}

// An EC volume is attached with its stripe unit (4 KiB unless given); a
// replicated one without any.
TEST_F(KernelSyncTest, EcVolumesAttachWithTheirStripeUnit) {
  ASSERT_OK(Call("pool.create",
                 {{"name", "ec21"}, {"policy", "ec:2,1"}, {"pg_num", 64}}));
  ASSERT_OK(Call("volume.create",
                 {{"name", "e0"}, {"pool", "ec21"}, {"size", 1 << 26}}));
  ASSERT_OK(Call("volume.create", {{"name", "e1"},
                                   {"pool", "ec21"},
                                   {"size", 1 << 26},
                                   {"stripe_unit", 65536}}));
  EXPECT_EQ(Vol("e0").stripe_unit, 4096u);
  EXPECT_EQ(Vol("vol0").stripe_unit, Vol("vol0").object_size);
  for (const char* name : {"vol0", "e0", "e1"})
    ASSERT_OK(Call("volume.attach", {{"name", name}}));
  EXPECT_EQ(kernel_.volumes[Vol("vol0").id].stripe_unit, 0u);
  EXPECT_EQ(kernel_.volumes[Vol("e0").id].stripe_unit, 4096u);
  EXPECT_EQ(kernel_.volumes[Vol("e1").id].stripe_unit, 65536u);
}

TEST_F(KernelSyncTest, NothingIsPushedWhenTheModuleIsAbsent) {
  kernel_.initiator_loaded = false;
  const int before = kernel_.map_sets;
  ASSERT_OK(
      Call("host.add", {{"name", "h4"}, {"addresses", {"127.0.0.1:7004"}}}));
  EXPECT_EQ(kernel_.map_sets, before);  // the store change still stands
  ASSERT_OK(store_->GetHost("h4"));
}

TEST_F(KernelSyncTest, AttachRecordsHostAndBumpsTheEpoch) {
  auto r = Call("volume.attach", {{"name", "vol0"}});
  ASSERT_OK(r);
  EXPECT_EQ((*r)["device"], "/dev/cvm0");
  EXPECT_EQ(Vol("vol0").attached_host, "h1");
  EXPECT_EQ(Vol("vol0").attach_epoch, 1u);
  EXPECT_EQ(kernel_.volumes.begin()->second.attach_epoch, 1u);

  auto again = Call("volume.attach", {{"name", "vol0"}});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().message(),
            "volume 'vol0' is attached to /dev/cvm0 already");

  ASSERT_OK(Call("volume.detach", {{"name", "vol0"}}));
  EXPECT_EQ(Vol("vol0").attached_host, "");
  ASSERT_OK(Call("volume.attach", {{"name", "vol0"}}));
  EXPECT_EQ(Vol("vol0").attach_epoch, 2u);
}

TEST_F(KernelSyncTest, AttachFencesOlderAttachmentsOnTheTargets) {
  const uint64_t id = Vol("vol0").id;
  ASSERT_OK(Call("volume.attach", {{"name", "vol0"}}));
  EXPECT_EQ(kernel_.fences[id], 1u);
  ASSERT_OK(Call("volume.detach", {{"name", "vol0"}}));
  ASSERT_OK(Call("volume.attach", {{"name", "vol0"}}));
  EXPECT_EQ(kernel_.fences[id], 2u);

  // A target that knows a newer epoch: the attach fails, nothing attached.
  ASSERT_OK(Call("volume.detach", {{"name", "vol0"}}));
  kernel_.fences[id] = 99;
  auto r = Call("volume.attach", {{"name", "vol0"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("attach epoch 3 not set on the targets"),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(kernel_.volumes.empty());
  EXPECT_EQ(Vol("vol0").attached_host, "");
}

TEST_F(KernelSyncTest, DetachOfAnUnattachedVolumeIsRefused) {
  auto r = Call("volume.detach", {{"name", "vol0"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "volume 'vol0' is not attached");
}

TEST_F(KernelSyncTest, BusyDetachKeepsTheRecordAndNamesForce) {
  ASSERT_OK(Call("volume.attach", {{"name", "vol0"}}));
  kernel_.open = true;
  auto r = Call("volume.detach", {{"name", "vol0"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--force"), std::string::npos);
  EXPECT_EQ(Vol("vol0").attached_host, "h1");
  ASSERT_OK(Call("volume.detach", {{"name", "vol0"}, {"force", true}}));
  EXPECT_TRUE(kernel_.volumes.empty());
}

TEST_F(KernelSyncTest, FailedKernelAttachRollsTheRecordBack) {
  kernel_.next_attach_error =
      InvalidArgument("volume attach refused by cvm: Invalid argument: no");
  auto r = Call("volume.attach", {{"name", "vol0"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("refused by cvm"), std::string::npos);
  EXPECT_EQ(Vol("vol0").attached_host, "");
  EXPECT_EQ(Vol("vol0").attach_epoch, 1u);  // spent, never reused
}

TEST_F(KernelSyncTest, AttachWithoutTheModuleSaysSo) {
  kernel_.initiator_loaded = false;
  auto r = Call("volume.attach", {{"name", "vol0"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "cvm module not loaded");
  EXPECT_EQ(Vol("vol0").attached_host, "");
}

TEST_F(KernelSyncTest, NoVolumeWaitsOnAnUnservableMap) {
  // A store whose cluster has no devices yet: its epochs cannot be served,
  // and a volume is refused there with the reason, not at attach. Nor can
  // the last device under a pool that holds a volume be removed.
  kernel_.map_epoch = 0;
  StoreOptions options;
  options.sync = false;
  auto empty = MetadataStore::Open(dir_.Sub("db2"), options);
  ASSERT_OK(empty);
  ASSERT_OK((*empty)->AddHost({0, "h1", {"127.0.0.1:7001"}}));
  ASSERT_OK((*empty)->CreatePool({0, "p", Policy::Replicated(1)}));
  EXPECT_ERROR((*empty)->CreateVolume({"v", "p", 1 << 20}), Code::kUnavailable,
               "the cluster has no devices yet");
  auto d = (*empty)->AddDevice({"h1", "/dev/ram9", 1 << 30, 1.0, "nvme"});
  ASSERT_OK(d);
  ASSERT_OK((*empty)->CreateVolume({"v", "p", 1 << 20}));
  EXPECT_ERROR((*empty)->RemoveDevice(d->id), Code::kInUse,
               "would leave pool 'p' (1 volume) unplaceable");
  KernelSync sync(**empty, kernel_, "h1");
  EXPECT_OK(sync.Attach("v"));
}

TEST_F(KernelSyncTest, TargetOpsRecordWhatIsServed) {
  ASSERT_OK(Call("target.listen", {{"address", "127.0.0.1:7002"}}));
  EXPECT_EQ(kernel_.listeners, std::vector<std::string>{"127.0.0.1:7002"});
  auto h2 = store_->GetHost("h2");
  ASSERT_OK(h2);
  EXPECT_EQ(h2->listeners, std::vector<std::string>{"127.0.0.1:7002"});
  auto unknown = Call("target.listen", {{"address", "127.0.0.1:7999"}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("no host has address"),
            std::string::npos);

  ASSERT_OK(Call("target.device.add", {{"id", 2}, {"format", true}}));
  EXPECT_EQ(kernel_.devices[2], "/dev/ram2");
  auto d = store_->GetDevice(2);
  ASSERT_OK(d);
  EXPECT_TRUE(d->served);
  // A served device cannot leave the store.
  EXPECT_EQ(Call("device.remove", {{"id", 2}}).status().code(), Code::kInUse);
  ASSERT_OK(Call("target.device.remove", {{"id", 2}}));
  EXPECT_FALSE(store_->GetDevice(2)->served);
  ASSERT_OK(Call("target.unlisten", {{"address", "127.0.0.1:7002"}}));
  EXPECT_TRUE(kernel_.listeners.empty());
}

// Issue 17: cvm.ko gets this host's secret with the map; a device served
// here lets in the hosts whose keys the store records for it, this host
// (the agent: every volume) among them; a rotation switches cvm.ko to a
// new key id and retires the old one everywhere.
TEST_F(KernelSyncTest, HostKeysReachTheKernelAndRotate) {
  auto secrets = HostSecrets::Load(dir_.Sub("host.secret"));
  ASSERT_OK(secrets);
  sync_->SetHostSecrets(secrets->get());
  ASSERT_OK(sync_->PushMap());
  const HostSecret first = (*secrets)->Current();
  // No new map epoch: the secret goes with the next one.
  ASSERT_OK(
      Call("device.add",
           {{"host", "h2"}, {"path", "/dev/ram9"}, {"capacity", 1 << 28}}));
  sync_->PushMapBestEffort("test");
  EXPECT_EQ(kernel_.last_map.host_key,
            std::string(first.secret.begin(), first.secret.end()));
  EXPECT_EQ(kernel_.last_map.key_id, 1u);

  ASSERT_OK(Call("target.device.add", {{"id", 2}, {"format", true}}));
  auto h1 = store_->GetHost("h1");
  ASSERT_OK(h1);
  ASSERT_EQ(kernel_.hosts[2].size(), 1u);
  const TargetHost& t = kernel_.hosts[2][0];
  EXPECT_EQ(t.host_id, h1->id);
  EXPECT_EQ(t.key_id, 1u);
  const wire::Key k = DeviceKey(first, 0, h1->id, 2);
  EXPECT_EQ(t.key, std::string(k.begin(), k.end()));
  EXPECT_TRUE(t.all_volumes);
  // Rows for every device, none for a host that published none.
  auto rows = store_->ListHostKeys();
  ASSERT_OK(rows);
  EXPECT_EQ(rows->size(), 4u);
  for (const HostKeyRow& r : *rows) EXPECT_EQ(r.host_id, h1->id);

  // Another host's row for device 2 is loaded too, not as the agent.
  ASSERT_OK(
      Call("host.add", {{"name", "h4"}, {"addresses", {"127.0.0.1:7004"}}}));
  auto h3 = store_->GetHost("h4");
  ASSERT_OK(h3);
  // h4's cvmd publishes its sealing key and seals its row to this node.
  auto h4_secrets = HostSecrets::Load(dir_.Sub("h4.secret"));
  ASSERT_OK(h4_secrets);
  const wire::Key h4_seal = (*h4_secrets)->SealKey();
  ASSERT_OK(store_->PutSealKey(h3->id, *SealPublicKey(h4_seal)));
  auto node_pub = SealPublicKey((*secrets)->SealKey());
  ASSERT_OK(node_pub);
  // Rows this node must leave out: sealed to another node, and sealed by
  // a key that is not the one h4 published.
  auto stranger = HostSecrets::Load(dir_.Sub("stranger.secret"));
  ASSERT_OK(stranger);
  HostKeyRow elsewhere{2, h3->id, {{5, wire::Key{}}}};
  ASSERT_OK(SealHostKeyRow(elsewhere, h4_seal,
                           *SealPublicKey((*stranger)->SealKey()), 0));
  ASSERT_OK(store_->PutHostKeys(elsewhere));
  sync_->SyncHostKeys();
  EXPECT_EQ(kernel_.hosts[2].size(), 1u);
  HostKeyRow forged{2, h3->id, {{5, wire::Key{}}}};
  ASSERT_OK(SealHostKeyRow(forged, (*stranger)->SealKey(), *node_pub, 0));
  ASSERT_OK(store_->PutHostKeys(forged));
  sync_->SyncHostKeys();
  EXPECT_EQ(kernel_.hosts[2].size(), 1u);
  HostKeyRow sealed{2, h3->id, {{5, wire::Key{}}}};
  ASSERT_OK(SealHostKeyRow(sealed, h4_seal, *node_pub, 0));
  ASSERT_OK(store_->PutHostKeys(sealed));
  sync_->SyncHostKeys();
  ASSERT_EQ(kernel_.hosts[2].size(), 2u);
  // Another node replaces h4's published key with its own and writes a row
  // for h4: the key first seen is kept, the forged row refused. It
  // replaces this node's key too: republished, and nothing sealed to it.
  ASSERT_OK(store_->PutSealKey(h3->id, *SealPublicKey((*stranger)->SealKey())));
  ASSERT_OK(store_->PutSealKey(h1->id, *SealPublicKey((*stranger)->SealKey())));
  ASSERT_OK(store_->PutHostKeys(forged));
  sync_->SyncHostKeys();
  EXPECT_EQ(kernel_.hosts[2].size(), 1u);
  EXPECT_EQ(store_->ListSealKeys()->at(h1->id), *node_pub);
  auto after = store_->ListHostKeys();
  ASSERT_OK(after);
  for (HostKeyRow r : *after) {
    if (r.host_id == h1->id) {
      EXPECT_EQ(r.recipient, *node_pub) << r.device_id;
      EXPECT_EQ(r.sender, *node_pub) << r.device_id;
      EXPECT_EQ(r.sealed_to, h1->id) << r.device_id;
      EXPECT_OK(OpenHostKeyRow(r, (*secrets)->SealKey())) << r.device_id;
    }
  }
  // h4's real row again: loaded.
  ASSERT_OK(store_->PutHostKeys(sealed));
  sync_->SyncHostKeys();
  ASSERT_EQ(kernel_.hosts[2].size(), 2u);
  EXPECT_EQ(kernel_.hosts[2][1].host_id, h3->id);
  EXPECT_FALSE(kernel_.hosts[2][1].all_volumes);
  // ...and dropped with its host.
  ASSERT_OK(Call("host.remove", {{"name", "h4"}}));
  sync_->SyncHostKeys();
  EXPECT_EQ(kernel_.hosts[2].size(), 1u);

  auto rotated = Call("host.rotate_key", json::object());
  ASSERT_OK(rotated);
  EXPECT_EQ((*rotated)["key_id"], 2);
  EXPECT_EQ(kernel_.host_key_id, 2u);
  const HostSecret next = (*secrets)->Current();
  EXPECT_EQ(kernel_.host_secret,
            std::string(next.secret.begin(), next.secret.end()));
  EXPECT_EQ((*secrets)->All().size(), 1u);
  ASSERT_EQ(kernel_.hosts[2].size(), 1u);
  EXPECT_EQ(kernel_.hosts[2][0].key_id, 2u);
}

TEST_F(KernelSyncTest, ReconcileRestoresWhatTheKernelLost) {
  ASSERT_OK(Call("target.listen", {{"address", "127.0.0.1:7001"}}));
  ASSERT_OK(Call("target.device.add", {{"id", 1}, {"format", true}}));
  ASSERT_OK(Call("volume.attach", {{"name", "vol0"}}));
  // The modules reload: the kernel forgets everything.
  kernel_.volumes.clear();
  kernel_.devices.clear();
  kernel_.listeners.clear();
  kernel_.map_epoch = 0;
  json report = sync_->Reconcile();
  EXPECT_TRUE(report["errors"].empty()) << report.dump();
  EXPECT_EQ(kernel_.map_epoch, *store_->CurrentEpoch());
  EXPECT_EQ(kernel_.devices.count(1), 1u);
  EXPECT_EQ(kernel_.listeners, std::vector<std::string>{"127.0.0.1:7001"});
  ASSERT_EQ(kernel_.volumes.size(), 1u);
  EXPECT_EQ(kernel_.volumes.begin()->second.attach_epoch, 2u);  // fenced
  // Run again: nothing to do, nothing changes.
  const int sets = kernel_.map_sets;
  report = sync_->Reconcile();
  EXPECT_TRUE(report["errors"].empty()) << report.dump();
  EXPECT_EQ(kernel_.map_sets, sets);
  EXPECT_EQ(Vol("vol0").attach_epoch, 2u);
}

TEST_F(KernelSyncTest, VolumesOfOtherHostsAreNotReattachedHere) {
  ASSERT_OK(store_->AttachVolume("vol0", "h2"));
  json report = sync_->Reconcile();
  EXPECT_TRUE(kernel_.volumes.empty());
  auto r = Call("volume.attach", {{"name", "vol0"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("attached to host 'h2'"),
            std::string::npos);
  EXPECT_EQ(Call("volume.delete", {{"name", "vol0"}}).status().code(),
            Code::kInUse);
}

// With RocksDB no other cvmd follows the store: attaching "on h2" would be
// recorded and never brought up.
TEST_F(KernelSyncTest, AttachOnAnotherHostNeedsTheClusterStore) {
  EXPECT_ERROR(Call("volume.attach", {{"name", "vol0"}, {"host", "h2"}}),
               Code::kInvalidArgument, "needs the cluster store");
  EXPECT_TRUE(Vol("vol0").attached_host.empty());
}

TEST_F(KernelSyncTest, ArgumentErrors) {
  EXPECT_EQ(Call("volume.attach", json::object()).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(Call("volume.attach", {{"name", "nope"}}).status().code(),
            Code::kNotFound);
  EXPECT_EQ(
      Call("target.device.add", {{"id", 1}, {"force", true}}).status().code(),
      Code::kInvalidArgument);
  for (const char* bad : {"127.0.0.1", "host:7001", "127.0.0.1:0",
                          "127.0.0.1:70000", "::1:7001"}) {
    EXPECT_EQ(Call("target.listen", {{"address", bad}}).status().code(),
              Code::kInvalidArgument)
        << bad;
  }
}

TEST_F(KernelSyncTest, DeviceListShowsWhatTheLocalTargetReports) {
  ASSERT_OK(Call("target.device.add", {{"id", 2}}));
  kernel_.objects[2] = 3;
  auto listed = Call("device.list", json::object());
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_TRUE((*listed)[0]["usage"].is_null()) << (*listed)[0].dump();
  const json& u = (*listed)[1]["usage"];
  EXPECT_EQ(u["used"], 3ull << 22) << u.dump();
  EXPECT_EQ(u["objects"], 3);
  EXPECT_EQ(u["capacity"], 64ull << 22);
  auto one = Call("device.get", {{"id", 2}});
  ASSERT_OK(one);
  EXPECT_EQ((*one)["usage"]["used"], 3ull << 22);

  kernel_.objects[2] = 1;  // whole objects discarded: the space comes back
  listed = Call("device.list", json::object());
  ASSERT_OK(listed);
  EXPECT_EQ((*listed)[1]["usage"]["used"], 1ull << 22);

  kernel_.target_loaded = false;  // unknown, never an error
  listed = Call("device.list", json::object());
  ASSERT_OK(listed);
  EXPECT_TRUE((*listed)[1]["usage"].is_null());
}

TEST_F(KernelSyncTest, PathEventsAreRecordedAndShownPerDevice) {
  const uint64_t epoch = *store_->CurrentEpoch();
  const int map_sets = kernel_.map_sets;
  auto listed = Call("device.list", json::object());
  ASSERT_OK(listed);
  for (const json& d : *listed) {
    EXPECT_TRUE(d["path_state"].is_null()) << d.dump();  // never reported
    EXPECT_EQ(d["path"], "/dev/ram" + std::to_string(d["id"].get<int>()));
  }

  ASSERT_OK(RecordPathEvent(*store_, "h1",
                            {PathEventKind::kDown, 2, "127.0.0.1:7002", 7}));
  listed = Call("device.list", json::object());
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 3u);
  const json& d2 = (*listed)[1];
  EXPECT_EQ(d2["id"], 2);
  EXPECT_EQ(d2["path"], "/dev/ram2");  // the block device path is untouched
  EXPECT_EQ(d2["path_state"]["state"], "down");
  EXPECT_EQ(d2["path_state"]["stale_objects"], 7);
  EXPECT_EQ(d2["path_state"]["address"], "127.0.0.1:7002");
  EXPECT_TRUE((*listed)[0]["path_state"].is_null());
  auto got = Call("device.get", {{"id", 2}});
  ASSERT_OK(got);
  EXPECT_EQ((*got)["path_state"], d2["path_state"]);

  ASSERT_OK(RecordPathEvent(*store_, "h1",
                            {PathEventKind::kUp, 2, "127.0.0.1:7002", 7}));
  auto status = Call("status", json::object());
  ASSERT_OK(status);
  ASSERT_EQ((*status)["path_states"].size(), 1u);
  EXPECT_EQ((*status)["path_states"][0]["device_id"], 2);
  EXPECT_EQ((*status)["path_states"][0]["state"], "up");
  EXPECT_EQ(*store_->CurrentEpoch(), epoch) << "path events cut no epoch";
  EXPECT_EQ(kernel_.map_sets, map_sets);  // and push nothing

  // An event for a device the store does not know is not recorded.
  EXPECT_EQ(
      RecordPathEvent(*store_, "h1", {PathEventKind::kUp, 99, "a:1", 0}).code(),
      Code::kNotFound);
  EXPECT_EQ(store_->ListPathStates()->size(), 1u);
}

// The cluster tests' topology, made through `api`: hosts h1..h3 with a
// device each (ids 1..3), client hosts without devices, pool rep3
// (replicated(3), 64 PGs) and 128 MiB volumes in it.
Status DescribeCluster(Api& api, const std::vector<std::string>& clients,
                       const std::vector<std::string>& volumes) {
  for (int i = 1; i <= 3; ++i) {
    const std::string h = "h" + std::to_string(i);
    CVM_RETURN_IF_ERROR(
        api.Call("host.add",
                 {{"name", h},
                  {"addresses", {"127.0.0.1:700" + std::to_string(i)}}})
            .status());
    CVM_RETURN_IF_ERROR(
        api.Call("device.add",
                 {{"host", h}, {"path", "/dev/ram0"}, {"capacity", 1 << 28}})
            .status());
  }
  int n = 0;
  for (const std::string& c : clients) {
    CVM_RETURN_IF_ERROR(
        api.Call("host.add",
                 {{"name", c},
                  {"addresses", {"10.0.0." + std::to_string(++n) + ":1"}}})
            .status());
  }
  CVM_RETURN_IF_ERROR(
      api.Call("pool.create",
               {{"name", "rep3"}, {"policy", "replicated:3"}, {"pg_num", 64}})
          .status());
  for (const std::string& v : volumes) {
    CVM_RETURN_IF_ERROR(
        api.Call("volume.create",
                 {{"name", v}, {"pool", "rep3"}, {"size", 1 << 27}})
            .status());
  }
  return {};
}

// Issue 15, any-node administration: two cvmds on one etcd, storage node
// h1 and client c1, each with its own kernel. Changes made through h1 are
// applied by c1 as it follows the store: the map, an attachment made "on
// c1" from h1, a detach (once the device is closed); c1 serves none of
// h1's target devices. Polls every 20 ms; about a second in all.
TEST(KernelSyncClusterTest, EachNodeAppliesItsOwnPartOfEveryChange) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string uri = testing::UniqueEtcdUri();
  auto store_h1 = MetadataStore::Open(uri);
  auto store_c1 = MetadataStore::Open(uri);
  ASSERT_OK(store_h1);
  ASSERT_OK(store_c1);
  FakeKernel kernel_h1, kernel_c1;
  KernelSync sync_h1(**store_h1, kernel_h1, "h1");
  KernelSync sync_c1(**store_c1, kernel_c1, "c1");
  sync_h1.SetCluster(true);
  sync_c1.SetCluster(true);
  Api api(**store_h1);
  api.SetKernelSync(&sync_h1);
  StoreFollower follower(
      **store_c1, [&] { static_cast<void>(sync_c1.Reconcile()); },
      std::chrono::milliseconds(20), std::chrono::milliseconds(200));
  follower.Start();
  const auto wait_for = [](auto done) {
    const auto start = std::chrono::steady_clock::now();
    while (!done() && std::chrono::steady_clock::now() - start <
                          std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
  };
  ASSERT_OK(DescribeCluster(api, {"c1"}, {"vol0"}));
  ASSERT_OK(api.Call("target.device.add", {{"id", 1}, {"format", true}}));
  const uint64_t epoch = *(*store_h1)->CurrentEpoch();
  wait_for([&] { return kernel_c1.map_epoch == epoch; });
  EXPECT_EQ(kernel_c1.map_epoch, epoch);

  // Attached "on c1" from h1: recorded, and c1's cvmd attaches it.
  auto attached = api.Call("volume.attach", {{"name", "vol0"}, {"host", "c1"}});
  ASSERT_OK(attached);
  EXPECT_TRUE((*attached)["device"].is_null());
  const uint64_t id = (*store_h1)->GetVolume("vol0")->id;
  wait_for([&] { return kernel_c1.volumes.count(id) == 1; });
  EXPECT_EQ(kernel_c1.volumes.count(id), 1u);
  EXPECT_TRUE(kernel_h1.volumes.empty());
  EXPECT_EQ((*store_h1)->GetVolume("vol0")->attached_host, "c1");

  // A topology change made on h1 reaches c1's kernel.
  ASSERT_OK(
      api.Call("device.add",
               {{"host", "h2"}, {"path", "/dev/ram1"}, {"capacity", 1 << 28}}));
  const uint64_t next = *(*store_h1)->CurrentEpoch();
  const auto took = wait_for([&] { return kernel_c1.map_epoch == next; });
  EXPECT_EQ(kernel_c1.map_epoch, next);
  std::cout << "map epoch " << next << " on the other node after "
            << took.count() << " ms (20 ms polls)\n";

  // Detached from h1 while c1 has it open: c1 keeps it until it is closed.
  kernel_c1.open = true;
  ASSERT_OK(api.Call("volume.detach", {{"name", "vol0"}}));
  EXPECT_TRUE((*store_h1)->GetVolume("vol0")->attached_host.empty());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(kernel_c1.volumes.count(id), 1u);  // open: not pulled away
  kernel_c1.open = false;
  wait_for([&] { return kernel_c1.volumes.count(id) == 0; });
  EXPECT_EQ(kernel_c1.volumes.count(id), 0u);

  // Only h1 serves h1's device; c1 serves nothing.
  EXPECT_EQ(kernel_h1.devices.size(), 1u);
  EXPECT_TRUE(kernel_c1.devices.empty());
  follower.Stop();
  EXPECT_GT(follower.rounds(), 3u);
}

// Issue 15, migration and fencing across nodes: storage nodes h1 and h2,
// initiators c1 and c2, four cvmds on one etcd, each following the store
// (20 ms polls) with its own kernel; the API runs on h1. No kernel device
// is attached before every storage node that is up recorded its attach
// epoch fenced (on the old code c1 attached while h2 had fenced nothing);
// a move is refused while the device is open on the old host; a move
// fences both targets with a new epoch before c2 serves; --force moves it
// off a host whose cvmd is down, which lets go of it once back; a move the
// old host never answers times out and is withdrawn. About 2 s.
TEST(KernelSyncClusterTest, MigrationFencesEveryTargetFirst) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string uri = testing::UniqueEtcdUri();
  const std::vector<std::string> names = {"h1", "h2", "c1", "c2"};
  std::map<std::string, std::unique_ptr<MetadataStore>> stores;
  std::map<std::string, FakeKernel> kernels;
  std::map<std::string, std::unique_ptr<KernelSync>> syncs;
  std::map<std::string, std::unique_ptr<StoreFollower>> followers;
  const std::set<std::string> live(names.begin(), names.end());
  for (const std::string& n : names) {
    auto store = MetadataStore::Open(uri);
    ASSERT_OK(store);
    stores[n] = std::move(*store);
    kernels[n].initiator_loaded = n[0] == 'c';
    kernels[n].target_loaded = n[0] == 'h';
    syncs[n] = std::make_unique<KernelSync>(*stores[n], kernels[n], n);
    syncs[n]->SetCluster(true);
    syncs[n]->SetLiveHosts(
        [&live]() -> Result<std::set<std::string>> { return live; });
  }
  const auto follow = [&](const std::string& n) {
    followers[n] = std::make_unique<StoreFollower>(
        *stores[n], [&, n] { static_cast<void>(syncs[n]->Reconcile()); },
        std::chrono::milliseconds(20), std::chrono::milliseconds(200));
    followers[n]->Start();
  };
  const auto wait_for = [](auto done) {
    const auto start = std::chrono::steady_clock::now();
    while (!done() && std::chrono::steady_clock::now() - start <
                          std::chrono::seconds(10)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return done();
  };
  Api api(*stores["h1"]);
  api.SetKernelSync(syncs["h1"].get());
  ASSERT_OK(DescribeCluster(api, {"c1", "c2"}, {"vol0"}));
  // h1 and h2 serve their devices (h3's is never served: not waited for).
  ASSERT_OK(api.Call("target.device.add", {{"id", 1}, {"format", true}}));
  ASSERT_OK((*stores["h2"]).SetDeviceServed(2, true).status());
  const uint64_t id = stores["h1"]->GetVolume("vol0")->id;
  // What the store said of the fences when a kernel attached the volume.
  std::map<std::string, std::map<uint64_t, uint64_t>> fenced_at_attach;
  for (const char* c : {"c1", "c2"}) {
    kernels[c].on_attach = [&, c](const KernelVolume& k) {
      auto v = stores[c]->GetVolume("vol0");
      if (v.ok()) fenced_at_attach[c] = v->fenced;
      EXPECT_EQ(k.attach_epoch, v.ok() ? v->attach_epoch : 0);
    };
  }
  const auto fenced_everywhere = [&](const std::string& c, uint64_t epoch) {
    const auto& f = fenced_at_attach[c];
    return f.count(1) && f.at(1) >= epoch && f.count(2) && f.at(2) >= epoch;
  };
  for (const std::string& n : {"h1", "c1", "c2"}) follow(n);

  // h2's cvmd is up but lags: c1 waits for it before attaching.
  ASSERT_OK(api.Call("volume.attach", {{"name", "vol0"}, {"host", "c1"}}));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(kernels["c1"].volumes.count(id), 0u) << "attached unfenced";
  follow("h2");
  ASSERT_TRUE(wait_for([&] { return kernels["c1"].volumes.count(id) == 1; }));
  uint64_t epoch = kernels["c1"].volumes[id].attach_epoch;
  EXPECT_TRUE(fenced_everywhere("c1", epoch));
  EXPECT_EQ(kernels["h1"].fences[id], epoch);
  EXPECT_EQ(kernels["h2"].fences[id], epoch);

  // Open on c1: the move is refused with the reason; nothing changes.
  kernels["c1"].open = true;
  EXPECT_ERROR(api.Call("volume.migrate", {{"name", "vol0"}, {"to", "c2"}}),
               Code::kInUse, "is open on host 'c1'");
  Volume v = *stores["h1"]->GetVolume("vol0");
  EXPECT_EQ(v.attached_host, "c1");
  EXPECT_EQ(v.attach_epoch, epoch);
  EXPECT_TRUE(v.migrate_to.empty());
  EXPECT_EQ(kernels["c1"].volumes.count(id), 1u);

  // Closed: c1 lets go, both targets fence the new epoch, c2 serves.
  kernels["c1"].open = false;
  auto moved = api.Call("volume.migrate", {{"name", "vol0"}, {"to", "c2"}});
  ASSERT_OK(moved);
  EXPECT_EQ((*moved)["from"], "c1");
  EXPECT_EQ((*moved)["attached_host"], "c2");
  std::cout << "idle volume moved c1 -> c2 in " << (*moved)["total_ms"]
            << " ms (20 ms polls)\n";
  EXPECT_EQ(kernels["c1"].volumes.count(id), 0u);
  ASSERT_EQ(kernels["c2"].volumes.count(id), 1u);
  const uint64_t moved_epoch = kernels["c2"].volumes[id].attach_epoch;
  EXPECT_GT(moved_epoch, epoch);
  EXPECT_TRUE(fenced_everywhere("c2", moved_epoch));
  EXPECT_EQ(kernels["h1"].fences[id], moved_epoch);

  // c2's cvmd stops with the device open: --force moves it to c1 anyway,
  // the targets refuse c2's epoch, and c2 lets go once back and closed.
  followers["c2"]->Stop();
  kernels["c2"].open = true;
  moved = api.Call("volume.migrate",
                   {{"name", "vol0"}, {"to", "c1"}, {"force", true}});
  ASSERT_OK(moved);
  ASSERT_EQ(kernels["c1"].volumes.count(id), 1u);
  epoch = kernels["c1"].volumes[id].attach_epoch;
  EXPECT_GT(epoch, moved_epoch);
  EXPECT_TRUE(fenced_everywhere("c1", epoch));
  EXPECT_EQ(kernels["c2"].volumes.count(id), 1u);  // cut off, still there
  follow("c2");
  // Moved back to c2 while its old, fenced device is still open there: c2
  // attaches afresh once that one is closed (the old code kept the fenced
  // device as if current, and the move timed out).
  syncs["h1"]->SetClusterTimeout(std::chrono::seconds(5));
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kernels["c2"].open = false;
  });
  moved = api.Call("volume.migrate",
                   {{"name", "vol0"}, {"to", "c2"}, {"force", true}});
  closer.join();
  ASSERT_OK(moved);
  ASSERT_TRUE(wait_for([&] { return kernels["c2"].volumes.count(id) == 1; }));
  EXPECT_EQ(kernels["c2"].volumes[id].attach_epoch,
            (*moved)["attach_epoch"].get<uint64_t>());
  EXPECT_GT(kernels["c2"].volumes[id].attach_epoch, epoch);
  // And to c1 again, c1 having let go of its device meanwhile.
  ASSERT_OK(api.Call("volume.migrate", {{"name", "vol0"}, {"to", "c1"}}));
  EXPECT_EQ(kernels["c2"].volumes.count(id), 0u);

  // A move the old host never answers times out and is withdrawn.
  followers["c1"]->Stop();
  syncs["h1"]->SetClusterTimeout(std::chrono::milliseconds(300));
  EXPECT_ERROR(api.Call("volume.migrate", {{"name", "vol0"}, {"to", "c2"}}),
               Code::kUnavailable, "did not hand volume 'vol0' over");
  v = *stores["h1"]->GetVolume("vol0");
  EXPECT_EQ(v.attached_host, "c1");
  EXPECT_TRUE(v.migrate_to.empty());
  // Bad moves are refused with the reason.
  EXPECT_ERROR(api.Call("volume.migrate", {{"name", "vol0"}, {"to", "c1"}}),
               Code::kInvalidArgument, "attached to host 'c1' already");
  EXPECT_ERROR(api.Call("volume.migrate", {{"name", "vol0"}, {"to", "zz"}}),
               Code::kNotFound, "");
  EXPECT_ERROR(api.Call("volume.migrate", {{"name", "vol0"}}),
               Code::kInvalidArgument, "to");
  for (auto& [n, f] : followers) f->Stop();
}

// Review of issue 15: two storage nodes that are also initiators attach a
// volume each, at the same time, through their own cvmd. Each attach
// waits for the other node to fence; the old code held the node's lock
// while waiting, so neither follower could fence the other's attach and
// both failed after the timeout. About 1 s.
TEST(KernelSyncClusterTest, TwoNodesAttachAtOnceWithoutWaitingOnEachOther) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string uri = testing::UniqueEtcdUri();
  std::map<std::string, std::unique_ptr<MetadataStore>> stores;
  std::map<std::string, FakeKernel> kernels;
  std::map<std::string, std::unique_ptr<KernelSync>> syncs;
  std::map<std::string, std::unique_ptr<Api>> apis;
  std::map<std::string, std::unique_ptr<StoreFollower>> followers;
  const std::set<std::string> live = {"h1", "h2"};
  for (const std::string n : {"h1", "h2"}) {
    auto store = MetadataStore::Open(uri);
    ASSERT_OK(store);
    stores[n] = std::move(*store);
    syncs[n] = std::make_unique<KernelSync>(*stores[n], kernels[n], n);
    syncs[n]->SetCluster(true);
    syncs[n]->SetClusterTimeout(std::chrono::seconds(5));
    syncs[n]->SetLiveHosts(
        [&live]() -> Result<std::set<std::string>> { return live; });
    apis[n] = std::make_unique<Api>(*stores[n]);
    apis[n]->SetKernelSync(syncs[n].get());
  }
  Api& api = *apis["h1"];
  ASSERT_OK(DescribeCluster(api, {}, {"v1", "v2"}));
  ASSERT_OK(apis["h1"]->Call("target.device.add", {{"id", 1}}));
  ASSERT_OK(apis["h2"]->Call("target.device.add", {{"id", 2}}));
  for (const std::string n : {"h1", "h2"}) {
    followers[n] = std::make_unique<StoreFollower>(
        *stores[n], [&, n] { static_cast<void>(syncs[n]->Reconcile()); },
        std::chrono::milliseconds(20), std::chrono::milliseconds(200));
    followers[n]->Start();
  }
  const auto start = std::chrono::steady_clock::now();
  Result<json> r2 = Internal("unset");
  std::thread other([&] {
    r2 = apis["h2"]->Call("volume.attach", {{"name", "v2"}});
  });
  Result<json> r1 = apis["h1"]->Call("volume.attach", {{"name", "v1"}});
  other.join();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  ASSERT_OK(r1);
  ASSERT_OK(r2);
  EXPECT_EQ((*r1)["device"], "/dev/cvm0");
  EXPECT_LT(took.count(), 4000);
  std::cout << "two attaches at once: " << took.count() << " ms\n";
  for (auto& [n, f] : followers) f->Stop();
  for (const std::string n : {"h1", "h2"}) {
    const Volume v = *stores[n]->GetVolume(n == "h1" ? "v1" : "v2");
    EXPECT_GE(v.fenced.at(1), v.attach_epoch);
    EXPECT_GE(v.fenced.at(2), v.attach_epoch);
  }
}

// Issue 15: a change names the epoch that carries it, and `--wait` (the
// map.wait op) returns once every node whose cvm.ko holds a map has it:
// each cvmd publishes its kernel's epoch in its presence key. A node that
// lags is named when the wait times out. About 1 s.
TEST(KernelSyncClusterTest, ChangesNameTheirEpochAndWaitForEveryNode) {
  ASSERT_NE(testing::EtcdServer::Get().uri(), "")
      << testing::EtcdServer::Get().error();
  const std::string uri = testing::UniqueEtcdUri();
  auto etcd = ParseEtcdUri(uri);
  ASSERT_OK(etcd);
  std::map<std::string, std::unique_ptr<MetadataStore>> stores;
  std::map<std::string, FakeKernel> kernels;
  std::map<std::string, std::unique_ptr<KernelSync>> syncs;
  std::map<std::string, std::unique_ptr<EtcdPresence>> presences;
  for (const std::string n : {"h1", "c1"}) {
    auto store = MetadataStore::Open(uri);
    ASSERT_OK(store);
    stores[n] = std::move(*store);
    kernels[n].initiator_loaded = n == "c1";
    presences[n] = std::make_unique<EtcdPresence>(*etcd, n, PresenceOptions{});
    ASSERT_OK(presences[n]->Start());
    syncs[n] = std::make_unique<KernelSync>(*stores[n], kernels[n], n);
    syncs[n]->SetCluster(true);
    syncs[n]->SetMapInstalled([p = presences[n].get()](uint64_t e) {
      return p->Publish({{"map_epoch", e}}).ok();
    });
  }
  StoreFollower follower(
      *stores["c1"], [&] { static_cast<void>(syncs["c1"]->Reconcile()); },
      std::chrono::milliseconds(20), std::chrono::milliseconds(200));
  follower.Start();
  Api api(*stores["h1"]);
  api.SetKernelSync(syncs["h1"].get());
  api.SetPresence(presences["h1"].get());
  auto added =
      api.Call("host.add", {{"name", "h1"}, {"addresses", {"127.0.0.1:7001"}}});
  ASSERT_OK(added);
  const uint64_t first = (*added)["map_epoch"].get<uint64_t>();
  EXPECT_EQ(first, *stores["h1"]->CurrentEpoch());
  auto device =
      api.Call("device.add",
               {{"host", "h1"}, {"path", "/dev/ram0"}, {"capacity", 1 << 28}});
  ASSERT_OK(device);
  const uint64_t epoch = (*device)["map_epoch"].get<uint64_t>();
  EXPECT_GT(epoch, first);
  auto waited = api.Call("map.wait", {{"epoch", epoch}});
  ASSERT_OK(waited);
  EXPECT_GE((*waited)["nodes"]["c1"].get<uint64_t>(), epoch) << waited->dump();
  EXPECT_FALSE((*waited)["nodes"].contains("h1"));  // no cvm.ko there
  EXPECT_GE(kernels["c1"].map_epoch, epoch);
  std::cout << "epoch " << epoch << " on every node after " << (*waited)["ms"]
            << " ms (20 ms polls)\n";

  follower.Stop();  // c1 lags from now on
  auto next =
      api.Call("device.add",
               {{"host", "h1"}, {"path", "/dev/ram1"}, {"capacity", 1 << 28}});
  ASSERT_OK(next);
  EXPECT_ERROR(api.Call("map.wait",
                        {{"epoch", (*next)["map_epoch"]}, {"timeout_ms", 200}}),
               Code::kUnavailable, "c1 (epoch " + std::to_string(epoch) + ")");
  for (auto& [n, p] : presences) p->Stop();
}

TEST(KernelSyncWithoutKernelTest, OpsSayThereIsNoKernelAccess) {
  TempDir dir;
  StoreOptions options;
  options.sync = false;
  auto store = MetadataStore::Open(dir.Sub("db"), options);
  ASSERT_OK(store);
  Api api(**store);
  auto r = api.Call("volume.attach", {{"name", "v"}});
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST(MapPathsTest, FirstAddressOfTheDevicesHost) {
  Topology t;
  t.hosts = {{1, "a", {"10.0.0.1:7800", "10.0.0.9:7800"}},
             {2, "b", {"[fe80::1]:7801"}, Transport::kRdma}};
  Device d1, d2;
  d1.id = 1, d1.host_id = 1, d1.path = "/dev/x", d1.capacity = 1 << 30;
  d2.id = 2, d2.host_id = 2, d2.path = "/dev/y", d2.capacity = 1 << 30;
  t.devices = {d1, d2};
  t.pools = {{1, "p", Policy::Replicated(1)}};
  SealedMap sealed = SealMap(1, t, {});
  ASSERT_TRUE(sealed.problem.empty()) << sealed.problem;
  auto paths = BuildMapPaths(sealed.blob, t.hosts, t.devices);
  ASSERT_OK(paths);
  ASSERT_EQ(paths->size(), 2u);
  EXPECT_EQ((*paths)[0], (MapPath{1, "10.0.0.1", 7800, "tcp"}));
  EXPECT_EQ((*paths)[1], (MapPath{2, "fe80::1", 7801, "rdma"}));

  t.hosts[0].addresses = {"storage-a:7800"};
  auto bad = BuildMapPaths(sealed.blob, t.hosts, t.devices);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a numeric IP"), std::string::npos);
}

}  // namespace
}  // namespace cvm
