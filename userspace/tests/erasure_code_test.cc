// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// The kernel's erasure code (kernel/common/ec.c, compiled here unchanged)
// against ISA-L (libcvm's ErasureCode): identical parity, and identical
// reconstruction for every ec(k,m) pools allow and every erasure pattern
// of up to m lost shards.
#include "erasure_code.h"

#include <gtest/gtest.h>
#include <isa-l/erasure_code.h>

#include <bit>
#include <random>
#include <vector>

#include "ec.h"

namespace {

using Buf = std::vector<uint8_t>;

struct Stripe {
  std::vector<Buf> shards;  // k data then m parity

  Stripe(uint32_t n, size_t len) : shards(n, Buf(len)) {}
  std::vector<uint8_t*> Ptrs() {
    std::vector<uint8_t*> p;
    for (auto& s : shards) p.push_back(s.data());
    return p;
  }
};

Stripe RandomStripe(uint32_t k, uint32_t m, size_t len, std::mt19937& rng) {
  Stripe st(k + m, len);
  for (uint32_t i = 0; i < k; i++)
    for (auto& b : st.shards[i]) b = static_cast<uint8_t>(rng());
  return st;
}

// Parity by kernel/common.
void KernelEncode(uint32_t k, uint32_t m, size_t len, Stripe& st) {
  auto p = st.Ptrs();
  std::vector<const void*> data(p.begin(), p.begin() + k);
  std::vector<void*> parity(p.begin() + k, p.end());
  cvm_ec_encode(k, m, static_cast<uint32_t>(len), data.data(), parity.data());
}

TEST(GaloisField, TablesMatchIsal) {
  for (int a = 0; a < 256; a++)
    for (int b = 0; b < 256; b++)
      ASSERT_EQ(cvm_gf_mul(a, b), gf_mul(a, b)) << a << " * " << b;
  for (int a = 1; a < 256; a++) {
    EXPECT_EQ(cvm_gf_inv(a), gf_inv(a)) << a;
    EXPECT_EQ(cvm_gf_mul(a, cvm_gf_inv(a)), 1) << a;
  }
}

TEST(GaloisField, Mul2x8IsEightProducts) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 1000; i++) {
    uint64_t v = rng(), got = cvm_gf_mul2_x8(v);
    for (int b = 0; b < 8; b++)
      ASSERT_EQ((got >> (8 * b)) & 0xff, gf_mul((v >> (8 * b)) & 0xff, 2));
  }
}

TEST(ErasureCode, CoefficientsAreIsalRsMatrix) {
  for (uint32_t k = 1; k <= 8; k++) {
    Buf a((k + 4) * k);
    gf_gen_rs_matrix(a.data(), static_cast<int>(k + 4), static_cast<int>(k));
    for (uint32_t r = 0; r < 4; r++)
      for (uint32_t j = 0; j < k; j++)
        EXPECT_EQ(cvm_ec_coef(r, j), a[(k + r) * k + j]) << k << r << j;
  }
}

// Every supported code, random stripes: the kernel's parity is ISA-L's, and
// both rebuild every pattern of up to m lost shards to the original bytes.
TEST(ErasureCode, KernelAndIsalAgreeOnEveryErasurePattern) {
  std::mt19937 rng(2026);
  size_t patterns = 0;
  for (uint32_t k = 2; k <= 8; k++) {
    for (uint32_t m = 1; m <= 4; m++) {
      SCOPED_TRACE(testing::Message() << "ec(" << k << "," << m << ")");
      const uint32_t n = k + m;
      const size_t len = 520;  // not a power of two: tails count
      auto code = cvm::ErasureCode::Create(k, m);
      ASSERT_TRUE(code.ok()) << code.status().ToString();

      Stripe want = RandomStripe(k, m, len, rng);
      KernelEncode(k, m, len, want);
      Stripe isal = want;
      auto ip = isal.Ptrs();
      std::vector<const uint8_t*> data(ip.begin(), ip.begin() + k);
      for (uint32_t r = 0; r < m; r++)
        std::fill(isal.shards[k + r].begin(), isal.shards[k + r].end(), 0);
      ASSERT_TRUE(code->Encode(data, std::span(ip).subspan(k), len).ok());
      for (uint32_t r = 0; r < m; r++)
        ASSERT_EQ(isal.shards[k + r], want.shards[k + r]) << "parity " << r;

      for (uint32_t erased = 1; erased < (1u << n); erased++) {
        if (static_cast<uint32_t>(std::popcount(erased)) > m) continue;
        patterns++;
        Stripe kern = want, lib = want;
        for (uint32_t s = 0; s < n; s++) {
          if (!(erased & (1u << s))) continue;
          std::fill(kern.shards[s].begin(), kern.shards[s].end(), 0xa5);
          std::fill(lib.shards[s].begin(), lib.shards[s].end(), 0x5a);
        }
        auto kp = kern.Ptrs();
        std::vector<void*> kv(kp.begin(), kp.end());
        cvm_err err{};
        ASSERT_EQ(cvm_ec_reconstruct(k, m, len, kv.data(), erased, &err), 0)
            << err.why << " erased " << erased;
        ASSERT_EQ(code->Reconstruct(lib.Ptrs(), erased, len).ToString(),
                  cvm::Status::Ok().ToString());
        for (uint32_t s = 0; s < n; s++) {
          ASSERT_EQ(kern.shards[s], want.shards[s])
              << "kernel, shard " << s << " erased " << erased;
          ASSERT_EQ(lib.shards[s], want.shards[s])
              << "ISA-L, shard " << s << " erased " << erased;
        }
      }
    }
  }
  // sum over k=2..8, m=1..4 of the patterns of 1..m out of k+m shards
  EXPECT_EQ(patterns, 3318u);
}

// A read-modify-write changes parity row r by coef(r, j) * (old ^ new).
TEST(ErasureCode, DeltaUpdateEqualsFullEncode) {
  std::mt19937 rng(5);
  const uint32_t k = 6, m = 4;
  const size_t len = 4096;
  Stripe st = RandomStripe(k, m, len, rng);
  KernelEncode(k, m, len, st);
  for (uint32_t j = 0; j < k; j++) {
    Buf fresh(len), delta(len);
    for (size_t i = 0; i < len; i++) {
      fresh[i] = static_cast<uint8_t>(rng());
      delta[i] = fresh[i] ^ st.shards[j][i];
    }
    for (uint32_t r = 0; r < m; r++)
      cvm_ec_mul_xor(cvm_ec_coef(r, j), len, delta.data(),
                     st.shards[k + r].data());
    st.shards[j] = fresh;
    Stripe again = st;
    KernelEncode(k, m, len, again);
    for (uint32_t r = 0; r < m; r++)
      ASSERT_EQ(st.shards[k + r], again.shards[k + r]) << j << " " << r;
  }
}

TEST(ErasureCode, RefusesWhatItCannotDo) {
  cvm_err err{};
  EXPECT_EQ(cvm_ec_check(0, 2, 512, &err), -EINVAL);
  EXPECT_EQ(cvm_ec_check(9, 2, 512, &err), -EINVAL);
  EXPECT_EQ(cvm_ec_check(4, 0, 512, &err), -EINVAL);
  EXPECT_EQ(cvm_ec_check(4, 5, 512, &err), -EINVAL);
  EXPECT_EQ(cvm_ec_check(4, 2, 100, &err), -EINVAL);
  EXPECT_STREQ(err.why, "EC chunk length must be a non-zero multiple of 8");
  EXPECT_EQ(cvm_ec_check(4, 2, 4096, &err), 0);

  std::mt19937 rng(1);
  Stripe st = RandomStripe(4, 2, 64, rng);
  auto p = st.Ptrs();
  std::vector<void*> v(p.begin(), p.end());
  EXPECT_EQ(cvm_ec_reconstruct(4, 2, 64, v.data(), 0b000111, &err), -EINVAL);
  EXPECT_STREQ(err.why, "EC stripe has more erasures than parity chunks");
  EXPECT_EQ(cvm_ec_reconstruct(4, 2, 64, v.data(), 1u << 6, &err), -EINVAL);

  EXPECT_FALSE(cvm::ErasureCode::Create(9, 2).ok());
  EXPECT_FALSE(cvm::ErasureCode::Create(4, 5).ok());
  auto code = cvm::ErasureCode::Create(4, 2);
  ASSERT_TRUE(code.ok());
  EXPECT_FALSE(code->Reconstruct(st.Ptrs(), 0b000111, 64).ok());
}

}  // namespace
