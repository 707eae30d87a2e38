// Pure parts of the admin API: signature V1 (spec vectors), form decoding, parameter rules,
// the nonce replay cache and the per-account rate limiter.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string_view>

// Internal headers of credmq_admin (not installed), reached relative to this file.
#include "../../admin/src/form.hpp"
#include "../../admin/src/guards.hpp"
#include "../../admin/src/rules.hpp"
#include "../../admin/src/signature.hpp"

namespace credmq::admin {
namespace {

Params unregister_vector_params() {
  return {{"AccessKeyId", "testid"},
          {"Action", "UnRegisterDeviceCredential"},
          {"ClientId", "GID_test@@@device-001"},
          {"InstanceId", "mqtt-cn-test0001"},
          {"Format", "JSON"},
          {"SignatureMethod", "HMAC-SHA1"},
          {"SignatureNonce", "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d"},
          {"SignatureVersion", "1.0"},
          {"Timestamp", "2020-05-19T10:33:56Z"},
          {"Version", "2020-04-20"}};
}

TEST(AdminSignature, EncodingVector) {
  EXPECT_EQ(percent_encode("a b*c~d+\xC3\xA9/!'()=&"), "a%20b%2Ac~d%2B%C3%A9%2F%21%27%28%29%3D%26");
  EXPECT_EQ(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(percent_encode(std::string("\x00\x7F\xFF", 3)), "%00%7F%FF");
}

TEST(AdminSignature, CanonicalQueryOfTheUnRegisterVector) {
  EXPECT_EQ(canonical_query(unregister_vector_params()),
            "AccessKeyId=testid&Action=UnRegisterDeviceCredential&ClientId=GID_test%40%40%"
            "40device-001&Format=JSON&InstanceId=mqtt-cn-test0001&SignatureMethod=HMAC-SHA1&"
            "SignatureNonce=1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d&SignatureVersion=1.0&Timestamp="
            "2020-05-19T10%3A33%3A56Z&Version=2020-04-20");
}

TEST(AdminSignature, CanonicalQueryLeavesOutSignature) {
  Params params = unregister_vector_params();
  params["Signature"] = "whatever";
  EXPECT_EQ(canonical_query(params), canonical_query(unregister_vector_params()));
}

TEST(AdminSignature, SortsByEncodedName) {
  // '~' (0x7E) sorts before 0x7F raw, but after its encoding "%7F".
  Params params{{"~", "1"}, {"\x7F", "2"}};
  EXPECT_EQ(canonical_query(params), "%7F=2&~=1");
}

TEST(AdminSignature, GetAndPostVectors) {
  const Params params = unregister_vector_params();
  EXPECT_EQ(sign("testsecret", string_to_sign("GET", params)), "ZLWvF0tdJInM06JYZsMWF5/94Z0=");
  EXPECT_EQ(sign("testsecret", string_to_sign("POST", params)), "nUiLOJjT9aeJ3Sj6IOIEE2N9bmA=");
  EXPECT_EQ(string_to_sign("get", params), string_to_sign("GET", params));
  EXPECT_TRUE(string_to_sign("POST", params).starts_with("POST&%2F&AccessKeyId%3Dtestid%26"));
}

TEST(AdminSignature, PublishedDescribeRegionsVector) {
  const Params params{{"AccessKeyId", "testid"},
                      {"Action", "DescribeRegions"},
                      {"Format", "XML"},
                      {"SignatureMethod", "HMAC-SHA1"},
                      {"SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"},
                      {"SignatureVersion", "1.0"},
                      {"Timestamp", "2016-02-23T12:46:24Z"},
                      {"Version", "2014-05-26"}};
  EXPECT_EQ(sign("testsecret", string_to_sign("GET", params)), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
}

TEST(AdminForm, DecodesPlusPercentAndLastDuplicateWins) {
  Params params;
  ASSERT_TRUE(parse_form_into("a=x+y&b=%C3%A9%2B&a=z&flag&=ignored&c=", params));
  EXPECT_EQ(params, (Params{{"a", "z"}, {"b", "\xC3\xA9+"}, {"flag", ""}, {"c", ""}}));
  // A body parsed after the query overrides it.
  ASSERT_TRUE(parse_form_into("b=body", params));
  EXPECT_EQ(params["b"], "body");
}

TEST(AdminForm, EmptyAndMalformedInput) {
  Params params;
  EXPECT_TRUE(parse_form_into("", params));
  EXPECT_TRUE(params.empty());
  EXPECT_FALSE(parse_form_into("a=%GZ", params));
  EXPECT_FALSE(parse_form_into("a=%4", params));
}

TEST(AdminRules, ClientIds) {
  EXPECT_TRUE(is_valid_client_id("GID_test@@@device-001"));
  EXPECT_TRUE(is_valid_client_id("GID-abc@@@d"));
  EXPECT_TRUE(is_valid_client_id("GID_a_b-c@@@dev_1-X"));
  // 64 characters exactly.
  EXPECT_TRUE(is_valid_client_id("GID_test@@@" + std::string(53, 'd')));
  EXPECT_FALSE(is_valid_client_id("GID_test@@@" + std::string(54, 'd')));
  EXPECT_FALSE(is_valid_client_id(""));
  EXPECT_FALSE(is_valid_client_id("device-001"));
  EXPECT_FALSE(is_valid_client_id("GID_test@@@"));
  EXPECT_FALSE(is_valid_client_id("GID_ab@@@device"));    // group id of 6 characters
  EXPECT_FALSE(is_valid_client_id("gid_test@@@device"));  // prefix is case-sensitive
  EXPECT_FALSE(is_valid_client_id("GIDXtest@@@device"));
  EXPECT_FALSE(is_valid_client_id("GID_te.st@@@device"));
  EXPECT_FALSE(is_valid_client_id("GID_test@@@dev/ice"));
  EXPECT_FALSE(is_valid_client_id("GID_test@@@dev:1"));
  EXPECT_FALSE(is_valid_client_id("GID_test@@@dev@@@x"));
  EXPECT_FALSE(is_valid_client_id("GID_test@@@dev ice"));
}

TEST(AdminRules, GroupIds) {
  EXPECT_TRUE(is_valid_group_id("GID_abc"));
  EXPECT_TRUE(is_valid_group_id("GID-" + std::string(60, 'x')));
  EXPECT_FALSE(is_valid_group_id("GID-" + std::string(61, 'x')));
  EXPECT_FALSE(is_valid_group_id("GID_ab"));
  EXPECT_FALSE(is_valid_group_id("XID_abc"));
  EXPECT_FALSE(is_valid_group_id("GID_a@c"));
}

TEST(AdminRules, Timestamps) {
  using namespace std::chrono;
  const auto parsed = parse_timestamp("2020-05-19T10:33:56Z");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(duration_cast<seconds>(parsed->time_since_epoch()).count(), 1589884436);
  const auto fractional = parse_timestamp("2020-05-19T10:33:56.789Z");
  ASSERT_TRUE(fractional);
  EXPECT_EQ(*fractional, *parsed);
  EXPECT_FALSE(parse_timestamp("2020-05-19T10:33:56"));
  EXPECT_FALSE(parse_timestamp("2020-05-19 10:33:56Z"));
  EXPECT_FALSE(parse_timestamp("2020-02-30T10:33:56Z"));
  EXPECT_FALSE(parse_timestamp("2020-05-19T24:00:00Z"));
  EXPECT_FALSE(parse_timestamp("2020-05-19T10:33:56.Z"));
  EXPECT_FALSE(parse_timestamp("2020-05-19T10:33:56+08:00"));
  EXPECT_FALSE(parse_timestamp("1589884436"));
  EXPECT_FALSE(parse_timestamp(""));
}

// Found by fuzz_admin_request: years outside 1678-2261 overflowed the nanosecond time point
// (UBSan: signed integer overflow), before the signature was even checked. They are clamped
// to 1970 / 2200, far outside any timestamp window.
TEST(AdminRules, TimestampsOutsideTheClockRangeAreClampedWithoutOverflow) {
  using namespace std::chrono;
  const auto seconds_of = [](std::string_view text) {
    const auto parsed = parse_timestamp(text);
    return parsed ? duration_cast<seconds>(parsed->time_since_epoch()).count() : -1;
  };
  constexpr std::int64_t k2200 = 7'258'118'400;
  EXPECT_EQ(seconds_of("4040-04-20T12:00:00Z"), k2200);
  EXPECT_EQ(seconds_of("9999-12-31T23:59:59.999Z"), k2200);
  EXPECT_EQ(seconds_of("2262-04-12T00:00:00Z"), k2200);
  EXPECT_EQ(seconds_of("2200-01-01T00:00:00Z"), k2200);
  EXPECT_EQ(seconds_of("2199-12-31T23:59:59Z"), k2200 - 1);
  EXPECT_EQ(seconds_of("0000-01-01T00:00:00Z"), 0);
  EXPECT_EQ(seconds_of("1677-09-21T00:12:43Z"), 0);
  EXPECT_EQ(seconds_of("1969-12-31T23:59:59Z"), 0);
  EXPECT_EQ(seconds_of("1970-01-01T00:00:01Z"), 1);
}

TEST(AdminRules, BoundedInts) {
  EXPECT_EQ(parse_bounded_int("1", 1, 100), 1);
  EXPECT_EQ(parse_bounded_int("100", 1, 100), 100);
  EXPECT_FALSE(parse_bounded_int("0", 1, 100));
  EXPECT_FALSE(parse_bounded_int("101", 1, 100));
  EXPECT_FALSE(parse_bounded_int("-1", 1, 100));
  EXPECT_FALSE(parse_bounded_int("1a", 1, 100));
  EXPECT_FALSE(parse_bounded_int("", 1, 100));
  EXPECT_FALSE(parse_bounded_int("99999999999999999999", 1, 100));
}

TEST(AdminReplayCache, RefusesAReplayUntilTheNonceExpires) {
  using Clock = ReplayCache::Clock;
  ReplayCache cache(10);
  const Clock::time_point now{std::chrono::hours(1000)};
  const auto expiry = now + std::chrono::minutes(15);
  EXPECT_EQ(cache.remember("key", "n1", expiry, now), ReplayCache::Result::fresh);
  EXPECT_EQ(cache.remember("key", "n1", expiry, now), ReplayCache::Result::replayed);
  // Another key may use the same nonce.
  EXPECT_EQ(cache.remember("other", "n1", expiry, now), ReplayCache::Result::fresh);
  EXPECT_EQ(cache.remember("key", "n1", expiry, expiry), ReplayCache::Result::replayed);
  // Pruned once past its expiry.
  const auto later = expiry + std::chrono::seconds(1);
  EXPECT_EQ(cache.remember("key", "n2", later + std::chrono::minutes(15), later),
            ReplayCache::Result::fresh);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(AdminReplayCache, FullCacheRefusesInsteadOfForgetting) {
  using Clock = ReplayCache::Clock;
  ReplayCache cache(2);
  const Clock::time_point now{std::chrono::hours(1000)};
  const auto expiry = now + std::chrono::minutes(15);
  EXPECT_EQ(cache.remember("k", "a", expiry, now), ReplayCache::Result::fresh);
  EXPECT_EQ(cache.remember("k", "b", expiry, now), ReplayCache::Result::fresh);
  EXPECT_EQ(cache.remember("k", "c", expiry, now), ReplayCache::Result::full);
  EXPECT_EQ(cache.remember("k", "a", expiry, now), ReplayCache::Result::replayed);
  const auto later = expiry + std::chrono::seconds(1);
  EXPECT_EQ(cache.remember("k", "c", later, later), ReplayCache::Result::fresh);
}

TEST(AdminRateLimiter, BurstOfOneSecondThenRefill) {
  using Clock = AccountRateLimiter::Clock;
  AccountRateLimiter limiter(5);
  const Clock::time_point start{std::chrono::hours(1)};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.try_acquire("k", start)) << i;
  EXPECT_FALSE(limiter.try_acquire("k", start));
  EXPECT_TRUE(limiter.try_acquire("other", start));  // per account
  EXPECT_TRUE(limiter.try_acquire("k", start + std::chrono::milliseconds(200)));
  EXPECT_FALSE(limiter.try_acquire("k", start + std::chrono::milliseconds(200)));
  // Idle time refills at most one second's worth.
  const auto later = start + std::chrono::hours(1);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.try_acquire("k", later)) << i;
  EXPECT_FALSE(limiter.try_acquire("k", later));
}

TEST(AdminRateLimiter, FractionalRateStillAllowsOneCall) {
  using Clock = AccountRateLimiter::Clock;
  AccountRateLimiter limiter(0.5);
  const Clock::time_point start{std::chrono::hours(1)};
  EXPECT_TRUE(limiter.try_acquire("k", start));
  EXPECT_FALSE(limiter.try_acquire("k", start + std::chrono::seconds(1)));
  EXPECT_TRUE(limiter.try_acquire("k", start + std::chrono::seconds(2)));
}

}  // namespace
}  // namespace credmq::admin
