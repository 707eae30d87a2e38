#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include "credmq/common/crypto.hpp"
#include "credmq/storage/store.hpp"
#include "storage_temp_dir.hpp"
#include "storage_test_support.hpp"

namespace credmq::storage {
namespace {

using ::testing::ElementsAre;
using namespace test_support;

constexpr const char* kInstance = "mqtt-cn-test0001";
constexpr const char* kOtherInstance = "mqtt-cn-test0002";
constexpr const char* kClient = "GID_test@@@device-001";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// True if `text` is `prefix` followed by `length` characters of `alphabet`. (std::regex is
// avoided: GCC 12 warns inside it under the sanitizer build.)
bool has_shape(std::string_view text, std::string_view prefix, std::size_t length,
               std::string_view alphabet) {
  return text.size() == prefix.size() + length && text.substr(0, prefix.size()) == prefix &&
         text.find_first_not_of(alphabet, prefix.size()) == std::string_view::npos;
}
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kUpperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

unsigned mode_of(const std::filesystem::path& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0);
  return info.st_mode & 07777;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen() {
    store_.reset();
    store_ = Store::open(dir());
    store_->ensure_instance(kInstance);
    store_->ensure_instance(kOtherInstance);
  }

  // Copies one row's ciphertext onto another row behind the store's back (its AAD, the key
  // id, then no longer matches), then reopens the store.
  void copy_ciphertext_and_reopen(const std::string& from_key_id, const std::string& to_key_id) {
    store_.reset();
    const std::string sql =
        "UPDATE device_credentials SET secret_enc = (SELECT secret_enc FROM device_credentials "
        "WHERE access_key_id = '" +
        from_key_id + "') WHERE access_key_id = '" + to_key_id + "'";
    exec_sql(dir() / "credmq.db", sql.c_str());
    reopen();
  }

  std::filesystem::path dir() const { return temp_.path() / "data"; }

  testing::TempDir temp_;
  std::unique_ptr<Store> store_;
};

TEST_F(StoreTest, CreatesPrivateDirectoryAndFiles) {
  EXPECT_EQ(mode_of(dir()), 0700u);
  EXPECT_EQ(mode_of(dir() / "master.key"), 0600u);
  EXPECT_EQ(std::filesystem::file_size(dir() / "master.key"), 32u);
  EXPECT_EQ(mode_of(dir() / "credmq.db"), 0600u);
}

TEST_F(StoreTest, UsesWalAndRecordsSchemaVersion) {
  EXPECT_EQ(query_integer(dir() / "credmq.db", "SELECT version FROM schema_version"),
            kSchemaVersion);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir() / "credmq.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(StoreTest, MigrationsAreIdempotentOnReopen) {
  const auto credential = *store_->register_credential(kInstance, kClient).current;
  reopen();
  reopen();
  EXPECT_EQ(query_integer(dir() / "credmq.db", "SELECT COUNT(*) FROM schema_version"), 1);
  EXPECT_EQ(query_integer(dir() / "credmq.db", "SELECT version FROM schema_version"),
            kSchemaVersion);
  const auto again = store_->get_credential(kInstance, kClient);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->access_key_id, credential.access_key_id);
  EXPECT_EQ(again->access_key_secret, credential.access_key_secret);
  EXPECT_EQ(again->serial, credential.serial);
  EXPECT_EQ(again->create_time_ms, credential.create_time_ms);
  EXPECT_THAT(store_->instances(), ElementsAre(kInstance, kOtherInstance));
}

TEST_F(StoreTest, RefusesADatabaseFromANewerBuild) {
  store_.reset();
  exec_sql(dir() / "credmq.db", "UPDATE schema_version SET version = 999");
  expect_open_refused(dir(), "opened a newer schema", "newer");
}

TEST_F(StoreTest, IssuesWellFormedDeviceCredentials) {
  const auto change = store_->register_credential(kInstance, kClient);
  EXPECT_FALSE(change.revoked_serial);
  ASSERT_TRUE(change.current);
  const auto& credential = *change.current;
  EXPECT_EQ(credential.instance_id, kInstance);
  EXPECT_EQ(credential.client_id, kClient);
  // "DC." + base64url(16 bytes) = 22 characters; secret: base64url(32 bytes) = 43.
  EXPECT_TRUE(has_shape(credential.access_key_id, "DC.", 22, kBase64Url))
      << credential.access_key_id;
  EXPECT_TRUE(has_shape(credential.access_key_secret, "DC.", 43, kBase64Url));
  EXPECT_GT(credential.create_time_ms, 1'600'000'000'000);
  EXPECT_EQ(credential.create_time_ms, credential.update_time_ms);
  EXPECT_GT(credential.serial, 0);

  const auto by_key = store_->find_credential_by_key_id(credential.access_key_id);
  ASSERT_TRUE(by_key);
  EXPECT_EQ(by_key->instance_id, kInstance);
  EXPECT_EQ(by_key->client_id, kClient);
  EXPECT_EQ(by_key->access_key_secret, credential.access_key_secret);
  EXPECT_EQ(by_key->serial, credential.serial);
  EXPECT_FALSE(store_->find_credential_by_key_id("DC.unknown"));
  EXPECT_FALSE(store_->get_credential(kInstance, "GID_test@@@other"));
  EXPECT_FALSE(store_->get_credential(kOtherInstance, kClient));
}

TEST_F(StoreTest, EncryptsSecretsAtRest) {
  std::vector<DeviceCredential> credentials;
  for (int i = 0; i < 5; ++i) {
    credentials.push_back(
        *store_->register_credential(kInstance, "GID_test@@@d" + std::to_string(i)).current);
  }
  const AdminKey admin = store_->create_admin_key({kInstance});
  store_.reset();  // checkpoints the WAL into the main file
  std::string raw;
  for (const char* name : {"credmq.db", "credmq.db-wal"}) {
    if (std::filesystem::exists(dir() / name)) raw += read_file(dir() / name);
  }
  ASSERT_NE(raw.find(credentials[0].access_key_id), std::string::npos) << "read the wrong file?";
  for (const auto& credential : credentials) {
    EXPECT_EQ(raw.find(credential.access_key_secret), std::string::npos);
    // Nor the random part alone.
    EXPECT_EQ(raw.find(credential.access_key_secret.substr(3)), std::string::npos);
  }
  EXPECT_EQ(raw.find(admin.access_key_secret), std::string::npos);

  reopen();
  const auto again = store_->find_credential_by_key_id(credentials[3].access_key_id);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->access_key_secret, credentials[3].access_key_secret);
  EXPECT_EQ(store_->find_admin_key(admin.access_key_id)->access_key_secret,
            admin.access_key_secret);
}

TEST_F(StoreTest, RefusesAWrongMasterKey) {
  store_->register_credential(kInstance, kClient);
  store_.reset();
  write_file(dir() / "master.key", crypto::random_bytes(32));
  expect_open_refused(dir(), "opened with a wrong master key",
                      "master key does not match the database");
}

TEST_F(StoreTest, RefusesAMasterKeyOfTheWrongSize) {
  store_.reset();
  write_file(dir() / "master.key", crypto::random_bytes(31));
  EXPECT_THROW(Store::open(dir()), StorageError);
  write_file(dir() / "master.key", crypto::random_bytes(33));
  EXPECT_THROW(Store::open(dir()), StorageError);
}

TEST_F(StoreTest, NeverReplacesAMissingMasterKeyOfAnExistingDatabase) {
  store_.reset();
  std::filesystem::remove(dir() / "master.key");
  expect_open_refused(dir(), "opened without the master key", "missing");
  EXPECT_FALSE(std::filesystem::exists(dir() / "master.key"));
}

TEST_F(StoreTest, RefusesTamperedCiphertext) {
  const auto credential = *store_->register_credential(kInstance, kClient).current;
  const auto other = *store_->register_credential(kInstance, "GID_test@@@other").current;
  copy_ciphertext_and_reopen(other.access_key_id, credential.access_key_id);
  EXPECT_THROW(store_->find_credential_by_key_id(credential.access_key_id), StorageError);
  EXPECT_TRUE(store_->find_credential_by_key_id(other.access_key_id));
}

// The in-memory credential index follows every credential write before the write returns,
// and is rebuilt at open.
TEST_F(StoreTest, MirrorsCredentialsInMemory) {
  using Lookup = Store::MemoryLookup;
  std::shared_ptr<const IndexedCredential> found;
  EXPECT_EQ(store_->find_credential_in_memory("DC.unknown", found), Lookup::absent);

  const auto first = *store_->register_credential(kInstance, kClient).current;
  ASSERT_EQ(store_->find_credential_in_memory(first.access_key_id, found), Lookup::found);
  EXPECT_EQ(found->instance_id, kInstance);
  EXPECT_EQ(found->client_id, kClient);
  EXPECT_EQ(found->access_key_secret, first.access_key_secret);
  EXPECT_EQ(found->serial, first.serial);

  // Refresh: same key id, new secret and serial.
  const auto refreshed = *store_->refresh_credential(kInstance, kClient)->current;
  ASSERT_EQ(store_->find_credential_in_memory(first.access_key_id, found), Lookup::found);
  EXPECT_EQ(found->access_key_secret, refreshed.access_key_secret);
  EXPECT_EQ(found->serial, refreshed.serial);

  // Re-register: the old key id is gone, the new one is there.
  const auto again = *store_->register_credential(kInstance, kClient).current;
  EXPECT_EQ(store_->find_credential_in_memory(first.access_key_id, found), Lookup::absent);
  ASSERT_EQ(store_->find_credential_in_memory(again.access_key_id, found), Lookup::found);
  EXPECT_EQ(found->serial, again.serial);

  const auto other = *store_->register_credential(kOtherInstance, kClient).current;
  ASSERT_TRUE(store_->unregister_credential(kInstance, kClient));
  EXPECT_EQ(store_->find_credential_in_memory(again.access_key_id, found), Lookup::absent);
  EXPECT_FALSE(store_->unregister_credential(kInstance, kClient));

  reopen();
  EXPECT_EQ(store_->find_credential_in_memory(again.access_key_id, found), Lookup::absent);
  ASSERT_EQ(store_->find_credential_in_memory(other.access_key_id, found), Lookup::found);
  EXPECT_EQ(found->instance_id, kOtherInstance);
  EXPECT_EQ(found->access_key_secret, other.access_key_secret);
  EXPECT_EQ(found->serial, other.serial);
}

// A row whose secret does not open at start is left to the store, which reports it.
TEST_F(StoreTest, LeavesUndecryptableRowsToTheStore) {
  const auto credential = *store_->register_credential(kInstance, kClient).current;
  const auto other = *store_->register_credential(kInstance, "GID_test@@@other").current;
  copy_ciphertext_and_reopen(other.access_key_id, credential.access_key_id);
  std::shared_ptr<const IndexedCredential> found;
  EXPECT_EQ(store_->find_credential_in_memory(credential.access_key_id, found),
            Store::MemoryLookup::ask_the_store);
  EXPECT_EQ(store_->find_credential_in_memory(other.access_key_id, found),
            Store::MemoryLookup::found);
}

TEST_F(StoreTest, KeepsOneCredentialPerInstanceAndClient) {
  const auto first = *store_->register_credential(kInstance, kClient).current;
  const auto other_client =
      *store_->register_credential(kInstance, "GID_test@@@device-002").current;
  const auto other_instance = *store_->register_credential(kOtherInstance, kClient).current;
  std::set<std::string> key_ids{first.access_key_id, other_client.access_key_id,
                                other_instance.access_key_id};
  EXPECT_EQ(key_ids.size(), 3u);
  std::set<std::int64_t> serials{first.serial, other_client.serial, other_instance.serial};
  EXPECT_EQ(serials.size(), 3u);
  EXPECT_EQ(store_->get_credential(kOtherInstance, kClient)->access_key_id,
            other_instance.access_key_id);
  EXPECT_EQ(store_->list_client_ids(kInstance, "GID_test", 1, 10, "").total, 2);
}

TEST_F(StoreTest, RegisterReissuesAndReportsTheOldSerial) {
  const auto first = *store_->register_credential(kInstance, kClient).current;
  const auto change = store_->register_credential(kInstance, kClient);
  ASSERT_TRUE(change.current);
  ASSERT_TRUE(change.revoked_serial);
  EXPECT_EQ(*change.revoked_serial, first.serial);
  EXPECT_NE(change.current->access_key_id, first.access_key_id);
  EXPECT_NE(change.current->access_key_secret, first.access_key_secret);
  EXPECT_GT(change.current->serial, first.serial);
  EXPECT_GE(change.current->create_time_ms, first.create_time_ms);
  EXPECT_EQ(change.current->create_time_ms, change.current->update_time_ms);
  EXPECT_FALSE(store_->find_credential_by_key_id(first.access_key_id));
  EXPECT_EQ(store_->get_credential(kInstance, kClient)->access_key_id,
            change.current->access_key_id);
}

TEST_F(StoreTest, RefreshKeepsKeyIdAndCreateTime) {
  const auto first = *store_->register_credential(kInstance, kClient).current;
  const auto change = store_->refresh_credential(kInstance, kClient);
  ASSERT_TRUE(change);
  ASSERT_TRUE(change->current);
  ASSERT_TRUE(change->revoked_serial);
  EXPECT_EQ(*change->revoked_serial, first.serial);
  const auto& refreshed = *change->current;
  EXPECT_EQ(refreshed.access_key_id, first.access_key_id);
  EXPECT_NE(refreshed.access_key_secret, first.access_key_secret);
  EXPECT_EQ(refreshed.create_time_ms, first.create_time_ms);
  EXPECT_GT(refreshed.update_time_ms, first.update_time_ms);
  EXPECT_GT(refreshed.serial, first.serial);

  const auto stored = store_->find_credential_by_key_id(first.access_key_id);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->access_key_secret, refreshed.access_key_secret);
  EXPECT_EQ(stored->serial, refreshed.serial);
  EXPECT_EQ(stored->update_time_ms, refreshed.update_time_ms);

  EXPECT_FALSE(store_->refresh_credential(kInstance, "GID_test@@@missing"));
  EXPECT_FALSE(store_->refresh_credential(kOtherInstance, kClient));
}

TEST_F(StoreTest, UnregisterDeletesAndReportsTheSerial) {
  const auto first = *store_->register_credential(kInstance, kClient).current;
  const auto change = store_->unregister_credential(kInstance, kClient);
  ASSERT_TRUE(change);
  EXPECT_FALSE(change->current);
  ASSERT_TRUE(change->revoked_serial);
  EXPECT_EQ(*change->revoked_serial, first.serial);
  EXPECT_FALSE(store_->get_credential(kInstance, kClient));
  EXPECT_FALSE(store_->find_credential_by_key_id(first.access_key_id));
  EXPECT_FALSE(store_->unregister_credential(kInstance, kClient));
}

TEST_F(StoreTest, NeverReusesASerialEvenAfterDeletes) {
  std::int64_t highest = 0;
  for (int round = 0; round < 3; ++round) {
    const auto credential = *store_->register_credential(kInstance, kClient).current;
    EXPECT_GT(credential.serial, highest);
    highest = credential.serial;
    // Deleting the newest row is what would let a plain rowid come back.
    ASSERT_TRUE(store_->unregister_credential(kInstance, kClient));
    reopen();
  }
  const auto refreshed_base = *store_->register_credential(kInstance, kClient).current;
  EXPECT_GT(refreshed_base.serial, highest);
  EXPECT_GT(store_->refresh_credential(kInstance, kClient)->current->serial, refreshed_base.serial);
}

TEST_F(StoreTest, RefusesCredentialsForAnUnknownInstance) {
  EXPECT_THROW(store_->register_credential("mqtt-cn-nope", kClient), StorageError);
  EXPECT_FALSE(store_->get_credential("mqtt-cn-nope", kClient));
}

TEST_F(StoreTest, ManagesInstances) {
  EXPECT_TRUE(store_->instance_exists(kInstance));
  EXPECT_FALSE(store_->instance_exists("mqtt-cn-nope"));
  store_->ensure_instance(kInstance);  // idempotent
  EXPECT_THAT(store_->instances(), ElementsAre(kInstance, kOtherInstance));
}

TEST_F(StoreTest, CreatesAndFindsAdminKeys) {
  const AdminKey key = store_->create_admin_key({kOtherInstance, kInstance, kInstance});
  EXPECT_TRUE(has_shape(key.access_key_id, "AK", 20, kUpperAlnum)) << key.access_key_id;
  EXPECT_TRUE(has_shape(key.access_key_secret, "", 30, kAlnum));
  EXPECT_THAT(key.instances, ElementsAre(kInstance, kOtherInstance));
  const auto found = store_->find_admin_key(key.access_key_id);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->access_key_secret, key.access_key_secret);
  EXPECT_THAT(found->instances, ElementsAre(kInstance, kOtherInstance));
  EXPECT_FALSE(store_->find_admin_key("AKUNKNOWN"));
  EXPECT_NE(store_->create_admin_key({kInstance}).access_key_id, key.access_key_id);
  EXPECT_THROW(store_->create_admin_key({"mqtt-cn-nope"}), StorageError);
}

TEST_F(StoreTest, SecondOpenOfTheSameDataDirIsRefusedWhileTheFirstLives) {
  expect_open_refused(dir(), "a second store opened a locked data dir",
                      "in use by another credmq process");
  store_.reset();
  EXPECT_NO_THROW(store_ = Store::open(dir()));  // released with the first store
}

TEST_F(StoreTest, GrantsMoreInstancesToAnAdminKey) {
  const AdminKey key = store_->create_admin_key({kInstance});
  store_->grant_admin_key(key.access_key_id, {kOtherInstance, kInstance});
  EXPECT_THAT(store_->find_admin_key(key.access_key_id)->instances,
              ElementsAre(kInstance, kOtherInstance));
  EXPECT_THROW(store_->grant_admin_key(key.access_key_id, {"mqtt-cn-nope"}), StorageError);
  EXPECT_THROW(store_->grant_admin_key("AKUNKNOWN", {kInstance}), StorageError);
}

class ListTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    // Registered out of order; "GID_a" must not pick up "GID_ab" nor the other instance.
    for (int i = 24; i >= 0; --i) {
      char name[32];
      std::snprintf(name, sizeof name, "GID_a@@@dev-%02d", i);
      store_->register_credential(kInstance, name);
      expected_.insert(expected_.begin(), name);
    }
    store_->register_credential(kInstance, "GID_ab@@@dev-00");
    store_->register_credential(kInstance, "GID-a@@@dev-00");
    store_->register_credential(kOtherInstance, "GID_a@@@dev-99");
  }
  std::vector<std::string> expected_;
};

TEST_F(ListTest, PagesByPageNumber) {
  const auto first = store_->list_client_ids(kInstance, "GID_a", 1, 10, "");
  EXPECT_EQ(first.total, 25);
  EXPECT_EQ(first.client_ids, std::vector<std::string>(expected_.begin(), expected_.begin() + 10));
  EXPECT_FALSE(first.next_token.empty());

  const auto third = store_->list_client_ids(kInstance, "GID_a", 3, 10, "");
  EXPECT_EQ(third.total, 25);
  EXPECT_EQ(third.client_ids, std::vector<std::string>(expected_.begin() + 20, expected_.end()));
  EXPECT_TRUE(third.next_token.empty());

  const auto beyond = store_->list_client_ids(kInstance, "GID_a", 4, 10, "");
  EXPECT_EQ(beyond.total, 25);
  EXPECT_TRUE(beyond.client_ids.empty());
  EXPECT_TRUE(beyond.next_token.empty());

  const auto exact = store_->list_client_ids(kInstance, "GID_a", 1, 25, "");
  EXPECT_EQ(exact.client_ids.size(), 25u);
  EXPECT_TRUE(exact.next_token.empty());
}

TEST_F(ListTest, PagesByNextToken) {
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    const auto page = store_->list_client_ids(kInstance, "GID_a", 1, 7, token);
    EXPECT_EQ(page.total, 25);
    seen.insert(seen.end(), page.client_ids.begin(), page.client_ids.end());
    token = page.next_token;
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 4);
  EXPECT_EQ(seen, expected_);
}

TEST_F(ListTest, TokenContinuesAfterADeletedClientId) {
  const auto first = store_->list_client_ids(kInstance, "GID_a", 1, 5, "");
  ASSERT_TRUE(store_->unregister_credential(kInstance, first.client_ids.back()));
  const auto second = store_->list_client_ids(kInstance, "GID_a", 1, 5, first.next_token);
  EXPECT_EQ(second.total, 24);
  EXPECT_EQ(second.client_ids,
            std::vector<std::string>(expected_.begin() + 5, expected_.begin() + 10));
}

TEST_F(ListTest, SeparatesGroupsAndInstances) {
  EXPECT_THAT(store_->list_client_ids(kInstance, "GID_ab", 1, 10, "").client_ids,
              ElementsAre("GID_ab@@@dev-00"));
  EXPECT_THAT(store_->list_client_ids(kInstance, "GID-a", 1, 10, "").client_ids,
              ElementsAre("GID-a@@@dev-00"));
  EXPECT_THAT(store_->list_client_ids(kOtherInstance, "GID_a", 1, 10, "").client_ids,
              ElementsAre("GID_a@@@dev-99"));
  const auto none = store_->list_client_ids(kInstance, "GID_none", 1, 10, "");
  EXPECT_EQ(none.total, 0);
  EXPECT_TRUE(none.client_ids.empty());
  EXPECT_TRUE(none.next_token.empty());
}

TEST_F(ListTest, RefusesInvalidPaging) {
  EXPECT_THROW(store_->list_client_ids(kInstance, "GID_a", 0, 10, ""), InvalidArgument);
  EXPECT_THROW(store_->list_client_ids(kInstance, "GID_a", 1, 0, ""), InvalidArgument);
  EXPECT_THROW(store_->list_client_ids(kInstance, "GID_a", 1, 10, "not+base64url"),
               InvalidArgument);
  EXPECT_THROW(store_->list_client_ids(kInstance, "GID_a", 1, 10, "garbage"), InvalidArgument);
  // A token of another group's listing.
  const auto other = store_->list_client_ids(kInstance, "GID_a", 1, 5, "");
  EXPECT_THROW(store_->list_client_ids(kInstance, "GID_ab", 1, 10, other.next_token),
               InvalidArgument);
}

TEST_F(StoreTest, HandlesConcurrentWritersAndReaders) {
  constexpr int kThreads = 6;
  constexpr int kPerThread = 20;
  std::vector<std::vector<DeviceCredential>> issued(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string client = "GID_c@@@t" + std::to_string(t) + "-" + std::to_string(i);
        auto credential = *store_->register_credential(kInstance, client).current;
        EXPECT_EQ(store_->find_credential_by_key_id(credential.access_key_id)->access_key_secret,
                  credential.access_key_secret);
        issued[t].push_back(std::move(credential));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  std::set<std::int64_t> serials;
  for (const auto& list : issued) {
    for (const auto& credential : list) serials.insert(credential.serial);
  }
  EXPECT_EQ(serials.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(store_->list_client_ids(kInstance, "GID_c", 1, 100, "").total, kThreads * kPerThread);
}

}  // namespace
}  // namespace credmq::storage
