// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// kernel/common/hash: MurmurHash3-compatible word hash and CRC32C.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <vector>

#include "hash.h"

namespace {

// MurmurHash3_x86_32 over bytes, written from the reference algorithm, to
// check the word hash against inputs longer than one word.
uint32_t Murmur3Bytes(const uint8_t *p, size_t len, uint32_t seed) {
  uint32_t h = seed;
  for (size_t i = 0; i + 4 <= len; i += 4) {
    uint32_t k;
    std::memcpy(&k, p + i, 4);
    k *= 0xcc9e2d51u;
    k = std::rotl(k, 15);
    k *= 0x1b873593u;
    h ^= k;
    h = std::rotl(h, 13) * 5 + 0xe6546b64u;
  }
  h ^= len;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  return h ^ (h >> 16);
}

TEST(HashTest, PublishedMurmur3Vectors) {
  EXPECT_EQ(cvm_hash32_1(0, 0), 0x2362f9deu);
  EXPECT_EQ(cvm_hash32_1(0, 0x87654321), 0xf55b516bu);
  EXPECT_EQ(cvm_hash32_1(0x5082edee, 0x87654321), 0x2362f9deu);
  EXPECT_EQ(cvm_hash32_1(0x9747b28c, 0x64636261), 0xf0478627u);  // "abcd"
  EXPECT_EQ(cvm_hash32_1(0x9747b28c, 0x61616161), 0x5a97808au);  // "aaaa"
}

TEST(HashTest, MultiWordMatchesByteWiseMurmur3) {
  const uint32_t w[4] = {0xdeadbeef, 1, 0x80000000, 42};
  uint8_t bytes[16];
  std::memcpy(bytes, w, sizeof(w));  // little-endian host
  EXPECT_EQ(cvm_hash32_2(9, w[0], w[1]), Murmur3Bytes(bytes, 8, 9));
  EXPECT_EQ(cvm_hash32_3(9, w[0], w[1], w[2]), Murmur3Bytes(bytes, 12, 9));
  EXPECT_EQ(cvm_hash32_4(9, w[0], w[1], w[2], w[3]),
            Murmur3Bytes(bytes, 16, 9));
  EXPECT_EQ(cvm_hash64_2(9, 0x00000001deadbeefull, 42ull << 32 | 0x80000000),
            Murmur3Bytes(bytes, 16, 9));
}

TEST(HashTest, SeedsAndInputsDecorrelate) {
  EXPECT_NE(cvm_hash32_2(1, 5, 6), cvm_hash32_2(2, 5, 6));
  EXPECT_NE(cvm_hash32_2(1, 5, 6), cvm_hash32_2(1, 6, 5));
  // Each output bit is set about half the time over sequential inputs.
  unsigned ones[32] = {};
  for (uint32_t i = 0; i < 1 << 16; i++) {
    const uint32_t h = cvm_hash32_3(CVM_SEED_STRAW2, 7, i, 0);
    for (int b = 0; b < 32; b++) ones[b] += h >> b & 1;
  }
  for (unsigned n : ones) {
    EXPECT_GT(n, 32768u - 1200);  // ~9 sigma
    EXPECT_LT(n, 32768u + 1200);
  }
}

TEST(Crc32cTest, CheckValue) {
  EXPECT_EQ(~cvm_crc32c(~0u, "123456789", 9), 0xe3069283u);
  EXPECT_EQ(cvm_crc32c(~0u, "", 0), ~0u);
}

// RFC 3720 (iSCSI) B.4 vectors.
TEST(Crc32cTest, IscsiVectors) {
  std::vector<uint8_t> buf(32, 0);
  EXPECT_EQ(~cvm_crc32c(~0u, buf.data(), 32), 0x8a9136aau);
  std::fill(buf.begin(), buf.end(), 0xff);
  EXPECT_EQ(~cvm_crc32c(~0u, buf.data(), 32), 0x62a8ab43u);
  for (int i = 0; i < 32; i++) buf[i] = i;
  EXPECT_EQ(~cvm_crc32c(~0u, buf.data(), 32), 0x46dd794eu);
}

TEST(Crc32cTest, IncrementalEqualsOneShot) {
  const char text[] = "the quick brown fox jumps over the lazy dog";
  const uint32_t one = cvm_crc32c(~0u, text, sizeof(text));
  for (size_t cut = 0; cut <= sizeof(text); cut++)
    EXPECT_EQ(
        cvm_crc32c(cvm_crc32c(~0u, text, cut), text + cut, sizeof(text) - cut),
        one);
}

}  // namespace
