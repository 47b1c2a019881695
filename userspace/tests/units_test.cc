#include "units.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace cvm {
namespace {

TEST(ParseSizeTest, AcceptsPlainBytesAndBinaryUnits) {
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize("512K"), 512 * KiB);
  EXPECT_EQ(*ParseSize("512M"), 512 * MiB);
  EXPECT_EQ(*ParseSize("10G"), 10 * GiB);
  EXPECT_EQ(*ParseSize("10g"), 10 * GiB);
  EXPECT_EQ(*ParseSize("10GiB"), 10 * GiB);
  EXPECT_EQ(*ParseSize("10GB"), 10 * GiB);
  EXPECT_EQ(*ParseSize("1T"), TiB);
  EXPECT_EQ(*ParseSize("1.5G"), GiB + GiB / 2);
  EXPECT_EQ(*ParseSize("100B"), 100u);
}

TEST(ParseSizeTest, RefusesGarbageWithAReason) {
  EXPECT_ERROR(ParseSize(""), Code::kInvalidArgument, "not a number");
  EXPECT_ERROR(ParseSize("G"), Code::kInvalidArgument, "not a number");
  EXPECT_ERROR(ParseSize("-1G"), Code::kInvalidArgument, "not a number");
  EXPECT_ERROR(ParseSize("10Q"), Code::kInvalidArgument, "unknown unit");
  EXPECT_ERROR(ParseSize("10 G"), Code::kInvalidArgument, "unknown unit");
  EXPECT_ERROR(ParseSize("1.G"), Code::kInvalidArgument, "malformed");
  EXPECT_ERROR(ParseSize("1.3"), Code::kInvalidArgument, "whole number");
  EXPECT_ERROR(ParseSize("99999999999999999999"), Code::kInvalidArgument,
               "too large");
  EXPECT_ERROR(ParseSize("20E"), Code::kInvalidArgument, "too large");
}

TEST(FormatSizeTest, UsesTheLargestWholeUnit) {
  EXPECT_EQ(FormatSize(100), "100 B");
  EXPECT_EQ(FormatSize(1536), "1.5 KiB");
  EXPECT_EQ(FormatSize(10 * GiB), "10 GiB");
  EXPECT_EQ(FormatSize(TiB), "1 TiB");
}

TEST(FormatTimeTest, PrintsUtc) {
  EXPECT_EQ(FormatTime(0), "1970-01-01 00:00:00 UTC");
}

TEST(FormatDurationTest, TwoUnitsAtMost) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(-5), "0s");  // clock skew
  EXPECT_EQ(FormatDuration(59), "59s");
  EXPECT_EQ(FormatDuration(303), "5m3s");
  EXPECT_EQ(FormatDuration(2 * 3600 + 7 * 60 + 9), "2h7m");
  EXPECT_EQ(FormatDuration(3 * 86400 + 4 * 3600 + 1), "3d4h");
}

}  // namespace
}  // namespace cvm
