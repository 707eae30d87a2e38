#include "credmq/common/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <cctype>
#include <memory>

namespace credmq::crypto {
namespace {
constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
CipherCtx new_cipher_ctx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!ctx) throw CryptoError("EVP_CIPHER_CTX_new failed");
  return ctx;
}

// OpenSSL 3 looks an algorithm up by name in its provider store ("fetching") on every use of
// a legacy accessor (EVP_aes_256_gcm(), EVP_sha1(), HMAC()): slow, and it takes locks. Fetch
// once and keep the handle for the process's life.
const EVP_CIPHER* aes_256_gcm() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr) throw CryptoError("AES-256-GCM is not available");
  return cipher;
}

// One HMAC-SHA1 context per thread, re-keyed for each computation (EVP_MAC_init keeps the
// digest set once here).
EVP_MAC_CTX* hmac_sha1_context() {
  thread_local struct Context {
    EVP_MAC_CTX* ctx = nullptr;
    ~Context() { EVP_MAC_CTX_free(ctx); }
  } context;
  if (context.ctx == nullptr) {
    static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (mac == nullptr) throw CryptoError("HMAC is not available");
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
    if (ctx == nullptr) throw CryptoError("EVP_MAC_CTX_new failed");
    char digest[] = "SHA1";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                                 OSSL_PARAM_END};
    if (EVP_MAC_CTX_set_params(ctx, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      throw CryptoError("HMAC-SHA1 setup failed");
    }
    context.ctx = ctx;
  }
  return context.ctx;
}
}  // namespace

std::string random_bytes(std::size_t count) {
  std::string out(count, '\0');
  if (count > 0 && RAND_bytes(bytes(out), static_cast<int>(count)) != 1) {
    throw CryptoError("RAND_bytes failed");
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(bytes(out), bytes(in), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64url_encode(std::string_view in) {
  std::string out = base64_encode(in);
  while (!out.empty() && out.back() == '=') out.pop_back();
  std::replace(out.begin(), out.end(), '+', '-');
  std::replace(out.begin(), out.end(), '/', '_');
  return out;
}

bool base64_decode(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  // EVP_DecodeBlock skips surrounding whitespace and would accept what we must refuse.
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      return false;
    }
  }
  const std::size_t first_pad = text.find('=');
  if (first_pad != std::string_view::npos &&
      (text.size() - first_pad > 2 || text.find_first_not_of('=', first_pad) != text.npos)) {
    return false;
  }
  out.assign(3 * (text.size() / 4), '\0');
  int n = EVP_DecodeBlock(bytes(out), bytes(text), static_cast<int>(text.size()));
  if (n < 0) return false;
  // EVP_DecodeBlock counts padding bytes as zeros; trim them.
  std::size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++padding;
  out.resize(static_cast<std::size_t>(n) - padding);
  return true;
}

bool base64url_decode(std::string_view text, std::string& out) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '+' || c == '/') return false;
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  if (standard.size() % 4 == 1) return false;
  while (standard.size() % 4 != 0) standard.push_back('=');
  return base64_decode(standard, out);
}

std::string hmac_sha1(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  // A null key pointer would mean "keep the previous key": an empty key must point somewhere.
  static const char kNoKey = '\0';
  EVP_MAC_CTX* ctx = hmac_sha1_context();
  if (EVP_MAC_init(ctx, bytes(key.empty() ? std::string_view(&kNoKey, 0) : key), key.size(),
                   nullptr) != 1 ||
      EVP_MAC_update(ctx, bytes(data), data.size()) != 1 ||
      EVP_MAC_final(ctx, md, &len, sizeof md) != 1) {
    throw CryptoError("HMAC-SHA1 failed");
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string aes_gcm_seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  if (key.size() != kAesKeySize) throw CryptoError("AES-256-GCM key must be 32 bytes");
  std::string out = random_bytes(kNonceSize);
  out.resize(kNonceSize + plaintext.size() + kTagSize);
  auto ctx = new_cipher_ctx();
  int len = 0;
  unsigned char* cipher = bytes(out) + kNonceSize;
  if (EVP_EncryptInit_ex(ctx.get(), aes_256_gcm(), nullptr, bytes(key), bytes(out)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), cipher, &len, bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), cipher + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, cipher + plaintext.size()) !=
          1) {
    throw CryptoError("AES-256-GCM encryption failed");
  }
  return out;
}

bool aes_gcm_open(std::string_view key, std::string_view sealed, std::string_view aad,
                  std::string& plaintext) {
  if (key.size() != kAesKeySize || sealed.size() < kNonceSize + kTagSize) return false;
  const std::size_t cipher_size = sealed.size() - kNonceSize - kTagSize;
  std::string tag(sealed.substr(kNonceSize + cipher_size));
  plaintext.assign(cipher_size, '\0');
  auto ctx = new_cipher_ctx();
  int len = 0;
  const bool ok =
      EVP_DecryptInit_ex(ctx.get(), aes_256_gcm(), nullptr, bytes(key), bytes(sealed)) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), bytes(plaintext), &len, bytes(sealed) + kNonceSize,
                        static_cast<int>(cipher_size)) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, bytes(tag)) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), bytes(plaintext) + len, &len) == 1;
  if (!ok) plaintext.clear();
  return ok;
}

std::string uuid_v4_upper() {
  thread_local boost::uuids::random_generator generator;
  std::string text = boost::uuids::to_string(generator());
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return text;
}

}  // namespace credmq::crypto
