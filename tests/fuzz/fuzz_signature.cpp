// libFuzzer target: signature V1 canonicalisation and signing (admin/src/signature.cpp).
// Input: NUL-separated fields: the HTTP method, the access key secret, then name, value,
// name, value... (the request parameters, decoded).
// Checked: percent_encode() emits only unreserved characters and upper-case %XX and decodes
// back to its input; canonical_query() leaves out Signature, keeps every other parameter once,
// sorted by encoded name; string_to_sign() is METHOD&%2F&<encoded canonical query>; what a
// client form-encodes, the server parses back to the same parameters and so to the same string
// to sign; sign() is a deterministic 28-character Base64 HMAC-SHA1 that verifies with
// constant_time_equal() and fails with another secret.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "admin_test_support.hpp"
#include "credmq/common/crypto.hpp"
#include "form.hpp"
#include "fuzz_input.hpp"
#include "signature.hpp"

namespace {

using namespace credmq;
using admin::Params;
using admin::test_support::form_encode;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_signature: check failed: %s\n", what);
    std::abort();
  }
}

bool unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not what percent_encode() may produce
}

// Checks the output alphabet and returns the decoded bytes.
std::string checked_percent_decode(std::string_view encoded) {
  std::string out;
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (encoded[i] != '%') {
      require(unreserved(encoded[i]), "percent_encode() left a reserved character");
      out.push_back(encoded[i]);
      continue;
    }
    require(i + 2 < encoded.size(), "truncated %XX");
    const int high = hex_value(encoded[i + 1]);
    const int low = hex_value(encoded[i + 2]);
    require(high >= 0 && low >= 0, "not upper-case hex after %");
    const char decoded = static_cast<char>(high * 16 + low);
    require(!unreserved(decoded), "percent_encode() encoded an unreserved character");
    out.push_back(decoded);
    i += 2;
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> fields = fuzz::split_at_nul(input);
  const std::string_view method = fields[0];
  const std::string_view secret = fields.size() > 1 ? fields[1] : std::string_view();
  Params params;
  for (std::size_t i = 2; i < fields.size(); i += 2) {
    params.insert_or_assign(std::string(fields[i]),
                            std::string(i + 1 < fields.size() ? fields[i + 1] : ""));
  }

  for (const std::string_view field : fields) {
    require(checked_percent_decode(admin::percent_encode(field)) == field,
            "percent_encode() does not decode back");
  }

  // Canonical query: every parameter but Signature, once, sorted by encoded name.
  const std::string canonical = admin::canonical_query(params);
  std::vector<std::string> encoded_names;
  std::size_t expected_count = 0;
  for (const auto& [name, value] : params) expected_count += name != "Signature";
  if (!canonical.empty()) {
    for (std::size_t start = 0;;) {
      const std::size_t end = canonical.find('&', start);
      const std::string_view pair = std::string_view(canonical).substr(
          start, end == std::string::npos ? std::string::npos : end - start);
      const std::size_t equals = pair.find('=');
      require(equals != std::string_view::npos, "canonical pair without '='");
      const std::string name = checked_percent_decode(pair.substr(0, equals));
      const std::string value = checked_percent_decode(pair.substr(equals + 1));
      require(name != "Signature", "Signature in the canonical query");
      auto it = params.find(name);
      require(it != params.end() && it->second == value, "canonical pair not a parameter");
      encoded_names.emplace_back(pair.substr(0, equals));
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  require(encoded_names.size() == expected_count, "canonical query lost a parameter");
  require(std::is_sorted(encoded_names.begin(), encoded_names.end()),
          "canonical query not sorted by encoded name");

  std::string upper(method);
  for (char& c : upper) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  const std::string to_sign = admin::string_to_sign(method, params);
  require(to_sign == upper + "&%2F&" + admin::percent_encode(canonical), "string to sign layout");

  // Client side encodes, server side parses: same parameters (empty names are dropped), same
  // string to sign.
  Params server;
  require(admin::parse_form_into(form_encode(params), server), "encoded form does not parse");
  Params expected = params;
  expected.erase("");
  require(server == expected, "server parses other parameters than the client sent");
  require(admin::string_to_sign(method, server) == to_sign || params.contains(""),
          "server string to sign differs");

  const std::string signature = admin::sign(secret, to_sign);
  require(signature.size() == 28 && signature.back() == '=', "signature is not Base64(20 bytes)");
  std::string raw;
  require(crypto::base64_decode(signature, raw) && raw.size() == 20, "signature does not decode");
  require(crypto::constant_time_equal(signature, admin::sign(secret, to_sign)),
          "signature does not verify");
  require(!crypto::constant_time_equal(signature, admin::sign(std::string(secret) + "x", to_sign)),
          "signature verifies with another secret");
  return 0;
}
