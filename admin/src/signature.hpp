// Alibaba Cloud RPC signature V1 (HMAC-SHA1), admin-api.md "Signature V1". Pure functions,
// no I/O, so they can be unit-tested against the spec vectors and fuzzed.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace credmq::admin {

// Decoded request parameters, name -> value. A later duplicate replaces an earlier one.
using Params = std::map<std::string, std::string, std::less<>>;

// RFC 3986 percent-encoding over the raw (UTF-8) bytes: keeps A-Z a-z 0-9 - _ . ~ and
// encodes every other byte as %XX with upper-case hex (space -> %20, '*' -> %2A).
std::string percent_encode(std::string_view bytes);

// name=value pairs, both percent-encoded, sorted by encoded name in byte order, joined with
// '&'. The "Signature" parameter is left out.
std::string canonical_query(const Params& params);

// METHOD & %2F & percent_encode(canonical query); `method` is upper-cased.
std::string string_to_sign(std::string_view method, const Params& params);

// Base64(HMAC-SHA1(key = access_key_secret + "&", string_to_sign)).
std::string sign(std::string_view access_key_secret, std::string_view string_to_sign);

}  // namespace credmq::admin
