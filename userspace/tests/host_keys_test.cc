// Host authentication keys: the secret file, the store's rows, and the
// scheme's vectors (computed independently with Python's hmac module; the
// kernel's auth.c computes the same, or no VM test could connect).
#include "host_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "test_util.h"

namespace cvm {
namespace {

using testing::TempDir;

wire::Key Bytes(std::string_view hex) {
  wire::Key k{};
  for (size_t i = 0; i < k.size(); i++)
    k[i] = std::stoul(std::string(hex.substr(2 * i, 2)), nullptr, 16);
  return k;
}

mode_t Mode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

TEST(HostKeysTest, TheSchemeMatchesAnIndependentComputation) {
  wire::Key secret{};
  for (size_t i = 0; i < secret.size(); i++) secret[i] = i + 1;
  const wire::Key key = wire::DeriveKey(secret, 0, 1, 1);
  EXPECT_EQ(key, Bytes("2df69719027d02609c13acf6bf05ee97"
                       "d80ffc2c99175783abb6a6152c67d749"));
  wire::Hello ids;
  ids.host_id = 1;
  ids.device_id = 1;
  wire::Key nh, nt;
  nh.fill(0xaa);
  nt.fill(0x55);
  EXPECT_EQ(wire::Proof(key, "cvm-target", ids, nh, nt),
            Bytes("a2c42f04673bfcf4a86d421090de8d8c"
                  "716c2600f6261c927e32ba33b4ca40f4"));
  EXPECT_EQ(wire::Proof(key, "cvm-host", ids, nh, nt),
            Bytes("07d5c5cdd58e8b3a54ed7b8d6667fe0a"
                  "e81041037e23dd7fc384857a24746c59"));
  // Each input changes the key.
  EXPECT_NE(wire::DeriveKey(secret, 1, 1, 1), key);
  EXPECT_NE(wire::DeriveKey(secret, 0, 2, 1), key);
  EXPECT_NE(wire::DeriveKey(secret, 0, 1, 2), key);
}

TEST(HostKeysTest, TheSecretFileIsMadeOwnerOnlyAndKept) {
  TempDir dir;
  const std::string path = dir.Sub("sub/host.secret");
  auto a = HostSecrets::Load(path);
  ASSERT_OK(a);
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_EQ(Mode(dir.Sub("sub")), 0700u);
  const HostSecret first = (*a)->Current();
  EXPECT_EQ(first.key_id, 1u);
  auto b = HostSecrets::Load(path);
  ASSERT_OK(b);
  EXPECT_EQ((*b)->Current(), first);
  // A tool reading cvmd's file never makes one.
  EXPECT_FALSE(HostSecrets::Load(dir.Sub("none"), /*create=*/false).ok());
  EXPECT_FALSE(std::ifstream(dir.Sub("none")).good());
}

// The next secret is recorded but not used until the rotation finishes;
// an unfinished rotation (cvmd restarted, a target not reached) resumes
// with the same next secret.
TEST(HostKeysTest, RotationUsesTheNextSecretOnlyOnceFinished) {
  TempDir dir;
  const std::string path = dir.Sub("host.secret");
  auto hs = HostSecrets::Load(path);
  ASSERT_OK(hs);
  const HostSecret first = (*hs)->Current();
  auto next = (*hs)->Rotate();
  ASSERT_OK(next);
  EXPECT_EQ(next->key_id, 2u);
  EXPECT_NE(next->secret, first.secret);
  EXPECT_EQ((*hs)->Current(), first);
  auto again = HostSecrets::Load(path);
  ASSERT_OK(again);
  ASSERT_EQ((*again)->All().size(), 2u);
  EXPECT_EQ((*again)->Current(), first);
  EXPECT_EQ((*again)->All()[1], *next);
  auto resumed = (*again)->Rotate();
  ASSERT_OK(resumed);
  EXPECT_EQ(*resumed, *next);
  ASSERT_OK((*hs)->Finish());
  again = HostSecrets::Load(path);
  ASSERT_OK(again);
  ASSERT_EQ((*again)->All().size(), 1u);
  EXPECT_EQ((*again)->Current(), *next);
}

TEST(HostKeysTest, AnOpenOrMalformedFileIsRefused) {
  TempDir dir;
  const std::string path = dir.Sub("host.secret");
  ASSERT_OK(HostSecrets::Load(path));
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto open = HostSecrets::Load(path);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.status().message().find("mode 0600"), std::string::npos)
      << open.status().message();
  for (const std::string text :
       {"not json", "{\"secrets\": []}",
        "{\"secrets\": [{\"key_id\": 1, \"secret\": \"abcd\"}]}"}) {
    const std::string bad = dir.Sub("bad.secret");
    ::unlink(bad.c_str());
    std::ofstream(bad) << text;
    ASSERT_EQ(::chmod(bad.c_str(), 0600), 0);
    auto r = HostSecrets::Load(bad);
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), Code::kCorruption) << text;
  }
}

// Rows are sealed from the host's sealing key to the serving node's: the
// two open them, a third node cannot, and a row altered or moved to
// another device or host does not open.
TEST(HostKeysTest, StoreRowsAreSealedToTheServingNode) {
  TempDir dir;
  auto host = HostSecrets::Load(dir.Sub("host.secret"));
  auto target = HostSecrets::Load(dir.Sub("target.secret"));
  auto other = HostSecrets::Load(dir.Sub("other.secret"));
  ASSERT_OK(host);
  ASSERT_OK(target);
  ASSERT_OK(other);
  const wire::Key hk = (*host)->SealKey(), tk = (*target)->SealKey(),
                  ok = (*other)->SealKey();
  EXPECT_NE(hk, wire::Key{});
  EXPECT_NE(hk, tk);
  // The sealing key is kept in the file.
  EXPECT_EQ((*HostSecrets::Load(dir.Sub("host.secret")))->SealKey(), hk);
  auto target_pub = SealPublicKey(tk);
  ASSERT_OK(target_pub);

  const HostKeyRow::Key k2{2, Bytes(std::string(64, 'a'))};
  HostKeyRow row{7, 3, {k2, {1, {}}}};
  ASSERT_OK(SealHostKeyRow(row, hk, *target_pub, 5));
  const std::string stored = EncodeHostKeyRow(row);
  // Neither key is in the stored text, raw or hex.
  EXPECT_EQ(stored.find(std::string(64, 'a')), std::string::npos);
  auto back = DecodeHostKeyRow(stored);
  ASSERT_OK(back);
  EXPECT_TRUE(back->keys.empty());
  EXPECT_EQ(back->sealed_to, 5u);
  HostKeyRow by_target = *back, by_host = *back, by_other = *back;
  ASSERT_OK(OpenHostKeyRow(by_target, tk));
  EXPECT_EQ(by_target.keys, row.keys);
  ASSERT_OK(OpenHostKeyRow(by_host, hk));
  EXPECT_EQ(by_host.keys, row.keys);
  EXPECT_EQ(OpenHostKeyRow(by_other, ok).code(), Code::kPermissionDenied);
  EXPECT_TRUE(by_other.keys.empty());
  // Moved to another device, host or recipient id, or altered: refused.
  for (int what = 0; what < 4; ++what) {
    HostKeyRow moved = *back;
    if (what == 0) moved.device_id = 8;
    if (what == 1) moved.host_id = 4;
    if (what == 2) moved.sealed_to = 6;
    if (what == 3) moved.box[moved.box.size() / 2] ^= 1;
    EXPECT_EQ(OpenHostKeyRow(moved, tk).code(), Code::kPermissionDenied)
        << what;
  }
  EXPECT_FALSE(DecodeHostKeyRow("{}").ok());
  // A row from before sealing (plain keys) is refused.
  EXPECT_FALSE(DecodeHostKeyRow(
                   R"({"device_id":1,"host_id":1,"keys":[{"key_id":1,"key":")" +
                   std::string(64, 'a') + R"("}]})")
                   .ok());
  std::string bad = stored;
  bad.replace(bad.find("\"box\":\"") + 7, 2, "zz");
  EXPECT_FALSE(DecodeHostKeyRow(bad).ok());
}

}  // namespace
}  // namespace cvm
