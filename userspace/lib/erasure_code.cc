// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "erasure_code.h"

#include <fmt/format.h>
#include <isa-l/erasure_code.h>

#include <algorithm>
#include <bit>

namespace cvm {

Result<ErasureCode> ErasureCode::Create(uint32_t k, uint32_t m) {
  if (k < 1 || k > 8)
    return InvalidArgument(
        fmt::format("EC data chunks k must be 1 to 8, not {}", k));
  if (m < 1 || m > 4)
    return InvalidArgument(
        fmt::format("EC parity chunks m must be 1 to 4, not {}", m));
  return ErasureCode(k, m);
}

ErasureCode::ErasureCode(uint32_t k, uint32_t m)
    : k_(k), m_(m), matrix_((k + m) * k), tables_(k * m * 32) {
  gf_gen_rs_matrix(matrix_.data(), static_cast<int>(k + m),
                   static_cast<int>(k));
  ec_init_tables(static_cast<int>(k), static_cast<int>(m),
                 matrix_.data() + k * k, tables_.data());
}

Status ErasureCode::Encode(std::span<const uint8_t* const> data,
                           std::span<uint8_t* const> parity, size_t len) const {
  if (data.size() != k_ || parity.size() != m_)
    return InvalidArgument(fmt::format(
        "ec({},{}) encodes {} data into {} parity chunks, not {} into {}", k_,
        m_, k_, m_, data.size(), parity.size()));
  // ISA-L takes non-const pointers but only reads the data.
  std::vector<uint8_t*> in(data.size());
  for (size_t i = 0; i < data.size(); i++)
    in[i] = const_cast<uint8_t*>(data[i]);
  std::vector<uint8_t*> out(parity.begin(), parity.end());
  ec_encode_data(static_cast<int>(len), static_cast<int>(k_),
                 static_cast<int>(m_), const_cast<uint8_t*>(tables_.data()),
                 in.data(), out.data());
  return Status::Ok();
}

Status ErasureCode::Reconstruct(std::span<uint8_t* const> shards,
                                uint32_t erased, size_t len) const {
  const uint32_t n = k_ + m_;
  if (shards.size() != n)
    return InvalidArgument(fmt::format("ec({},{}) has {} shards, not {}", k_,
                                       m_, n, shards.size()));
  if (erased >> n)
    return InvalidArgument(
        fmt::format("erasure mask {:#x} names a shard past {}", erased, n));
  if (static_cast<uint32_t>(std::popcount(erased)) > m_)
    return InvalidArgument(
        fmt::format("{} shards lost, ec({},{}) rebuilds at most {}",
                    std::popcount(erased), k_, m_, m_));
  if (!erased) return Status::Ok();

  // The first k survivors, and the inverse of their generator rows.
  std::vector<uint8_t> rows(k_ * k_), inverse(k_ * k_);
  std::vector<uint8_t*> sources;
  for (uint32_t s = 0; s < n && sources.size() < k_; s++) {
    if (erased & (1u << s)) continue;
    std::copy_n(&matrix_[s * k_], k_, &rows[sources.size() * k_]);
    sources.push_back(shards[s]);
  }
  if (gf_invert_matrix(rows.data(), inverse.data(), static_cast<int>(k_)))
    return Internal(fmt::format("ec({},{}): survivors of {:#x} not decodable",
                                k_, m_, erased));

  // Each lost shard is a row of (its generator row x inverse) applied to
  // the survivors; one ec_encode_data() call computes them all.
  std::vector<uint8_t> decode;
  std::vector<uint8_t*> outputs;
  for (uint32_t s = 0; s < n; s++) {
    if (!(erased & (1u << s))) continue;
    for (uint32_t j = 0; j < k_; j++) {
      uint8_t c = 0;
      for (uint32_t i = 0; i < k_; i++)
        c ^= gf_mul(matrix_[s * k_ + i], inverse[i * k_ + j]);
      decode.push_back(c);
    }
    outputs.push_back(shards[s]);
  }
  std::vector<uint8_t> tables(k_ * outputs.size() * 32);
  ec_init_tables(static_cast<int>(k_), static_cast<int>(outputs.size()),
                 decode.data(), tables.data());
  ec_encode_data(static_cast<int>(len), static_cast<int>(k_),
                 static_cast<int>(outputs.size()), tables.data(),
                 sources.data(), outputs.data());
  return Status::Ok();
}

}  // namespace cvm
