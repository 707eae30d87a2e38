#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <thread>

#include "credmq/auth/revocation_hub.hpp"

namespace credmq::auth {
namespace {

class FakeSession : public RevocableSession {
 public:
  void revoke() override { revocations.fetch_add(1); }
  std::atomic<int> revocations{0};
};

TEST(RevocationHub, RevokesEverySessionOfASerialAndNoOther) {
  RevocationHub hub;
  auto a1 = std::make_shared<FakeSession>();
  auto a2 = std::make_shared<FakeSession>();
  auto b = std::make_shared<FakeSession>();
  const auto epoch = hub.epoch();
  EXPECT_EQ(hub.bind(7, epoch, a1), RevocationHub::BindResult::bound);
  EXPECT_EQ(hub.bind(7, epoch, a2), RevocationHub::BindResult::bound);
  EXPECT_EQ(hub.bind(8, epoch, b), RevocationHub::BindResult::bound);
  EXPECT_EQ(hub.bound_sessions(), 3u);

  EXPECT_EQ(hub.revoke(7), 2u);
  EXPECT_EQ(a1->revocations, 1);
  EXPECT_EQ(a2->revocations, 1);
  EXPECT_EQ(b->revocations, 0);
  EXPECT_EQ(hub.bound_sessions(), 1u);
  EXPECT_EQ(hub.revoke(7), 0u);  // nothing left
  EXPECT_EQ(a1->revocations, 1);
}

TEST(RevocationHub, UnbindForgetsASession) {
  RevocationHub hub;
  auto session = std::make_shared<FakeSession>();
  hub.bind(3, hub.epoch(), session);
  hub.unbind(3, session.get());
  hub.unbind(3, session.get());  // twice is harmless
  hub.unbind(99, session.get());
  EXPECT_EQ(hub.bound_sessions(), 0u);
  EXPECT_EQ(hub.revoke(3), 0u);
  EXPECT_EQ(session->revocations, 0);
}

TEST(RevocationHub, BindingTwiceCountsOnce) {
  RevocationHub hub;
  auto session = std::make_shared<FakeSession>();
  hub.bind(3, hub.epoch(), session);
  hub.bind(3, hub.epoch(), session);
  EXPECT_EQ(hub.bound_sessions(), 1u);
  EXPECT_EQ(hub.revoke(3), 1u);
}

TEST(RevocationHub, SkipsSessionsThatAlreadyEnded) {
  RevocationHub hub;
  auto session = std::make_shared<FakeSession>();
  hub.bind(3, hub.epoch(), session);
  session.reset();
  EXPECT_EQ(hub.revoke(3), 0u);
  EXPECT_EQ(hub.bound_sessions(), 0u);
}

TEST(RevocationHub, RefusesABindWhoseLookupStartedBeforeARevocation) {
  RevocationHub hub;
  const auto epoch_before_lookup = hub.epoch();
  hub.revoke(5);  // committed while the lookup was in flight
  auto session = std::make_shared<FakeSession>();
  EXPECT_EQ(hub.bind(5, epoch_before_lookup, session), RevocationHub::BindResult::revoked);
  EXPECT_EQ(hub.bound_sessions(), 0u);
  // Another serial's revocation does not matter; a lookup started afterwards is fine.
  EXPECT_EQ(hub.bind(6, epoch_before_lookup, session), RevocationHub::BindResult::bound);
  EXPECT_EQ(hub.bind(5, hub.epoch(), session), RevocationHub::BindResult::bound);
}

TEST(RevocationHub, AnswersUnknownWhenTheRecordsWereForgotten) {
  RevocationHub hub(4);
  const auto epoch_before_lookup = hub.epoch();
  for (int serial = 100; serial < 110; ++serial) hub.revoke(serial);
  auto session = std::make_shared<FakeSession>();
  EXPECT_EQ(hub.bind(1, epoch_before_lookup, session), RevocationHub::BindResult::unknown);
  // Still remembered: the last four.
  const auto recent = hub.epoch() - 4;
  EXPECT_EQ(hub.bind(109, recent, session), RevocationHub::BindResult::revoked);
  EXPECT_EQ(hub.bind(1, recent, session), RevocationHub::BindResult::bound);
}

// Binders mimic the authenticator (epoch, then the row lookup, then bind) while a revoker
// commits the row change and then revokes. Afterwards no session of the revoked serial may
// remain bound, and every session that bind() accepted must have been revoked.
TEST(RevocationHub, StressNoSessionSurvivesItsRevocation) {
  constexpr int kRounds = 200;
  constexpr int kBinders = 4;
  RevocationHub hub(1 << 10);
  for (int round = 0; round < kRounds; ++round) {
    const std::int64_t serial = 1000 + round;
    const std::int64_t bystander_serial = -serial;
    std::atomic<bool> row_valid{true};  // the committed credential row
    std::atomic<int> binds{0};
    std::latch start(kBinders + 1);
    std::vector<std::vector<std::shared_ptr<FakeSession>>> accepted(kBinders);
    std::vector<std::shared_ptr<FakeSession>> bystanders(kBinders);
    std::vector<std::thread> threads;
    for (int b = 0; b < kBinders; ++b) {
      threads.emplace_back([&, b] {
        bystanders[b] = std::make_shared<FakeSession>();
        hub.bind(bystander_serial, hub.epoch(), bystanders[b]);
        start.arrive_and_wait();
        for (;;) {
          const auto epoch = hub.epoch();
          if (!row_valid.load()) break;  // the lookup finds no row: refused, done
          auto session = std::make_shared<FakeSession>();
          const auto result = hub.bind(serial, epoch, session);
          if (result == RevocationHub::BindResult::bound) {
            accepted[b].push_back(session);
            binds.fetch_add(1);
          } else {
            EXPECT_EQ(result, RevocationHub::BindResult::revoked);
          }
        }
      });
    }
    start.arrive_and_wait();
    // Let some binds happen first so the revocation lands mid-stream.
    while (binds.load() < 3) std::this_thread::yield();
    row_valid.store(false);  // commit
    hub.revoke(serial);
    for (auto& thread : threads) thread.join();

    std::size_t total = 0;
    for (const auto& sessions : accepted) {
      for (const auto& session : sessions) {
        ASSERT_EQ(session->revocations, 1) << "round " << round;
        ++total;
      }
    }
    EXPECT_GE(total, 3u);
    // Only the bystanders remain, untouched.
    EXPECT_EQ(hub.bound_sessions(), static_cast<std::size_t>(kBinders)) << "round " << round;
    for (const auto& bystander : bystanders) {
      EXPECT_EQ(bystander->revocations, 0);
      hub.unbind(bystander_serial, bystander.get());
    }
    ASSERT_EQ(hub.bound_sessions(), 0u);
  }
}

}  // namespace
}  // namespace credmq::auth
