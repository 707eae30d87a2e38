// The store under injected I/O faults (the test-only VFS shim, set in process), and the
// master-key refusals that need a database without a check value.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "credmq/common/crypto.hpp"
#include "credmq/storage/fault_injection.hpp"
#include "credmq/storage/store.hpp"
#include "storage_temp_dir.hpp"
#include "storage_test_support.hpp"

namespace credmq::storage {
namespace {

using namespace test_support;

constexpr const char* kInstance = "mqtt-cn-test0001";

class StorageFaultTest : public ::testing::TestWithParam<StorageFault> {
 protected:
  static void SetUpTestSuite() { install_fault_injection(); }
  void SetUp() override {
    set_storage_fault(StorageFault::none);
    store_ = Store::open(dir());
    store_->ensure_instance(kInstance);
  }
  void TearDown() override {
    set_storage_fault(StorageFault::none);
    store_.reset();
  }
  std::filesystem::path dir() const { return temp_.path() / "data"; }

  // Polls available() (it probes at most every 200 ms) until true or a 5 s deadline.
  bool becomes_available() {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
      if (store_->available()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  testing::TempDir temp_;
  std::unique_ptr<Store> store_;
};

TEST(StorageFaultNames, ParseAndPrint) {
  for (auto fault : {StorageFault::none, StorageFault::io_error, StorageFault::write_error,
                     StorageFault::full}) {
    EXPECT_EQ(parse_storage_fault(storage_fault_name(fault)), fault);
  }
  EXPECT_EQ(parse_storage_fault(" full\n"), StorageFault::full);
  EXPECT_EQ(parse_storage_fault(""), StorageFault::none);
  EXPECT_EQ(parse_storage_fault("disk-on-fire"), std::nullopt);
}

TEST_P(StorageFaultTest, WritesFailCleanlyAndTheStoreRecoversWithoutAReopen) {
  const auto kept = *store_->register_credential(kInstance, "GID_test@@@kept").current;
  const auto gone = *store_->register_credential(kInstance, "GID_test@@@gone").current;
  ASSERT_TRUE(store_->unregister_credential(kInstance, "GID_test@@@gone"));
  EXPECT_TRUE(store_->available());

  set_storage_fault(GetParam());
  EXPECT_THROW(store_->register_credential(kInstance, "GID_test@@@new"), StorageError);
  EXPECT_THROW(store_->refresh_credential(kInstance, "GID_test@@@kept"), StorageError);
  EXPECT_THROW(store_->unregister_credential(kInstance, "GID_test@@@kept"), StorageError);
  try {
    store_->register_credential(kInstance, "GID_test@@@new");
  } catch (const StorageError& error) {
    const int primary = error.sqlite_code & 0xFF;
    EXPECT_EQ(primary, GetParam() == StorageFault::full ? SQLITE_FULL : SQLITE_IOERR)
        << error.what();
  }
  EXPECT_FALSE(store_->available());
  // While writes fail, the credential index does not answer: CONNECTs go through available().
  std::shared_ptr<const IndexedCredential> indexed;
  EXPECT_EQ(store_->find_credential_in_memory(kept.access_key_id, indexed),
            Store::MemoryLookup::ask_the_store);
  if (GetParam() == StorageFault::io_error) {
    EXPECT_THROW(store_->get_credential(kInstance, "GID_test@@@kept"), StorageError);
    EXPECT_THROW(store_->find_credential_by_key_id(kept.access_key_id), StorageError);
  } else {
    EXPECT_EQ(store_->get_credential(kInstance, "GID_test@@@kept")->access_key_secret,
              kept.access_key_secret);
  }

  set_storage_fault(StorageFault::none);
  EXPECT_TRUE(becomes_available());
  // Nothing half-written, nothing lost.
  const auto after = store_->get_credential(kInstance, "GID_test@@@kept");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->access_key_secret, kept.access_key_secret);
  EXPECT_EQ(after->serial, kept.serial);
  EXPECT_FALSE(store_->get_credential(kInstance, "GID_test@@@new"));
  EXPECT_FALSE(store_->find_credential_by_key_id(gone.access_key_id));
  ASSERT_EQ(store_->find_credential_in_memory(kept.access_key_id, indexed),
            Store::MemoryLookup::found);
  EXPECT_EQ(indexed->serial, kept.serial);
  EXPECT_EQ(store_->find_credential_in_memory(gone.access_key_id, indexed),
            Store::MemoryLookup::absent);
  const auto fresh = store_->register_credential(kInstance, "GID_test@@@new").current;
  ASSERT_TRUE(fresh);

  store_.reset();
  store_ = Store::open(dir());
  EXPECT_EQ(store_->get_credential(kInstance, "GID_test@@@kept")->access_key_secret,
            kept.access_key_secret);
  EXPECT_EQ(store_->get_credential(kInstance, "GID_test@@@new")->access_key_secret,
            fresh->access_key_secret);
}

TEST_P(StorageFaultTest, ASuccessfulWriteEndsTheFailureAtOnce) {
  set_storage_fault(GetParam());
  EXPECT_THROW(store_->register_credential(kInstance, "GID_test@@@a"), StorageError);
  EXPECT_FALSE(store_->available());
  set_storage_fault(StorageFault::none);
  store_->register_credential(kInstance, "GID_test@@@a");
  EXPECT_TRUE(store_->available());
}

TEST_P(StorageFaultTest, ALogicErrorDoesNotMarkTheStoreUnavailable) {
  EXPECT_THROW(store_->register_credential("mqtt-cn-nope", "GID_test@@@a"), StorageError);
  EXPECT_TRUE(store_->available());
}

TEST_P(StorageFaultTest, BrokerStateSavesFailAndAreRetriedLater) {
  StoredInstanceState state;
  state.instance_id = kInstance;
  StoredSession session;
  session.client_id = "GID_test@@@s";
  state.sessions.push_back(session);
  set_storage_fault(GetParam());
  EXPECT_THROW(store_->save_broker_state({state}), StorageError);
  EXPECT_FALSE(store_->available());
  set_storage_fault(StorageFault::none);
  store_->save_broker_state({state});
  EXPECT_TRUE(store_->available());
  const auto loaded = store_->load_broker_state();
  ASSERT_EQ(loaded.size(), 1u);
  ASSERT_EQ(loaded[0].sessions.size(), 1u);
  EXPECT_EQ(loaded[0].sessions[0].client_id, "GID_test@@@s");
}

// The thread interplay of the probe (scripts/test.sh --tsan runs this): CONNECT threads call
// available() (which may run the probe write) while admin threads write and read and the fault
// comes and goes. Nothing may crash or deadlock, and once the fault is gone for good the store
// becomes available and every write succeeds.
TEST_P(StorageFaultTest, ProbesRaceWritesAndReadsWhileTheFaultComesAndGoes) {
  std::atomic<bool> stop{false};
  std::atomic<int> probes{0};
  std::atomic<int> writes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        store_->available();
        ++probes;
      }
    });
  }
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string client_id =
            "GID_test@@@race-" + std::to_string(t) + "-" + std::to_string(i % 8);
        try {
          store_->register_credential(kInstance, client_id);
          store_->get_credential(kInstance, client_id);
          ++writes;
        } catch (const StorageError&) {
        }
      }
    });
  }
  for (int round = 0; round < 6; ++round) {
    set_storage_fault(round % 2 == 0 ? GetParam() : StorageFault::none);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  set_storage_fault(StorageFault::none);
  EXPECT_TRUE(becomes_available());
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_GT(probes.load(), 0);
  EXPECT_GT(writes.load(), 0);
  EXPECT_TRUE(store_->register_credential(kInstance, "GID_test@@@after").current);
  EXPECT_TRUE(store_->available());
}

INSTANTIATE_TEST_SUITE_P(Faults, StorageFaultTest,
                         ::testing::Values(StorageFault::io_error, StorageFault::write_error,
                                           StorageFault::full),
                         [](const auto& info) {
                           std::string name(storage_fault_name(info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// A database whose check value is gone (an older file, a lost meta row) but which holds
// sealed secrets: neither a missing key nor a wrong one may be accepted (and sealed anew).
class MasterKeyWithoutCheckValueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = Store::open(dir());
    store->ensure_instance(kInstance);
    store->register_credential(kInstance, "GID_test@@@d");
    store.reset();
    exec_sql(dir() / "credmq.db", "DELETE FROM meta WHERE name = 'key_check'");
  }
  std::filesystem::path dir() const { return temp_.path() / "data"; }
  testing::TempDir temp_;
};

TEST_F(MasterKeyWithoutCheckValueTest, RefusesAMissingKeyAndDoesNotCreateOne) {
  std::filesystem::remove(dir() / "master.key");
  expect_open_refused(dir(), "opened without the master key",
                      "is missing but the database holds encrypted secrets");
  EXPECT_FALSE(std::filesystem::exists(dir() / "master.key"));
}

TEST_F(MasterKeyWithoutCheckValueTest, RefusesAKeyThatCannotOpenTheRows) {
  write_file(dir() / "master.key", crypto::random_bytes(32));
  expect_open_refused(dir(), "opened with a wrong master key",
                      "master key does not match the database");
}

TEST_F(MasterKeyWithoutCheckValueTest, TheRightKeyOpensAndSealsACheckValueAgain) {
  auto store = Store::open(dir());
  EXPECT_TRUE(store->get_credential(kInstance, "GID_test@@@d"));
  store.reset();
  EXPECT_EQ(
      query_integer(dir() / "credmq.db", "SELECT COUNT(*) FROM meta WHERE name = 'key_check'"), 1);
}

}  // namespace
}  // namespace credmq::storage
