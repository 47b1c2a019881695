#pragma once

// Shared test helpers: OK assertions for Status/Result and a temp directory.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "status.h"

namespace cvm::testing {

inline ::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << s.ToString();
}
template <typename T>
::testing::AssertionResult IsOk(const Result<T>& r) {
  return IsOk(r.status());
}

// Passes when `s` failed with `code` and its message contains `text`.
inline ::testing::AssertionResult IsError(const Status& s, Code code,
                                          const std::string& text) {
  if (s.ok())
    return ::testing::AssertionFailure() << "succeeded, expected an error";
  if (s.code() != code) {
    return ::testing::AssertionFailure()
           << "code " << CodeName(s.code()) << ", expected " << CodeName(code)
           << " (" << s.message() << ")";
  }
  if (s.message().find(text) == std::string::npos) {
    return ::testing::AssertionFailure()
           << "message '" << s.message() << "' lacks '" << text << "'";
  }
  return ::testing::AssertionSuccess();
}
template <typename T>
::testing::AssertionResult IsError(const Result<T>& r, Code code,
                                   const std::string& text) {
  return IsError(r.status(), code, text);
}

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& parent = "/tmp") {
    std::string tmpl = parent + "/cvm_test_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) std::abort();
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace cvm::testing

#define ASSERT_OK(expr) ASSERT_TRUE(::cvm::testing::IsOk(expr))
#define EXPECT_OK(expr) EXPECT_TRUE(::cvm::testing::IsOk(expr))
#define EXPECT_ERROR(expr, code, text) \
  EXPECT_TRUE(::cvm::testing::IsError(expr, code, text))
