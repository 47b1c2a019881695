#pragma once

// Typed, validated reads of a JSON object's fields. Used for both API
// arguments (bad input -> invalid_argument) and stored records (bad input ->
// corruption). The first problem wins and later reads return defaults, so
// callers read every field and then check status() once.

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace cvm {

class JsonFields {
 public:
  // `noun` names a field in messages: "argument" -> "argument 'size' ...".
  // `code` is the code every failure carries.
  JsonFields(const nlohmann::json& obj, std::string noun, Code code);

  // Refuses a non-object and any key not in `known` (catches typos).
  JsonFields& Expect(std::initializer_list<std::string_view> known);

  bool Has(std::string_view key) const;
  // Present with the value null (which every other read takes as absent).
  bool IsNull(std::string_view key) const;

  std::string String(std::string_view key);
  std::optional<std::string> OptString(std::string_view key);
  uint64_t U64(std::string_view key);
  std::optional<uint64_t> OptU64(std::string_view key);
  int64_t I64(std::string_view key);
  double Double(std::string_view key);
  std::optional<double> OptDouble(std::string_view key);
  bool Bool(std::string_view key);
  std::optional<bool> OptBool(std::string_view key);
  std::vector<std::string> StringList(std::string_view key);
  // The raw value, or nullptr when absent.
  const nlohmann::json* Raw(std::string_view key) const;

  const Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }

 private:
  const nlohmann::json* Get(std::string_view key, bool required);
  void Fail(std::string message);
  void TypeError(std::string_view key, std::string_view expected,
                 const nlohmann::json& got);

  const nlohmann::json& obj_;
  std::string noun_;
  Code code_;
  Status status_;
};

// `text` made safe to quote in a message: control and non-ASCII bytes escaped,
// long input cut, so errors never carry terminal escapes or invalid UTF-8.
std::string Printable(std::string_view text, size_t max_len = 80);

// JSON text that never throws, replacing invalid UTF-8.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace cvm
