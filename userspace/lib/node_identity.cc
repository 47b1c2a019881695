#include "node_identity.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/random.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>

#include "hex.h"
#include "log.h"
#include "unique_fd.h"

namespace cvm {

namespace {

constexpr std::string_view kTokenPrefix = "cvmjoin:";

// The key file: written whole to a temporary file, synced, renamed.
Status WriteKeyFile(const std::string& path, const std::string& key) {
  std::error_code ec;
  const auto dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  const std::string tmp = path + ".new";
  // A fresh file of our own, never one found there (its mode, a symlink).
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(
      tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return IoError(
        fmt::format("cannot write node key {}: {}", tmp, strerror(errno)));
  }
  const std::string line = key + "\n";
  if (::write(fd.get(), line.data(), line.size()) !=
          static_cast<ssize_t>(line.size()) ||
      ::fsync(fd.get()) != 0) {
    return IoError(
        fmt::format("cannot write node key {}: {}", tmp, strerror(errno)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return IoError(
        fmt::format("cannot rename {} to {}: {}", tmp, path, strerror(errno)));
  }
  // The rename itself durable before the store names the key.
  UniqueFd d(::open(dir.empty() ? "." : dir.c_str(),
                    O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!d.valid() || ::fsync(d.get()) != 0) {
    return IoError(fmt::format("cannot sync the directory of {}: {}", path,
                               strerror(errno)));
  }
  return {};
}

Result<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("no node key at {}", path));
  std::string key;
  std::getline(in, key);
  if (!IsLowerHex(key, 64)) {
    return Corruption(fmt::format("node key {} is not 64 hex digits", path));
  }
  return key;
}

}  // namespace

std::string FormatJoinToken(const JoinToken& t) {
  return fmt::format("{}{}:{}", kTokenPrefix, t.host, t.secret);
}

Result<JoinToken> ParseJoinToken(std::string_view text) {
  const auto bad = [] {
    return InvalidArgument(
        "not a join token (cvmjoin:HOST:64 hex digits, as 'cvmadm host add' "
        "printed it)");
  };
  if (!text.starts_with(kTokenPrefix)) return bad();
  text.remove_prefix(kTokenPrefix.size());
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  JoinToken t{std::string(text.substr(0, colon)),
              std::string(text.substr(colon + 1))};
  if (t.host.empty() || !IsLowerHex(t.secret, 64)) return bad();
  CVM_RETURN_IF_ERROR(ValidateName("host", t.host));
  return t;
}

Result<std::string> RandomSecret() {
  unsigned char buf[32];
  if (::getrandom(buf, sizeof(buf), 0) != static_cast<ssize_t>(sizeof(buf))) {
    return IoError(fmt::format("getrandom: {}", strerror(errno)));
  }
  return HexEncode(
      std::string_view(reinterpret_cast<const char*>(buf), sizeof(buf)));
}

std::string Sha256Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), len));
}

NodeIdentity::NodeIdentity(MetadataStore& store, std::string host,
                           std::string key_path, bool cluster)
    : store_(store),
      host_(std::move(host)),
      key_path_(std::move(key_path)),
      cluster_(cluster) {
  joined_ = !cluster_;
}

std::string NodeIdentity::Check() {
  std::lock_guard lock(mutex_);
  if (!cluster_) return "";
  auto h = store_.GetHost(host_);
  std::string why;
  if (!h.ok()) {
    why = h.status().code() == Code::kNotFound
              ? fmt::format(
                    "host '{}' is not in the cluster: add it with "
                    "'cvmadm host add {}' on any node, then run "
                    "'cvmadm join TOKEN' here",
                    host_, host_)
              : h.status().message();
  } else if (!h->join_hash.empty()) {
    why = fmt::format(
        "host '{}' has not joined yet: run 'cvmadm join TOKEN' here with the "
        "token 'cvmadm host add' (or 'cvmadm host token {}') printed",
        host_, host_);
  } else if (h->key_hash.empty()) {
    why = fmt::format(
        "host '{}' has no join token (added before hosts joined): 'cvmadm "
        "host token {}' on a joined node issues one",
        host_, host_);
  } else {
    auto key = ReadKeyFile(key_path_);
    if (!key.ok()) {
      why = fmt::format(
          "host '{}' has joined, but {}: 'cvmadm host token {}' "
          "on another node issues a new token",
          host_, key.status().message(), host_);
    } else if (Sha256Hex(*key) != h->key_hash) {
      why = fmt::format(
          "the node key {} is not the one host '{}' joined with (another "
          "machine's, or an older one): 'cvmadm host token {}' issues a new "
          "token",
          key_path_, host_, host_);
    }
  }
  joined_ = why.empty();
  return why;
}

Result<nlohmann::json> NodeIdentity::Join(std::string_view text) {
  std::lock_guard lock(mutex_);
  if (!cluster_) {
    return InvalidArgument(
        "joining needs the cluster store (cvmd --store etcd://...)");
  }
  CVM_ASSIGN_OR_RETURN(JoinToken token, ParseJoinToken(text));
  if (token.host != host_) {
    return InvalidArgument(fmt::format(
        "this token is for host '{}'; this cvmd is host '{}' (--host)",
        token.host, host_));
  }
  // A joined node's key stays: a second join (a spent token) must not
  // overwrite the key its host record names.
  if (joined_) {
    return AlreadyExists(
        fmt::format("this cvmd has joined the cluster as host '{}' already "
                    "(its key: {})",
                    host_, key_path_));
  }
  CVM_ASSIGN_OR_RETURN(Host before, store_.GetHost(host_));
  if (before.join_hash != Sha256Hex(token.secret)) {
    return PermissionDenied(fmt::format(
        "the join token is not host '{}''s current one (used already, or "
        "replaced by 'cvmadm host token {}')",
        host_, host_));
  }
  // The key is on disk before the store names it: a crash in between
  // leaves the token unspent, and joining again works.
  CVM_ASSIGN_OR_RETURN(std::string key, RandomSecret());
  CVM_RETURN_IF_ERROR(WriteKeyFile(key_path_, key));
  CVM_ASSIGN_OR_RETURN(
      Host h, store_.JoinHost(host_, Sha256Hex(token.secret), Sha256Hex(key)));
  joined_ = true;
  LogInfo("joined the cluster as host '{}' (node key {})", h.name, key_path_);
  return nlohmann::json{
      {"host", h.name}, {"id", h.id}, {"node_key", key_path_}};
}

Result<std::string> NodeIdentity::IssueToken(std::string_view host) {
  CVM_ASSIGN_OR_RETURN(std::string secret, RandomSecret());
  CVM_RETURN_IF_ERROR(store_.SetJoinHash(host, Sha256Hex(secret)).status());
  return FormatJoinToken({std::string(host), secret});
}

}  // namespace cvm
