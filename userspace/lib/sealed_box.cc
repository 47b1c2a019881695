#include "sealed_box.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <memory>

#include "openssl_ptr.h"

namespace cvm {
namespace {

constexpr size_t kNonce = 12, kTag = 16;
constexpr std::string_view kSalt = "cvm-sealed-box-v1";

OpenSslPtr<EVP_PKEY> PrivateKey(const wire::Key& k) {
  return OpenSslPtr<EVP_PKEY>(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_X25519, nullptr, k.data(), k.size()));
}

// The AES key for a box between `sender` and `recipient`, from my private
// key and the other party's public one.
Result<std::array<uint8_t, 32>> BoxKey(const wire::Key& my_private,
                                       const SealPublic& peer,
                                       const SealPublic& sender,
                                       const SealPublic& recipient) {
  OpenSslPtr<EVP_PKEY> mine = PrivateKey(my_private);
  OpenSslPtr<EVP_PKEY> theirs(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_X25519, nullptr, peer.data(), peer.size()));
  if (!mine || !theirs) return Internal("X25519 key set-up failed");
  OpenSslPtr<EVP_PKEY_CTX> dh(EVP_PKEY_CTX_new(mine.get(), nullptr));
  std::array<uint8_t, 32> shared{};
  size_t len = shared.size();
  if (!dh || EVP_PKEY_derive_init(dh.get()) != 1 ||
      EVP_PKEY_derive_set_peer(dh.get(), theirs.get()) != 1 ||
      EVP_PKEY_derive(dh.get(), shared.data(), &len) != 1 ||
      len != shared.size())
    return Internal("X25519 failed");
  std::string info = "cvm-host-keys";
  info.append(sender.begin(), sender.end());
  info.append(recipient.begin(), recipient.end());
  std::array<uint8_t, 32> key{};
  size_t key_len = key.size();
  OpenSslPtr<EVP_PKEY_CTX> kdf(EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr));
  const bool ok =
      kdf && EVP_PKEY_derive_init(kdf.get()) == 1 &&
      EVP_PKEY_CTX_set_hkdf_md(kdf.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_salt(
          kdf.get(), reinterpret_cast<const unsigned char*>(kSalt.data()),
          kSalt.size()) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_key(kdf.get(), shared.data(), shared.size()) ==
          1 &&
      EVP_PKEY_CTX_add1_hkdf_info(
          kdf.get(), reinterpret_cast<const unsigned char*>(info.data()),
          info.size()) == 1 &&
      EVP_PKEY_derive(kdf.get(), key.data(), &key_len) == 1;
  OPENSSL_cleanse(shared.data(), shared.size());
  if (!ok) return Internal("HKDF failed");
  return key;
}

}  // namespace

Result<SealPublic> SealPublicKey(const wire::Key& private_key) {
  OpenSslPtr<EVP_PKEY> k = PrivateKey(private_key);
  SealPublic pub{};
  size_t len = pub.size();
  if (!k || EVP_PKEY_get_raw_public_key(k.get(), pub.data(), &len) != 1 ||
      len != pub.size())
    return Internal("X25519 public key failed");
  return pub;
}

Result<std::string> Seal(const wire::Key& my_private,
                         const SealPublic& recipient, std::string_view aad,
                         std::string_view plaintext) {
  CVM_ASSIGN_OR_RETURN(SealPublic me, SealPublicKey(my_private));
  CVM_ASSIGN_OR_RETURN(auto key, BoxKey(my_private, recipient, me, recipient));
  std::string box(kNonce + plaintext.size() + kTag, '\0');
  auto* out = reinterpret_cast<unsigned char*>(box.data());
  if (RAND_bytes(out, kNonce) != 1) return Internal("RAND_bytes failed");
  OpenSslPtr<EVP_CIPHER_CTX> c(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  const bool ok =
      c &&
      EVP_EncryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, key.data(),
                         out) == 1 &&
      EVP_EncryptUpdate(c.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(
          c.get(), out + kNonce, &len,
          reinterpret_cast<const unsigned char*>(plaintext.data()),
          static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(c.get(), out + kNonce + len, &fin) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, kTag,
                          out + kNonce + plaintext.size()) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) return Internal("AES-GCM seal failed");
  return box;
}

Result<std::string> Open(const wire::Key& my_private, const SealPublic& sender,
                         const SealPublic& recipient, std::string_view aad,
                         std::string_view box) {
  if (box.size() < kNonce + kTag) return Corruption("sealed box too short");
  CVM_ASSIGN_OR_RETURN(SealPublic me, SealPublicKey(my_private));
  if (me != sender && me != recipient)
    return PermissionDenied("the box is sealed between two other nodes");
  const SealPublic& peer = me == sender ? recipient : sender;
  CVM_ASSIGN_OR_RETURN(auto key, BoxKey(my_private, peer, sender, recipient));
  const auto* in = reinterpret_cast<const unsigned char*>(box.data());
  const size_t n = box.size() - kNonce - kTag;
  std::string plain(n, '\0');
  OpenSslPtr<EVP_CIPHER_CTX> c(EVP_CIPHER_CTX_new());
  int len = 0, fin = 0;
  std::array<unsigned char, kTag> tag;
  std::copy(in + kNonce + n, in + kNonce + n + kTag, tag.begin());
  const bool ok =
      c &&
      EVP_DecryptInit_ex(c.get(), EVP_aes_256_gcm(), nullptr, key.data(), in) ==
          1 &&
      EVP_DecryptUpdate(c.get(), nullptr, &len,
                        reinterpret_cast<const unsigned char*>(aad.data()),
                        static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(c.get(), reinterpret_cast<unsigned char*>(plain.data()),
                        &len, in + kNonce, static_cast<int>(n)) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) ==
          1 &&
      EVP_DecryptFinal_ex(c.get(),
                          reinterpret_cast<unsigned char*>(plain.data()) + len,
                          &fin) == 1;
  OPENSSL_cleanse(key.data(), key.size());
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return PermissionDenied(
        "sealed box does not open (altered, or not "
        "sealed between these keys for this row)");
  }
  return plain;
}

}  // namespace cvm
