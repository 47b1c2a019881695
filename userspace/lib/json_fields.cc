#include "json_fields.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace cvm {

using nlohmann::json;

JsonFields::JsonFields(const json& obj, std::string noun, Code code)
    : obj_(obj), noun_(std::move(noun)), code_(code) {
  if (!obj_.is_object()) {
    Fail(fmt::format("expected a JSON object, got {}", obj_.type_name()));
  }
}

JsonFields& JsonFields::Expect(std::initializer_list<std::string_view> known) {
  if (!ok()) return *this;
  for (const auto& [key, value] : obj_.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string names;
      for (const auto& k : known)
        names += (names.empty() ? "" : ", ") + std::string(k);
      Fail(fmt::format("unknown {} '{}' (expected: {})", noun_, Printable(key),
                       names.empty() ? "none" : names));
      break;
    }
  }
  return *this;
}

bool JsonFields::Has(std::string_view key) const { return Raw(key) != nullptr; }

bool JsonFields::IsNull(std::string_view key) const {
  if (!obj_.is_object()) return false;
  auto it = obj_.find(key);
  return it != obj_.end() && it->is_null();
}

const json* JsonFields::Raw(std::string_view key) const {
  if (!obj_.is_object()) return nullptr;
  auto it = obj_.find(key);
  if (it == obj_.end() || it->is_null()) return nullptr;
  return &*it;
}

void JsonFields::Fail(std::string message) {
  if (status_.ok()) status_ = Status(code_, std::move(message));
}

void JsonFields::TypeError(std::string_view key, std::string_view expected,
                           const json& got) {
  std::string shown = got.is_number() ? DumpJson(got) : got.type_name();
  Fail(fmt::format("{} '{}' must be {}, got {}", noun_, key, expected, shown));
}

const json* JsonFields::Get(std::string_view key, bool required) {
  if (!ok()) return nullptr;
  const json* v = Raw(key);
  if (v == nullptr && required)
    Fail(fmt::format("{} '{}' is required", noun_, key));
  return v;
}

std::optional<std::string> JsonFields::OptString(std::string_view key) {
  const json* v = Get(key, false);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    TypeError(key, "a string", *v);
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::string JsonFields::String(std::string_view key) {
  if (Get(key, true) == nullptr) return {};
  return OptString(key).value_or("");
}

std::optional<uint64_t> JsonFields::OptU64(std::string_view key) {
  const json* v = Get(key, false);
  if (v == nullptr) return std::nullopt;
  // Parsed text makes non-negative integers unsigned; JSON built in C++ from
  // an int is signed, so accept both when the value is not negative.
  const bool non_negative = v->is_number_unsigned() ||
                            (v->is_number_integer() && v->get<int64_t>() >= 0);
  if (!non_negative) {
    TypeError(key, "a non-negative integer", *v);
    return std::nullopt;
  }
  return v->is_number_unsigned() ? v->get<uint64_t>()
                                 : static_cast<uint64_t>(v->get<int64_t>());
}

uint64_t JsonFields::U64(std::string_view key) {
  if (Get(key, true) == nullptr) return 0;
  return OptU64(key).value_or(0);
}

int64_t JsonFields::I64(std::string_view key) {
  const json* v = Get(key, true);
  if (v == nullptr) return 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX) {
      TypeError(key, "a 64-bit signed integer", *v);
      return 0;
    }
    return v->get<int64_t>();
  }
  TypeError(key, "an integer", *v);
  return 0;
}

std::optional<double> JsonFields::OptDouble(std::string_view key) {
  const json* v = Get(key, false);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) {
    TypeError(key, "a number", *v);
    return std::nullopt;
  }
  return v->get<double>();
}

double JsonFields::Double(std::string_view key) {
  if (Get(key, true) == nullptr) return 0;
  return OptDouble(key).value_or(0);
}

std::optional<bool> JsonFields::OptBool(std::string_view key) {
  const json* v = Get(key, false);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) {
    TypeError(key, "true or false", *v);
    return std::nullopt;
  }
  return v->get<bool>();
}

bool JsonFields::Bool(std::string_view key) {
  if (Get(key, true) == nullptr) return false;
  return OptBool(key).value_or(false);
}

std::vector<std::string> JsonFields::StringList(std::string_view key) {
  const json* v = Get(key, true);
  if (v == nullptr) return {};
  if (!v->is_array()) {
    TypeError(key, "an array of strings", *v);
    return {};
  }
  std::vector<std::string> out;
  for (const auto& item : *v) {
    if (!item.is_string()) {
      TypeError(key, "an array of strings", *v);
      return {};
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::string Printable(std::string_view text, size_t max_len) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    const unsigned char c = text[i];
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

std::string DumpJson(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace cvm
