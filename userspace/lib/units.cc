#include "units.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <ctime>

namespace cvm {

Result<uint64_t> ParseSize(std::string_view text) {
  const std::string quoted = fmt::format("'{}'", text);
  size_t pos = 0;
  uint64_t whole = 0;
  while (pos < text.size() &&
         std::isdigit(static_cast<unsigned char>(text[pos]))) {
    const uint64_t digit = text[pos] - '0';
    if (whole > (UINT64_MAX - digit) / 10) {
      return InvalidArgument("size " + quoted + " is too large");
    }
    whole = whole * 10 + digit;
    ++pos;
  }
  if (pos == 0) {
    return InvalidArgument("size " + quoted +
                           " is not a number (expected e.g. 4096, 512M, 10G)");
  }
  // Up to 9 fractional digits, kept as an integer numerator over 10^digits.
  uint64_t frac = 0, frac_scale = 1;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t digits = 0;
    while (pos < text.size() &&
           std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (++digits > 9) {
        return InvalidArgument("size " + quoted + " has too many decimals");
      }
      frac = frac * 10 + (text[pos] - '0');
      frac_scale *= 10;
      ++pos;
    }
    if (digits == 0) return InvalidArgument("size " + quoted + " is malformed");
  }
  std::string suffix;
  for (; pos < text.size(); ++pos) {
    suffix +=
        static_cast<char>(std::toupper(static_cast<unsigned char>(text[pos])));
  }
  unsigned shift = 0;
  if (!suffix.empty() && suffix != "B") {
    static constexpr std::string_view kUnits = "KMGTPE";
    const size_t unit = kUnits.find(suffix[0]);
    const std::string_view rest = std::string_view(suffix).substr(1);
    if (unit == std::string_view::npos ||
        !(rest.empty() || rest == "B" || rest == "I" || rest == "IB")) {
      return InvalidArgument(
          "size " + quoted + " has an unknown unit '" +
          std::string(text.substr(text.size() - suffix.size())) +
          "' (use K, M, G, T, P or E)");
    }
    shift = 10 * static_cast<unsigned>(unit + 1);
  }
  if (shift > 0 && whole > (UINT64_MAX >> shift)) {
    return InvalidArgument("size " + quoted + " is too large");
  }
  uint64_t bytes = whole << shift;
  if (frac != 0) {
    // frac / frac_scale * 2^shift must be a whole number of bytes.
    const unsigned __int128 scaled = static_cast<unsigned __int128>(frac)
                                     << shift;
    if (scaled % frac_scale != 0) {
      return InvalidArgument("size " + quoted +
                             " is not a whole number of bytes");
    }
    const unsigned __int128 total = bytes + scaled / frac_scale;
    if (total > UINT64_MAX)
      return InvalidArgument("size " + quoted + " is too large");
    bytes = static_cast<uint64_t>(total);
  }
  return bytes;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B",   "KiB", "MiB", "GiB",
                                           "TiB", "PiB", "EiB"};
  size_t unit = 0;
  double value = static_cast<double>(bytes);
  while (value >= 1024.0 && unit + 1 < std::size(kUnits)) {
    value /= 1024.0;
    ++unit;
  }
  if (unit == 0) return fmt::format("{} B", bytes);
  std::string number = fmt::format("{:.2f}", value);
  // "10.00" -> "10", "1.50" -> "1.5"
  while (number.back() == '0') number.pop_back();
  if (number.back() == '.') number.pop_back();
  return fmt::format("{} {}", number, kUnits[unit]);
}

std::string FormatTime(int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return fmt::format("@{}", unix_seconds);
  char buf[64];
  const size_t n =
      std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf, n);
}

std::string FormatDuration(int64_t seconds) {
  const int64_t s = std::max<int64_t>(seconds, 0);
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d{}h", s / 86400, s % 86400 / 3600);
}

}  // namespace cvm
