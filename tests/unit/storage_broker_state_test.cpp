// The broker_* tables: the v1 -> v2 migration, save/load round trips, replace-per-instance.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <set>

#include "credmq/storage/store.hpp"
#include "storage_temp_dir.hpp"
#include "storage_test_support.hpp"

namespace credmq::storage {
namespace {

using test_support::exec_sql;
using ::testing::ElementsAre;

constexpr const char* kInstance = "mqtt-cn-test0001";
constexpr const char* kOtherInstance = "mqtt-cn-test0002";
constexpr const char* kClient = "GID_test@@@device-001";

std::set<std::string> schema_objects(const std::filesystem::path& db_path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  std::set<std::string> names;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    names.insert(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return names;
}

const std::set<std::string> kVersion1Objects{"meta",
                                             "instances",
                                             "admin_keys",
                                             "admin_key_instances",
                                             "device_credentials",
                                             "device_credentials_by_group",
                                             "schema_version"};

// Every field set, including the optional ones, and a message shared by a queue, an
// in-flight entry and the retained set.
StoredInstanceState full_state(const std::string& instance_id) {
  StoredInstanceState state;
  state.instance_id = instance_id;
  state.messages = {
      {"a/1", std::string("bin\0ary", 7), 1, false, std::string("\x02\x01\x01", 3), std::nullopt},
      {"a/2", "two", 2, true, "", 1'900'000'000'000},
      {"a/3", "", 1, false, "", std::nullopt},
  };
  state.retained = {1};
  StoredSession session;
  session.client_id = kClient;
  session.expiry_interval = 0xFFFFFFFF;
  session.offline_since_ms = 1'800'000'000'123;
  session.credential_serial = 42;
  session.subscriptions = {{"$share/g/a/#", 1, false, false, 0, 0},
                           {"a/#", 2, true, true, 2, 268'435'455}};
  session.queue = {{1, 2, true, {7, 9}, ""}, {0, 1, false, {}, "$share/g/a/#"}};
  session.inflight = {{3, 1, 1, false, false, {5}, ""},
                      {4, std::nullopt, 2, false, true, {}, ""},
                      {65535, 0, 1, true, false, {}, "$share/g/a/#"}};
  session.incoming_qos2 = {1, 77, 65535};
  session.next_packet_id = 5;
  session.will = StoredWill{
      "will/t", "bye", 1, true, std::string("\x05\x18\x00\x00\x00\x1e", 6), 1'800'000'060'000};
  state.sessions.push_back(session);
  StoredSession plain;
  plain.client_id = "GID_test@@@device-002";
  plain.expiry_interval = 60;
  plain.offline_since_ms = 5;
  state.sessions.push_back(plain);
  return state;
}

class BrokerStateTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }
  void reopen() {
    store_.reset();
    store_ = Store::open(dir());
    store_->ensure_instance(kInstance);
  }
  std::filesystem::path dir() const { return temp_.path() / "data"; }
  std::filesystem::path db() const { return dir() / "credmq.db"; }

  testing::TempDir temp_;
  std::unique_ptr<Store> store_;
};

TEST_F(BrokerStateTest, MigratesAVersion1Database) {
  const auto credential = *store_->register_credential(kInstance, kClient).current;
  store_.reset();
  // Back to exactly what version 1 created.
  exec_sql(db(),
           "DROP TABLE broker_messages; DROP TABLE broker_retained; DROP TABLE broker_sessions; "
           "DROP TABLE broker_subscriptions; DROP TABLE broker_queue; DROP TABLE broker_inflight; "
           "DROP TABLE broker_incoming_qos2; UPDATE schema_version SET version = 1;");
  ASSERT_EQ(schema_objects(db()), kVersion1Objects);

  reopen();
  auto objects = schema_objects(db());
  for (const char* table :
       {"broker_messages", "broker_retained", "broker_sessions", "broker_subscriptions",
        "broker_queue", "broker_inflight", "broker_incoming_qos2"}) {
    EXPECT_TRUE(objects.contains(table)) << table;
  }
  // Version 1 data is untouched, and the new tables work.
  const auto again = store_->get_credential(kInstance, kClient);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->serial, credential.serial);
  EXPECT_EQ(again->access_key_secret, credential.access_key_secret);
  EXPECT_EQ(store_->credential_serial(kInstance, kClient), credential.serial);
  EXPECT_TRUE(store_->load_broker_state().empty());
  store_->save_broker_state({full_state(kInstance)});
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(full_state(kInstance)));
  reopen();  // a second open migrates nothing
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(full_state(kInstance)));
}

TEST_F(BrokerStateTest, RoundTripsEveryField) {
  store_->save_broker_state({full_state(kInstance)});
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(full_state(kInstance)));
  reopen();
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(full_state(kInstance)));
}

TEST_F(BrokerStateTest, ReplacesPerInstance) {
  store_->save_broker_state({full_state(kInstance), full_state(kOtherInstance)});
  // A later save of one instance replaces all of it and leaves the other alone.
  StoredInstanceState smaller;
  smaller.instance_id = kInstance;
  smaller.messages = {{"b/1", "x", 1, false, "", std::nullopt}};
  smaller.retained = {0};
  StoredSession session;
  session.client_id = "GID_test@@@device-009";
  session.expiry_interval = 10;
  session.queue = {{0, 1, false, {}, ""}};
  smaller.sessions = {session};
  store_->save_broker_state({smaller});
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(smaller, full_state(kOtherInstance)));

  // An instance saved with nothing left disappears.
  StoredInstanceState empty;
  empty.instance_id = kInstance;
  store_->save_broker_state({empty});
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(full_state(kOtherInstance)));

  store_->clear_broker_state();
  EXPECT_TRUE(store_->load_broker_state().empty());
}

TEST_F(BrokerStateTest, RefusesADanglingMessageIndexAndKeepsThePreviousState) {
  store_->save_broker_state({full_state(kInstance)});
  auto broken = full_state(kInstance);
  broken.sessions[0].queue.push_back({3, 1, false, {}, ""});  // there are 3 messages: 0..2
  EXPECT_THROW(store_->save_broker_state({broken}), InvalidArgument);
  EXPECT_THAT(store_->load_broker_state(), ElementsAre(full_state(kInstance)));
}

TEST_F(BrokerStateTest, LoadSkipsRowsThatReferToMissingMessages) {
  store_->save_broker_state({full_state(kInstance)});
  store_.reset();
  exec_sql(db(), "DELETE FROM broker_messages WHERE message_id = 1");
  reopen();
  const auto loaded = store_->load_broker_state();
  ASSERT_EQ(loaded.size(), 1u);
  // Message 1 is gone: messages 0 and 2 are now indexes 0 and 1.
  ASSERT_EQ(loaded[0].messages.size(), 2u);
  EXPECT_EQ(loaded[0].messages[1].topic, "a/3");
  EXPECT_TRUE(loaded[0].retained.empty());
  const auto& session = loaded[0].sessions[0];
  ASSERT_EQ(session.queue.size(), 1u);
  EXPECT_EQ(session.queue[0].message, 0u);
  // Packet 3 (message 1) is gone; the released packet 4 never had a message.
  ASSERT_EQ(session.inflight.size(), 2u);
  EXPECT_EQ(session.inflight[0].packet_id, 4);
  EXPECT_EQ(session.inflight[1].packet_id, 65535);
  EXPECT_EQ(session.inflight[1].message, std::optional<std::size_t>(0));
}

TEST_F(BrokerStateTest, CredentialSerialIsTheCurrentIssuance) {
  EXPECT_EQ(store_->credential_serial(kInstance, kClient), std::nullopt);
  const auto first = *store_->register_credential(kInstance, kClient).current;
  EXPECT_EQ(store_->credential_serial(kInstance, kClient), first.serial);
  const auto refreshed = store_->refresh_credential(kInstance, kClient);
  EXPECT_EQ(store_->credential_serial(kInstance, kClient), refreshed->current->serial);
  store_->unregister_credential(kInstance, kClient);
  EXPECT_EQ(store_->credential_serial(kInstance, kClient), std::nullopt);
}

}  // namespace
}  // namespace credmq::storage
