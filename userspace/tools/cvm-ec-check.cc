// cvm-ec-check: check an erasure-coded object's shards with ISA-L.
//
//   cvm-ec-check K M UNIT SHARD_FILE_0 ... SHARD_FILE_{K+M-1}
//
// Each file holds one shard of the object as read from its target (for
// example with cvm-wire read --shard S --out FILE); shorter files count as
// zero-padded, as a thin target returns zeroes for what was never written.
// For every stripe (UNIT bytes per shard) the parity shards must equal
// ISA-L's encoding of the data shards: this is how the tests prove the
// kernel's parity (lib/raid6 and kernel/common/ec.c) is ISA-L's.  Prints
// "N stripes checked, M differ"; exit status 0 when none differ, 1 when
// some do, 2 on a usage or I/O error.
#include <fmt/core.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "erasure_code.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: cvm-ec-check K M UNIT SHARD_FILE...\n");
    return 2;
  }
  const uint32_t k = std::strtoul(argv[1], nullptr, 10);
  const uint32_t m = std::strtoul(argv[2], nullptr, 10);
  const size_t unit = std::strtoull(argv[3], nullptr, 10);
  auto code = cvm::ErasureCode::Create(k, m);
  if (!code.ok()) {
    fmt::print(stderr, "cvm-ec-check: {}\n", code.status().message());
    return 2;
  }
  if (unit == 0 || unit % 8 || static_cast<uint32_t>(argc - 4) != k + m) {
    fmt::print(stderr,
               "cvm-ec-check: want a UNIT that is a multiple of 8 and {} "
               "shard files\n",
               k + m);
    return 2;
  }
  std::vector<std::vector<uint8_t>> shards;
  size_t longest = 0;
  for (int i = 4; i < argc; i++) {
    std::ifstream f(argv[i], std::ios::binary);
    if (!f) {
      fmt::print(stderr, "cvm-ec-check: cannot open {}\n", argv[i]);
      return 2;
    }
    shards.emplace_back(std::istreambuf_iterator<char>(f),
                        std::istreambuf_iterator<char>());
    longest = std::max(longest, shards.back().size());
  }
  const size_t stripes = (longest + unit - 1) / unit;
  for (auto& s : shards) s.resize(stripes * unit, 0);

  size_t differ = 0;
  std::vector<std::vector<uint8_t>> parity(m, std::vector<uint8_t>(unit));
  for (size_t t = 0; t < stripes; t++) {
    std::vector<const uint8_t*> data;
    std::vector<uint8_t*> out;
    for (uint32_t j = 0; j < k; j++) data.push_back(&shards[j][t * unit]);
    for (auto& p : parity) out.push_back(p.data());
    if (auto st = code->Encode(data, out, unit); !st.ok()) {
      fmt::print(stderr, "cvm-ec-check: {}\n", st.message());
      return 2;
    }
    for (uint32_t r = 0; r < m; r++) {
      if (!std::equal(parity[r].begin(), parity[r].end(),
                      shards[k + r].begin() + t * unit)) {
        if (differ < 10)
          fmt::print("stripe {}: parity {} differs from ISA-L's\n", t, r);
        differ++;
        break;
      }
    }
  }
  fmt::print("{} stripes checked, {} differ\n", stripes, differ);
  return differ ? 1 : 0;
}
