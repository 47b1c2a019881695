#include "log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace cvm {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::mutex g_mutex;
std::string g_tag = "cvm";

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warning";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      break;
  }
  return "";
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level = level; }

void SetLogTag(std::string_view tag) {
  std::lock_guard lock(g_mutex);
  g_tag = std::string(tag);
}

void LogLine(LogLevel level, std::string_view message) {
  if (level < g_level.load() || level == LogLevel::kOff) return;
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
  std::lock_guard lock(g_mutex);
  // One fprintf per line so concurrent writers never interleave mid-line.
  std::fprintf(stderr, "%s %s[%d] %s: %.*s\n", stamp, g_tag.c_str(),
               static_cast<int>(getpid()), LevelName(level),
               static_cast<int>(message.size()), message.data());
}

}  // namespace cvm
