#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "status.h"

namespace cvm {

inline constexpr uint64_t KiB = 1024;
inline constexpr uint64_t MiB = 1024 * KiB;
inline constexpr uint64_t GiB = 1024 * MiB;
inline constexpr uint64_t TiB = 1024 * GiB;

// Parses "4096", "512K", "10G", "1.5T", "10GiB", "64k" (binary units,
// case-insensitive suffix K M G T P E with optional "i", "B" or "iB").
// Fractions must come out to whole bytes.
Result<uint64_t> ParseSize(std::string_view text);

// 10737418240 -> "10 GiB", 1536 -> "1.5 KiB", 100 -> "100 B".
std::string FormatSize(uint64_t bytes);

// Unix seconds -> "2024-05-01 12:00:00 UTC".
std::string FormatTime(int64_t unix_seconds);

// An age in seconds, two units at most: "12s", "5m3s", "2h7m", "3d4h".
// Negative (clock skew) counts as 0.
std::string FormatDuration(int64_t seconds);

constexpr bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

}  // namespace cvm
