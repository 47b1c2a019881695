#include "hex.h"

namespace cvm {
namespace {

int Nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes.size());
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool IsLowerHex(std::string_view s, size_t digits) {
  if (digits != 0 ? s.size() != digits : s.size() % 2 != 0) return false;
  for (char c : s) {
    if (Nibble(c) < 0) return false;
  }
  return true;
}

Result<std::string> HexDecode(std::string_view hex, std::string_view what) {
  if (!IsLowerHex(hex)) {
    return Corruption(std::string(what) + ": not lowercase hex");
  }
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i)
    out[i] =
        static_cast<char>(Nibble(hex[2 * i]) << 4 | Nibble(hex[2 * i + 1]));
  return out;
}

}  // namespace cvm
