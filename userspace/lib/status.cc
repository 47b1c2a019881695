#include "status.h"

#include <cerrno>
#include <utility>

namespace cvm {
namespace {

struct CodeInfo {
  Code code;
  std::string_view name;
  int err;
};

constexpr CodeInfo kCodes[] = {
    {Code::kOk, "ok", 0},
    {Code::kInvalidArgument, "invalid_argument", EINVAL},
    {Code::kNotFound, "not_found", ENOENT},
    {Code::kAlreadyExists, "already_exists", EEXIST},
    {Code::kInUse, "in_use", EBUSY},
    {Code::kCorruption, "corruption", EUCLEAN},
    {Code::kIoError, "io_error", EIO},
    {Code::kUnavailable, "unavailable", ENOTCONN},
    {Code::kTimeout, "timeout", ETIMEDOUT},
    {Code::kBadRequest, "bad_request", EPROTO},
    {Code::kUnknownOp, "unknown_op", EOPNOTSUPP},
    {Code::kNoSpace, "no_space", ENOSPC},
    {Code::kConflict, "conflict", EAGAIN},
    {Code::kPermissionDenied, "permission_denied", EACCES},
    {Code::kInternal, "internal", EFAULT},
};

const CodeInfo& Info(Code code) {
  for (const auto& info : kCodes) {
    if (info.code == code) return info;
  }
  return kCodes[std::size(kCodes) - 1];
}

}  // namespace

std::string_view CodeName(Code code) { return Info(code).name; }

Code CodeFromName(std::string_view name) {
  for (const auto& info : kCodes) {
    if (info.name == name) return info.code;
  }
  return Code::kInternal;
}

int CodeToErrno(Code code) { return -Info(code).err; }

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

}  // namespace cvm
