// Thin wrappers over OpenSSL 3 for the primitives every layer needs.
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

namespace credmq::crypto {

struct CryptoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Bytes from OpenSSL's CSPRNG (RAND_bytes). Throws CryptoError on failure.
std::string random_bytes(std::size_t count);

std::string base64_encode(std::string_view bytes);     // standard alphabet, padded
std::string base64url_encode(std::string_view bytes);  // URL alphabet, no padding
// Returns false on malformed input.
bool base64_decode(std::string_view text, std::string& out);
// Inverse of base64url_encode (URL alphabet, padding optional). False on malformed input.
bool base64url_decode(std::string_view text, std::string& out);

std::string hmac_sha1(std::string_view key, std::string_view data);  // raw 20 bytes
inline std::string hmac_sha1_base64(std::string_view key, std::string_view data) {
  return base64_encode(hmac_sha1(key, data));
}
// Constant-time equality (lengths may differ; the length itself is not secret).
bool constant_time_equal(std::string_view a, std::string_view b);

// AES-256-GCM. sealed = nonce(12) || ciphertext || tag(16). `aad` binds the ciphertext to
// its row (e.g. the key id) so a ciphertext copied to another row fails to open.
constexpr std::size_t kAesKeySize = 32;
std::string aes_gcm_seal(std::string_view key, std::string_view plaintext, std::string_view aad);
// Returns false if the key is wrong or the data was tampered with.
bool aes_gcm_open(std::string_view key, std::string_view sealed, std::string_view aad,
                  std::string& plaintext);

// Upper-case RFC 4122 version-4 UUID, e.g. "E4581CCD-62AF-44D9-B5B4-D1DBDC0E1234".
std::string uuid_v4_upper();

}  // namespace credmq::crypto
