#pragma once

// Errors as values: Status says what went wrong, Result<T> carries either a
// value or a Status. Exceptions are caught at boundaries (JSON parsing, the
// socket server, main) and turned into these.

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cvm {

// The codes double as the API's error.code strings (see CodeName), so they are
// stable names, not implementation detail.
enum class Code {
  kOk,
  kInvalidArgument,  // the caller asked for something malformed or out of range
  kNotFound,         // a named or referenced object does not exist
  kAlreadyExists,    // a name is taken
  kInUse,            // refused: something still depends on the object
  kCorruption,       // a stored record failed to decode or validate
  kIoError,          // the database or a socket failed
  kUnavailable,      // the daemon, database lock or kernel module is not there
  kTimeout,          // a peer did not answer in time
  kBadRequest,       // the request itself (not its arguments) is malformed
  kUnknownOp,        // the request names an op nobody handles
  kNoSpace,          // refused: the cluster has not the capacity it asks for
  kConflict,  // another writer changed the store first; the change may be
              // retried
  kPermissionDenied,  // the caller lacks the credential (a join token)
  kInternal,          // a bug: should never reach a user
};

std::string_view CodeName(Code code);
// Maps an API code string back; unknown strings become kInternal.
Code CodeFromName(std::string_view name);
// Negative errno for a code, as CLI verbs return (rbd style).
int CodeToErrno(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: pool 'x' does not exist"
  std::string ToString() const;

  // Prefixes the message with context, keeping the code.
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {Code::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) {
  return {Code::kNotFound, std::move(m)};
}
inline Status AlreadyExists(std::string m) {
  return {Code::kAlreadyExists, std::move(m)};
}
inline Status InUse(std::string m) { return {Code::kInUse, std::move(m)}; }
inline Status NoSpace(std::string m) { return {Code::kNoSpace, std::move(m)}; }
inline Status Corruption(std::string m) {
  return {Code::kCorruption, std::move(m)};
}
inline Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
inline Status Unavailable(std::string m) {
  return {Code::kUnavailable, std::move(m)};
}
inline Status PermissionDenied(std::string m) {
  return {Code::kPermissionDenied, std::move(m)};
}
inline Status Internal(std::string m) {
  return {Code::kInternal, std::move(m)};
}
inline Status BadRequest(std::string m) {
  return {Code::kBadRequest, std::move(m)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace cvm

#define CVM_CONCAT_INNER(a, b) a##b
#define CVM_CONCAT(a, b) CVM_CONCAT_INNER(a, b)

// Returns the Status of `expr` from the enclosing function if it failed.
#define CVM_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::cvm::Status cvm_status_ = (expr);        \
    if (!cvm_status_.ok()) return cvm_status_; \
  } while (0)

// `lhs = value of expr`, or return its Status.
#define CVM_ASSIGN_OR_RETURN(lhs, expr) \
  CVM_ASSIGN_OR_RETURN_IMPL(CVM_CONCAT(cvm_result_, __LINE__), lhs, expr)
#define CVM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
