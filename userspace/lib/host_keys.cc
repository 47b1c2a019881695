#include "host_keys.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "hex.h"
#include "unique_fd.h"

namespace cvm {

namespace {

Result<wire::Key> RandomKey() {
  wire::Key k{};
  if (::getrandom(k.data(), k.size(), 0) != static_cast<ssize_t>(k.size()))
    return IoError(fmt::format("getrandom: {}", std::strerror(errno)));
  return k;
}

}  // namespace

namespace {

std::string RowAad(const HostKeyRow& row) {
  return fmt::format("cvm host_keys row: device {} host {} sealed to {}",
                     row.device_id, row.host_id, row.sealed_to);
}

}  // namespace

std::string EncodeHostKeyRow(const HostKeyRow& row) {
  return nlohmann::json{{"device_id", row.device_id},
                        {"host_id", row.host_id},
                        {"sealed_to", row.sealed_to},
                        {"sender", HexEncode(row.sender)},
                        {"recipient", HexEncode(row.recipient)},
                        {"box", HexEncode(row.box)}}
      .dump();
}

Result<HostKeyRow> DecodeHostKeyRow(std::string_view value) {
  try {
    const auto j = nlohmann::json::parse(value);
    HostKeyRow row;
    row.device_id = j.at("device_id").get<uint64_t>();
    row.host_id = j.at("host_id").get<uint64_t>();
    if (!j.contains("box"))
      return Corruption("host key row: not sealed (written before sealing)");
    row.sealed_to = j.at("sealed_to").get<uint64_t>();
    CVM_ASSIGN_OR_RETURN(row.sender,
                         HexDecodeArray<wire::kKeyLen>(
                             j.at("sender").get<std::string>(), "row sender"));
    CVM_ASSIGN_OR_RETURN(
        row.recipient,
        HexDecodeArray<wire::kKeyLen>(j.at("recipient").get<std::string>(),
                                      "row recipient"));
    const std::string hex = j.at("box").get<std::string>();
    if (hex.size() > 4096) return Corruption("host key row: bad box");
    CVM_ASSIGN_OR_RETURN(row.box, HexDecode(hex, "host key row box"));
    return row;
  } catch (const nlohmann::json::exception& e) {
    return Corruption(fmt::format("host key row: {}", e.what()));
  }
}

Status SealHostKeyRow(HostKeyRow& row, const wire::Key& my_seal_key,
                      const SealPublic& recipient, uint64_t sealed_to) {
  if (row.keys.empty() || row.keys.size() > 2)
    return InvalidArgument("host key row: one or two keys expected");
  nlohmann::json keys = nlohmann::json::array();
  for (const auto& k : row.keys)
    keys.push_back({{"key_id", k.key_id}, {"key", HexEncode(k.key)}});
  row.sealed_to = sealed_to;
  row.recipient = recipient;
  CVM_ASSIGN_OR_RETURN(row.sender, SealPublicKey(my_seal_key));
  std::string plain = keys.dump();
  auto box = Seal(my_seal_key, recipient, RowAad(row), plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!box.ok()) return box.status();
  row.box = std::move(*box);
  return Status::Ok();
}

Status OpenHostKeyRow(HostKeyRow& row, const wire::Key& my_seal_key) {
  CVM_ASSIGN_OR_RETURN(
      std::string plain,
      Open(my_seal_key, row.sender, row.recipient, RowAad(row), row.box));
  row.keys.clear();
  try {
    for (const auto& k : nlohmann::json::parse(plain)) {
      HostKeyRow::Key key;
      key.key_id = k.at("key_id").get<uint32_t>();
      CVM_ASSIGN_OR_RETURN(
          key.key, HexDecodeArray<wire::kKeyLen>(k.at("key").get<std::string>(),
                                                 "host key"));
      row.keys.push_back(key);
    }
  } catch (const nlohmann::json::exception& e) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return Corruption(fmt::format("host key row: {}", e.what()));
  }
  OPENSSL_cleanse(plain.data(), plain.size());
  if (row.keys.empty() || row.keys.size() > 2)
    return Corruption("host key row: one or two keys expected");
  return Status::Ok();
}

wire::Key DeviceKey(const HostSecret& s, uint64_t cluster_id, uint64_t host_id,
                    uint64_t device_id) {
  return wire::DeriveKey(s.secret, cluster_id, host_id,
                         static_cast<uint32_t>(device_id));
}

Result<std::unique_ptr<HostSecrets>> HostSecrets::Load(std::string path,
                                                       bool create) {
  std::unique_ptr<HostSecrets> hs(new HostSecrets(path));
  const auto dir = std::filesystem::path(path).parent_path();
  if (create && !dir.empty() && !std::filesystem::exists(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return IoError(fmt::format("{}: {}", dir.string(), ec.message()));
    ::chmod(dir.c_str(), 0700);
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) {
    if (errno != ENOENT || !create)
      return IoError(fmt::format("{}: {}", path, std::strerror(errno)));
    CVM_ASSIGN_OR_RETURN(wire::Key k, RandomKey());
    CVM_ASSIGN_OR_RETURN(hs->seal_key_, RandomKey());
    hs->all_ = {HostSecret{1, k}};
    std::lock_guard lock(hs->mutex_);
    CVM_RETURN_IF_ERROR(hs->Save());
    return hs;
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0)
    return IoError(fmt::format("{}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != ::geteuid())
    return PermissionDenied(fmt::format(
        "{}: the host secret must be a regular file of this user, mode 0600",
        path));
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0)
      return IoError(fmt::format("{}: {}", path, std::strerror(errno)));
    if (n == 0) break;
    text.append(buf, n);
    if (text.size() > 65536) return Corruption(path + ": too large");
  }
  try {
    const auto j = nlohmann::json::parse(text);
    for (const auto& s : j.at("secrets")) {
      HostSecret hsec;
      hsec.key_id = s.at("key_id").get<uint32_t>();
      CVM_ASSIGN_OR_RETURN(hsec.secret,
                           HexDecodeArray<wire::kKeyLen>(
                               s.at("secret").get<std::string>(), path));
      hs->all_.push_back(hsec);
    }
    if (j.contains("seal_key")) {
      CVM_ASSIGN_OR_RETURN(hs->seal_key_,
                           HexDecodeArray<wire::kKeyLen>(
                               j.at("seal_key").get<std::string>(), path));
    }
  } catch (const nlohmann::json::exception& e) {
    return Corruption(fmt::format("{}: {}", path, e.what()));
  }
  if (hs->all_.empty() || hs->all_.size() > 2)
    return Corruption(path + ": one or two secrets expected");
  // A file from before sealing: its sealing key is made now.
  if (hs->seal_key_ == wire::Key{} && create) {
    CVM_ASSIGN_OR_RETURN(hs->seal_key_, RandomKey());
    std::lock_guard lock(hs->mutex_);
    CVM_RETURN_IF_ERROR(hs->Save());
  }
  return hs;
}

Status HostSecrets::Save() {
  nlohmann::json secrets = nlohmann::json::array();
  for (const auto& s : all_)
    secrets.push_back({{"key_id", s.key_id}, {"secret", HexEncode(s.secret)}});
  const std::string text =
      nlohmann::json{{"secrets", secrets}, {"seal_key", HexEncode(seal_key_)}}
          .dump(1) +
      "\n";
  const std::string tmp = path_ + ".tmp";
  ::unlink(tmp.c_str());
  UniqueFd fd(
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid())
    return IoError(fmt::format("{}: {}", tmp, std::strerror(errno)));
  if (::write(fd.get(), text.data(), text.size()) !=
          static_cast<ssize_t>(text.size()) ||
      ::fsync(fd.get()) != 0) {
    const Status s = IoError(fmt::format("{}: {}", tmp, std::strerror(errno)));
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const Status s =
        IoError(fmt::format("{}: {}", path_, std::strerror(errno)));
    ::unlink(tmp.c_str());
    return s;
  }
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.valid()) ::fsync(dfd.get());
  return Status::Ok();
}

wire::Key HostSecrets::SealKey() const {
  std::lock_guard lock(mutex_);
  return seal_key_;
}

std::vector<HostSecret> HostSecrets::All() const {
  std::lock_guard lock(mutex_);
  return all_;
}

HostSecret HostSecrets::Current() const {
  std::lock_guard lock(mutex_);
  return all_.front();
}

Result<HostSecret> HostSecrets::Rotate() {
  std::lock_guard lock(mutex_);
  if (all_.size() == 2) return all_.back();
  CVM_ASSIGN_OR_RETURN(wire::Key k, RandomKey());
  all_.push_back(HostSecret{all_.front().key_id + 1, k});
  if (Status s = Save(); !s.ok()) {
    all_.pop_back();
    return s;
  }
  return all_.back();
}

Status HostSecrets::Finish() {
  std::lock_guard lock(mutex_);
  if (all_.size() == 1) return Status::Ok();
  std::vector<HostSecret> old = all_;
  all_.erase(all_.begin());
  if (Status s = Save(); !s.ok()) {
    all_ = std::move(old);
    return s;
  }
  return Status::Ok();
}

}  // namespace cvm
