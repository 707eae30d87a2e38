#include "signature.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "credmq/common/crypto.hpp"

namespace credmq::admin {
namespace {

bool is_unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

}  // namespace

std::string percent_encode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size() * 3);
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0F]);
    }
  }
  return out;
}

std::string canonical_query(const Params& params) {
  // Sort on the encoded names: encoding does not preserve byte order (e.g. '~' vs 0x7F).
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const auto& [name, value] : params) {
    if (name == "Signature") continue;
    encoded.emplace_back(percent_encode(name), percent_encode(value));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += name;
    out.push_back('=');
    out += value;
  }
  return out;
}

std::string string_to_sign(std::string_view method, const Params& params) {
  std::string out;
  for (char c : method) out.push_back(c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c);
  out += "&%2F&";
  out += percent_encode(canonical_query(params));
  return out;
}

std::string sign(std::string_view access_key_secret, std::string_view string_to_sign) {
  std::string key(access_key_secret);
  key.push_back('&');
  return crypto::hmac_sha1_base64(key, string_to_sign);
}

}  // namespace credmq::admin
