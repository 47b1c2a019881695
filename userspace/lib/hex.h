#pragma once

// Lowercase hex for keys, digests and boxes kept in text (JSON, etcd keys):
// one encoder and one strict decoder for all of them.

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "status.h"

namespace cvm {

std::string HexEncode(std::string_view bytes);
template <size_t N>
std::string HexEncode(const std::array<uint8_t, N>& bytes) {
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(bytes.data()), N));
}

// Exactly `digits` lowercase hex digits (any even count when 0).
bool IsLowerHex(std::string_view s, size_t digits = 0);

// Lowercase hex only; kCorruption naming `what` otherwise.
Result<std::string> HexDecode(std::string_view hex, std::string_view what);
template <size_t N>
Result<std::array<uint8_t, N>> HexDecodeArray(std::string_view hex,
                                              std::string_view what) {
  if (hex.size() != 2 * N)
    return Corruption(std::string(what) + ": want " + std::to_string(2 * N) +
                      " hex digits");
  CVM_ASSIGN_OR_RETURN(std::string bytes, HexDecode(hex, what));
  std::array<uint8_t, N> out{};
  std::memcpy(out.data(), bytes.data(), N);
  return out;
}

}  // namespace cvm
