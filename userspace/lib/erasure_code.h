// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// ec(k,m) parity and reconstruction in userspace, with ISA-L.
//
// The code is the one of kernel/common/ec.h: ISA-L's gf_gen_rs_matrix()
// (parity row r of data chunk j is (2^r)^j over GF(2^8)/0x11d), whose first
// two rows are raid6's P and Q.  cvmd's rebuild and scrub use this class;
// the tests prove it and the kernel's code produce the same bytes.
#ifndef CVM_ERASURE_CODE_H
#define CVM_ERASURE_CODE_H

#include <cstdint>
#include <span>
#include <vector>

#include "status.h"

namespace cvm {

class ErasureCode {
 public:
  // k data chunks (1..8) and m parity chunks (1..4).
  static Result<ErasureCode> Create(uint32_t k, uint32_t m);

  uint32_t k() const { return k_; }
  uint32_t m() const { return m_; }

  // Computes parity[0..m) from data[0..k); every span has the same length.
  Status Encode(std::span<const uint8_t* const> data,
                std::span<uint8_t* const> parity, size_t len) const;

  // shards: k data then m parity buffers of len bytes.  Rebuilds those
  // whose bit is set in `erased` (at most m) from the others.
  Status Reconstruct(std::span<uint8_t* const> shards, uint32_t erased,
                     size_t len) const;

 private:
  ErasureCode(uint32_t k, uint32_t m);

  uint32_t k_, m_;
  std::vector<uint8_t> matrix_;  // (k + m) x k generator, identity on top
  std::vector<uint8_t> tables_;  // ec_init_tables() of the parity rows
};

}  // namespace cvm

#endif  // CVM_ERASURE_CODE_H
