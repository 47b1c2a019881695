#include "tls_cert.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "openssl_ptr.h"

namespace cvm {
namespace {

std::string OpensslError(std::string_view what) {
  const unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  return fmt::format("{}: {}", what, buf);
}

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 ||
         inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// Opens `path` for writing with `mode`, refusing one that exists.
Result<OpenSslPtr<FILE>> CreateFile(const std::string& path, mode_t mode) {
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return IoError(fmt::format("cannot create {}: {}", path, strerror(errno)));
  // The mode asked for, whatever the process umask (cvmd's is 077).
  if (::fchmod(fd, mode) != 0) {
    ::close(fd);
    return IoError(fmt::format("chmod {}: {}", path, strerror(errno)));
  }
  FILE* f = ::fdopen(fd, "w");
  if (!f) {
    ::close(fd);
    return IoError(fmt::format("fdopen {}: {}", path, strerror(errno)));
  }
  return OpenSslPtr<FILE>(f);
}

Status Generate(const std::string& cert_path, const std::string& key_path,
                const std::vector<std::string>& names) {
  OpenSslPtr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  if (!key) return Internal(OpensslError("EC key generation"));
  OpenSslPtr<X509> cert(X509_new());
  if (!cert) return Internal(OpensslError("X509_new"));
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1)
    return Internal(OpensslError("RAND_bytes"));
  serial[0] &= 0x7f;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  if (!bn) return Internal(OpensslError("BN_bin2bn"));
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const std::string cn = "cvmd " + names.front();
  X509_NAME_add_entry_by_txt(subject, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("CVM"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), subject);
  std::string san;
  for (const std::string& n : names) {
    if (!san.empty()) san += ",";
    san += (IsIpAddress(n) ? "IP:" : "DNS:") + n;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] :
       {std::pair<int, std::string>{NID_subject_alt_name, san},
        // Not a CA: trusted as itself (--ca-cert), it vouches for no
        // other certificate.
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, "serverAuth"}}) {
    OpenSslPtr<X509_EXTENSION> ext(
        X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1)
      return Internal(OpensslError("certificate extension " + value));
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
    return Internal(OpensslError("signing the certificate"));

  std::error_code ec;
  for (const std::string& p : {cert_path, key_path}) {
    std::filesystem::create_directories(std::filesystem::path(p).parent_path(),
                                        ec);
  }
  {
    CVM_ASSIGN_OR_RETURN(OpenSslPtr<FILE> f, CreateFile(key_path, 0600));
    if (PEM_write_PrivateKey(f.get(), key.get(), nullptr, nullptr, 0, nullptr,
                             nullptr) != 1)
      return IoError(OpensslError("writing " + key_path));
  }
  CVM_ASSIGN_OR_RETURN(OpenSslPtr<FILE> f, CreateFile(cert_path, 0644));
  if (PEM_write_X509(f.get(), cert.get()) != 1)
    return IoError(OpensslError("writing " + cert_path));
  return Status::Ok();
}

}  // namespace

Status EnsureSelfSignedCert(const std::string& cert_path,
                            const std::string& key_path,
                            const std::vector<std::string>& names) {
  if (names.empty()) return InvalidArgument("a certificate needs a name");
  const bool have_cert = std::filesystem::exists(cert_path);
  const bool have_key = std::filesystem::exists(key_path);
  if (!have_cert && !have_key) return Generate(cert_path, key_path, names);
  if (have_cert != have_key) {
    return InvalidArgument(fmt::format(
        "{} exists but {} does not: give both or neither",
        have_cert ? cert_path : key_path, have_cert ? key_path : cert_path));
  }
  struct stat st;
  if (::stat(key_path.c_str(), &st) != 0)
    return IoError(fmt::format("stat {}: {}", key_path, strerror(errno)));
  if ((st.st_mode & 077) != 0 || st.st_uid != ::geteuid()) {
    return PermissionDenied(fmt::format(
        "{} is mode {:04o} owned by uid {}: a private key must be 0600 and "
        "this user's",
        key_path, st.st_mode & 07777, st.st_uid));
  }
  return Status::Ok();
}

Result<std::string> CertFingerprint(const std::string& cert_path) {
  OpenSslPtr<FILE> f(std::fopen(cert_path.c_str(), "re"));
  if (!f)
    return IoError(
        fmt::format("cannot open {}: {}", cert_path, strerror(errno)));
  OpenSslPtr<X509> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument(OpensslError("reading " + cert_path));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &len) != 1)
    return Internal(OpensslError("certificate digest"));
  std::string out;
  for (unsigned int i = 0; i < len; ++i)
    out += fmt::format("{}{:02X}", i ? ":" : "", md[i]);
  return out;
}

}  // namespace cvm
