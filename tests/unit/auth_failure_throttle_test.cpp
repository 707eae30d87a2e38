#include <gtest/gtest.h>

#include "credmq/auth/failure_throttle.hpp"

namespace credmq::auth {
namespace {

using namespace std::chrono_literals;
using Clock = FailureThrottle::Clock;

constexpr const char* kRemote = "203.0.113.7";

ThrottleLimits limits(std::size_t per_client, std::size_t per_address) {
  ThrottleLimits out;
  out.max_failures_per_client_id = per_client;
  out.max_failures_per_address = per_address;
  out.window = 10s;
  return out;
}

class ThrottleTest : public ::testing::Test {
 protected:
  // Injected time far from the clock's epoch, so nothing depends on the real clock.
  const Clock::time_point start_ = Clock::time_point{} + 1000h;
};

TEST_F(ThrottleTest, BlocksAClientIdAtItsLimit) {
  FailureThrottle throttle(limits(3, 0));
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(throttle.blocked("c1", kRemote, start_)) << i;
    throttle.record_failure("c1", kRemote, start_);
  }
  EXPECT_TRUE(throttle.blocked("c1", kRemote, start_));
  EXPECT_TRUE(throttle.blocked("c1", "198.51.100.1", start_));  // any address
  EXPECT_FALSE(throttle.blocked("c2", kRemote, start_));        // per-address limit disabled
}

TEST_F(ThrottleTest, BlocksAnAddressAtItsLimit) {
  FailureThrottle throttle(limits(0, 4));
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(throttle.blocked("c" + std::to_string(i), kRemote, start_));
    throttle.record_failure("c" + std::to_string(i), kRemote, start_);
  }
  EXPECT_TRUE(throttle.blocked("fresh-client", kRemote, start_));
  EXPECT_FALSE(throttle.blocked("fresh-client", "198.51.100.1", start_));
}

TEST_F(ThrottleTest, ForgetsFailuresAfterTheWindowSlidesPast) {
  FailureThrottle throttle(limits(4, 0));
  for (int i = 0; i < 4; ++i) throttle.record_failure("c1", kRemote, start_);
  EXPECT_TRUE(throttle.blocked("c1", kRemote, start_ + 9s));
  // Next window: the previous window's 4 failures weigh (1 - 0.5) -> 2 < 4.
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_ + 15s));
  // Two windows later nothing remains.
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_ + 25s));
}

TEST_F(ThrottleTest, WeighsThePreviousWindow) {
  FailureThrottle throttle(limits(4, 0));
  for (int i = 0; i < 4; ++i) throttle.record_failure("c1", kRemote, start_);
  // Just into the next window the old failures still nearly count in full: 4 * 0.9 + 1.
  throttle.record_failure("c1", kRemote, start_ + 11s);
  EXPECT_TRUE(throttle.blocked("c1", kRemote, start_ + 11s));
  // 4 * 0.2 + 1 < 4.
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_ + 18s));
}

TEST_F(ThrottleTest, SuccessForgetsTheClientId) {
  FailureThrottle throttle(limits(2, 0));
  throttle.record_failure("c1", kRemote, start_);
  throttle.record_failure("c1", kRemote, start_);
  EXPECT_TRUE(throttle.blocked("c1", kRemote, start_));
  throttle.record_success("c1");
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_));
}

TEST_F(ThrottleTest, ExemptsLoopbackAddressesByDefault) {
  FailureThrottle throttle(limits(0, 2));
  for (const char* loopback : {"127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"}) {
    for (int i = 0; i < 5; ++i) throttle.record_failure("c", loopback, start_);
    EXPECT_FALSE(throttle.blocked("c", loopback, start_)) << loopback;
  }
  for (const char* remote : {"128.0.0.1", "::2", "10.0.0.1"}) {
    for (int i = 0; i < 2; ++i) throttle.record_failure("c", remote, start_);
    EXPECT_TRUE(throttle.blocked("c", remote, start_)) << remote;
  }
}

TEST_F(ThrottleTest, ThrottlesLoopbackWhenAsked) {
  ThrottleLimits config = limits(0, 2);
  config.throttle_loopback_addresses = true;
  FailureThrottle throttle(config);
  throttle.record_failure("a", "127.0.0.1", start_);
  throttle.record_failure("b", "127.0.0.1", start_);
  EXPECT_TRUE(throttle.blocked("c", "127.0.0.1", start_));
}

TEST_F(ThrottleTest, LoopbackStillCountsPerClientId) {
  FailureThrottle throttle(limits(2, 2));
  throttle.record_failure("c1", "127.0.0.1", start_);
  throttle.record_failure("c1", "127.0.0.1", start_);
  EXPECT_TRUE(throttle.blocked("c1", "127.0.0.1", start_));
  EXPECT_FALSE(throttle.blocked("c2", "127.0.0.1", start_));
}

TEST_F(ThrottleTest, ZeroLimitsDisableThrottling) {
  FailureThrottle throttle(limits(0, 0));
  for (int i = 0; i < 1000; ++i) throttle.record_failure("c1", kRemote, start_);
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_));
}

TEST_F(ThrottleTest, PrunesIdleEntries) {
  // Behavioural check: after pruning, a key that was over its limit starts from zero again
  // even though it is then reused within a single window.
  FailureThrottle throttle(limits(3, 0));
  for (int i = 0; i < 10'000; ++i) {
    throttle.record_failure("client-" + std::to_string(i), kRemote, start_);
  }
  for (int i = 0; i < 3; ++i) throttle.record_failure("c1", kRemote, start_);
  EXPECT_TRUE(throttle.blocked("c1", kRemote, start_));
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_ + 21s));
  throttle.record_failure("c1", kRemote, start_ + 21s);
  EXPECT_FALSE(throttle.blocked("c1", kRemote, start_ + 21s));
}

}  // namespace
}  // namespace credmq::auth
