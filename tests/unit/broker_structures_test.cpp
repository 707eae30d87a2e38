// The broker's own containers for per-connection state (issue 4, memory per idle connection):
// Fifo, PacketIdSet and DeadlineQueue, plus the sizes of Connection and Session.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "connection.hpp"
#include "deadline_queue.hpp"
#include "fifo.hpp"
#include "packet_id_set.hpp"

namespace credmq::broker::detail {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(BrokerStructures, SizesOfConnectionAndSession) {
  // Also bounded by static_asserts in connection.cpp; printed for docs/performance.md.
  RecordProperty("sizeof_Connection", static_cast<int>(sizeof(Connection)));
  RecordProperty("sizeof_Session", static_cast<int>(sizeof(Session)));
  std::printf("sizeof(Connection) = %zu, sizeof(Session) = %zu\n", sizeof(Connection),
              sizeof(Session));
  EXPECT_LE(sizeof(Connection), 256u);
  EXPECT_LE(sizeof(Session), 384u);
}

TEST(BrokerStructures, EmptyFifoOwnsNoMemory) {
  Fifo<std::string> fifo;
  EXPECT_TRUE(fifo.empty());
  EXPECT_EQ(fifo.capacity(), 0u);
  fifo.push_back("a");
  EXPECT_GT(fifo.capacity(), 0u);
  fifo.pop_front();
  EXPECT_TRUE(fifo.empty());
  EXPECT_LE(fifo.capacity(), 8u);  // a small capacity is kept for the next message
}

TEST(BrokerStructures, FifoKeepsOrderThroughCompaction) {
  // Never fully drained: the consumed prefix is reused instead of growing without bound.
  Fifo<std::string> fifo;
  std::size_t next_in = 0;
  std::size_t next_out = 0;
  std::size_t max_capacity = 0;
  for (int round = 0; round < 1000; ++round) {
    for (int i = 0; i < 3; ++i) fifo.push_back(std::to_string(next_in++));
    for (int i = 0; i < 2; ++i) {
      ASSERT_EQ(fifo.front(), std::to_string(next_out++));
      fifo.pop_front();
    }
    max_capacity = std::max(max_capacity, fifo.capacity());
  }
  EXPECT_EQ(fifo.size(), next_in - next_out);
  EXPECT_LE(max_capacity, 4 * fifo.size());
  std::size_t expected = next_out;
  for (const auto& item : fifo) EXPECT_EQ(item, std::to_string(expected++));
  EXPECT_EQ(expected, next_in);
}

TEST(BrokerStructures, DrainedFifoGivesBackALargeCapacity) {
  Fifo<std::string> fifo;
  for (int i = 0; i < 10'000; ++i) fifo.push_back(std::to_string(i));
  EXPECT_GE(fifo.capacity(), 10'000u);
  while (!fifo.empty()) fifo.pop_front();
  EXPECT_EQ(fifo.capacity(), 0u);
  fifo.push_back("x");
  fifo.clear();
  EXPECT_TRUE(fifo.empty());
}

TEST(BrokerStructures, PoppedItemIsReleasedAtOnce) {
  Fifo<std::shared_ptr<int>> fifo;
  auto first = std::make_shared<int>(1);
  fifo.push_back(std::shared_ptr<int>(first));
  fifo.push_back(std::make_shared<int>(2));
  fifo.pop_front();
  EXPECT_EQ(first.use_count(), 1);  // not held until the queue drains
}

TEST(BrokerStructures, PacketIdSet) {
  PacketIdSet ids;
  EXPECT_TRUE(ids.empty());
  EXPECT_TRUE(ids.insert(7));
  EXPECT_TRUE(ids.insert(3));
  EXPECT_TRUE(ids.insert(65535));
  EXPECT_FALSE(ids.insert(7));
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_TRUE(ids.contains(3));
  EXPECT_FALSE(ids.contains(4));
  EXPECT_EQ(std::vector<std::uint16_t>(ids.begin(), ids.end()),
            (std::vector<std::uint16_t>{3, 7, 65535}));
  EXPECT_EQ(ids.erase(7), 1u);
  EXPECT_EQ(ids.erase(7), 0u);
  EXPECT_FALSE(ids.contains(7));
  ids.clear();
  EXPECT_TRUE(ids.empty());
}

struct Sleeper : std::enable_shared_from_this<Sleeper> {
  explicit Sleeper(std::vector<int>& fired_log, int sleeper_id) : log(fired_log), id(sleeper_id) {}
  void on_deadline() { log.push_back(id); }
  std::vector<int>& log;
  int id;
  DeadlineHook deadline_hook_;
};

TEST(BrokerStructures, DeadlineQueueFiresInDeadlineOrder) {
  boost::asio::io_context context(1);
  auto& queue = DeadlineQueue<Sleeper>::of(context);
  std::vector<int> fired;
  std::vector<std::shared_ptr<Sleeper>> sleepers;
  for (int id = 0; id < 5; ++id) sleepers.push_back(std::make_shared<Sleeper>(fired, id));
  const auto now = Clock::now();
  queue.schedule(sleepers[0], now + 40ms);
  queue.schedule(sleepers[1], now + 10ms);
  queue.schedule(sleepers[2], now + 30ms);
  queue.schedule(sleepers[3], now + 20ms);
  queue.schedule(sleepers[4], now + 50ms);
  queue.schedule(sleepers[0], now + 5ms);   // moved earlier
  queue.schedule(sleepers[1], now + 60ms);  // moved later
  queue.cancel(*sleepers[4]);
  EXPECT_EQ(queue.size(), 4u);
  // run() returns once nothing is scheduled: an empty queue keeps no wait pending.
  context.run_for(5s);
  EXPECT_TRUE(context.stopped());
  EXPECT_EQ(fired, (std::vector<int>{0, 3, 2, 1}));
  EXPECT_EQ(queue.size(), 0u);
}

TEST(BrokerStructures, DeadlineQueueHoldsItsOwnersAndReleasesThemOnCancel) {
  boost::asio::io_context context(1);
  auto& queue = DeadlineQueue<Sleeper>::of(context);
  std::vector<int> fired;
  auto sleeper = std::make_shared<Sleeper>(fired, 1);
  std::weak_ptr<Sleeper> watch = sleeper;
  queue.schedule(sleeper, Clock::now() + 1h);
  sleeper.reset();
  EXPECT_FALSE(watch.expired());  // kept alive while scheduled, as by a pending timer wait
  Sleeper* raw = watch.lock().get();
  queue.cancel(*raw);
  // The queue held the last reference: it is released by a posted handler, not inside
  // cancel(), which the owner may be calling from one of its own member functions.
  EXPECT_FALSE(watch.expired());
  context.run_for(5s);
  EXPECT_TRUE(context.stopped());
  EXPECT_TRUE(watch.expired());
  EXPECT_TRUE(fired.empty());
}

TEST(BrokerStructures, DeadlineQueueOwnerCanRescheduleItselfWhenFired) {
  boost::asio::io_context context(1);
  std::vector<int> fired;
  struct Repeater : Sleeper {
    using Sleeper::Sleeper;
    DeadlineQueue<Repeater>* queue = nullptr;
    int left = 3;
    void on_deadline() {
      log.push_back(left);
      if (--left > 0)
        queue->schedule(std::static_pointer_cast<Repeater>(shared_from_this()), Clock::now() + 1ms);
    }
  };
  auto& repeaters = DeadlineQueue<Repeater>::of(context);
  auto repeater = std::make_shared<Repeater>(fired, 0);
  repeater->queue = &repeaters;
  repeaters.schedule(repeater, Clock::now() + 1ms);
  repeater.reset();
  context.run_for(5s);
  EXPECT_TRUE(context.stopped());
  EXPECT_EQ(fired, (std::vector<int>{3, 2, 1}));
  EXPECT_EQ(repeaters.size(), 0u);
}

}  // namespace
}  // namespace credmq::broker::detail
