// SQLite implementation of Store: a small connection pool, forward migrations, and secrets
// sealed with AES-256-GCM under DIR/master.key.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <shared_mutex>
#include <type_traits>
#include <unordered_map>

#include "broker_state_tables.hpp"
#include "credmq/common/crypto.hpp"
#include "credmq/common/log.hpp"
#include "credmq/common/string_hash.hpp"
#include "credmq/storage/store.hpp"
#include "master_key.hpp"
#include "sqlite_connection.hpp"

namespace credmq::storage {
namespace {

constexpr std::size_t kMaxConnections = 8;
constexpr std::string_view kKeyCheckName = "key_check";
constexpr std::string_view kKeyCheckAad = "meta:key_check";
constexpr std::string_view kKeyCheckPlaintext = "credmq master key check v1";
constexpr std::string_view kGroupSeparator = "@@@";
constexpr std::string_view kWrongKeyMessage =
    "storage: master key does not match the database: its secrets were sealed with another "
    "master.key (restore the master.key backed up with this credmq.db)";
// meta row rewritten by the probe write of Store::available() while writes fail.
constexpr std::string_view kProbeName = "storage_probe";
constexpr std::chrono::milliseconds kProbeInterval{200};

struct Migration {
  std::int64_t version;
  const char* sql;
};

// Append only: a released step is never edited, later changes are new steps.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE meta(
  name TEXT PRIMARY KEY NOT NULL,
  value BLOB NOT NULL);
CREATE TABLE instances(
  id TEXT PRIMARY KEY NOT NULL);
CREATE TABLE admin_keys(
  access_key_id TEXT PRIMARY KEY NOT NULL,
  secret_enc BLOB NOT NULL,
  create_time_ms INTEGER NOT NULL);
CREATE TABLE admin_key_instances(
  access_key_id TEXT NOT NULL REFERENCES admin_keys(access_key_id) ON DELETE CASCADE,
  instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
  PRIMARY KEY(access_key_id, instance_id));
-- serial is AUTOINCREMENT so a value is never handed out twice, even after deletes; every
-- issuance (register, refresh) inserts a fresh row to get a new one.
CREATE TABLE device_credentials(
  serial INTEGER PRIMARY KEY AUTOINCREMENT,
  instance_id TEXT NOT NULL REFERENCES instances(id),
  client_id TEXT NOT NULL,
  group_id TEXT NOT NULL,
  access_key_id TEXT NOT NULL UNIQUE,
  secret_enc BLOB NOT NULL,
  create_time_ms INTEGER NOT NULL,
  update_time_ms INTEGER NOT NULL,
  UNIQUE(instance_id, client_id));
CREATE INDEX device_credentials_by_group
  ON device_credentials(instance_id, group_id, client_id);
)sql"},
    // The broker's persistent sessions and retained messages (broker_state_tables.cpp). No
    // foreign keys between these tables: an instance is always rewritten whole, in one
    // transaction, by one writer, and the reader skips rows that refer to a missing message
    // or session. Every primary key starts with instance_id, so deleting an instance's rows
    // is a range delete.
    {2, R"sql(
CREATE TABLE broker_messages(
  instance_id TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  properties BLOB NOT NULL,
  expires_at_ms INTEGER,
  PRIMARY KEY(instance_id, message_id));
CREATE TABLE broker_retained(
  instance_id TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  PRIMARY KEY(instance_id, message_id));
CREATE TABLE broker_sessions(
  instance_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  expiry_interval INTEGER NOT NULL,
  offline_since_ms INTEGER NOT NULL,
  credential_serial INTEGER NOT NULL,
  next_packet_id INTEGER NOT NULL,
  will_topic TEXT,
  will_payload BLOB,
  will_qos INTEGER,
  will_retain INTEGER,
  will_properties BLOB,
  will_due_ms INTEGER,
  PRIMARY KEY(instance_id, client_id));
CREATE TABLE broker_subscriptions(
  instance_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  filter TEXT NOT NULL,
  qos INTEGER NOT NULL,
  no_local INTEGER NOT NULL,
  retain_as_published INTEGER NOT NULL,
  retain_handling INTEGER NOT NULL,
  identifier INTEGER NOT NULL,
  PRIMARY KEY(instance_id, client_id, filter));
CREATE TABLE broker_queue(
  instance_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  message_id INTEGER NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  subscription_ids TEXT NOT NULL,
  shared_filter TEXT NOT NULL,
  PRIMARY KEY(instance_id, client_id, position));
CREATE TABLE broker_inflight(
  instance_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  packet_id INTEGER NOT NULL,
  message_id INTEGER,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  released INTEGER NOT NULL,
  subscription_ids TEXT NOT NULL,
  shared_filter TEXT NOT NULL,
  PRIMARY KEY(instance_id, client_id, packet_id));
CREATE TABLE broker_incoming_qos2(
  instance_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  packet_id INTEGER NOT NULL,
  PRIMARY KEY(instance_id, client_id, packet_id));
)sql"},
};
static_assert(std::size(kMigrations) > 0 &&
                  kMigrations[std::size(kMigrations) - 1].version == kSchemaVersion,
              "kSchemaVersion must name the last migration");

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string group_of(std::string_view client_id) {
  const auto separator = client_id.find(kGroupSeparator);
  return separator == std::string_view::npos ? std::string()
                                             : std::string(client_id.substr(0, separator));
}

// Uniform characters from `alphabet` (rejection sampling avoids modulo bias).
std::string random_characters(std::size_t count, std::string_view alphabet) {
  const std::size_t limit = 256 - 256 % alphabet.size();
  std::string out;
  out.reserve(count);
  while (out.size() < count) {
    for (unsigned char byte : crypto::random_bytes(count)) {
      if (byte < limit && out.size() < count) out.push_back(alphabet[byte % alphabet.size()]);
    }
  }
  return out;
}

std::string new_device_key_id() {
  return "DC." + crypto::base64url_encode(crypto::random_bytes(16));
}
std::string new_device_secret() {
  return "DC." + crypto::base64url_encode(crypto::random_bytes(32));
}
std::string new_admin_key_id() {
  return "AK" + random_characters(20, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
}
std::string new_admin_secret() {
  return random_characters(30, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789");
}

void migrate(Connection& connection) {
  Transaction transaction(connection, Transaction::Kind::write);
  connection.exec(
      "CREATE TABLE IF NOT EXISTS schema_version("
      "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)");
  std::int64_t version = 0;
  {
    Statement select = connection.prepare("SELECT version FROM schema_version WHERE id = 1");
    if (select.step()) version = select.integer(0);
  }
  if (version > kSchemaVersion) {
    throw StorageError("storage: database schema version " + std::to_string(version) +
                       " is newer than this build supports (" + std::to_string(kSchemaVersion) +
                       ")");
  }
  if (version == kSchemaVersion) return;  // nothing to do; the destructor ends the transaction
  for (const Migration& migration : kMigrations) {
    if (migration.version <= version) continue;
    connection.exec(migration.sql);
    log::info("storage: migrated schema to version ", migration.version);
  }
  connection
      .prepare(
          "INSERT INTO schema_version(id, version) VALUES(1, ?1) "
          "ON CONFLICT(id) DO UPDATE SET version = excluded.version")
      .bind(1, kSchemaVersion)
      .run();
  transaction.commit();
}

class ConnectionPool {
 public:
  // Hands out a connection exclusively; returns it to the pool when destroyed.
  class Lease {
   public:
    Lease(ConnectionPool& pool, std::unique_ptr<Connection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.release(std::move(connection_)); }
    Connection& operator*() { return *connection_; }
    Connection* operator->() { return connection_.get(); }

   private:
    ConnectionPool& pool_;
    std::unique_ptr<Connection> connection_;
  };

  ConnectionPool(std::filesystem::path db_path, std::unique_ptr<Connection> first)
      : db_path_(std::move(db_path)), open_count_(1) {
    idle_.push_back(std::move(first));
  }

  Lease acquire() {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [&] { return !idle_.empty() || open_count_ < kMaxConnections; });
    if (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      return Lease(*this, std::move(connection));
    }
    ++open_count_;  // reserve the slot, open outside the lock (disk I/O)
    lock.unlock();
    try {
      return Lease(*this, std::make_unique<Connection>(db_path_));
    } catch (...) {
      lock.lock();
      --open_count_;
      available_.notify_one();
      throw;
    }
  }

 private:
  void release(std::unique_ptr<Connection> connection) {
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(connection));
    }
    available_.notify_one();
  }

  const std::filesystem::path db_path_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_count_;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::unique_ptr<DataDirLock> lock, std::filesystem::path db_path,
              std::unique_ptr<Connection> first, std::string master_key)
      : lock_(std::move(lock)),
        pool_(std::move(db_path), std::move(first)),
        master_key_(std::move(master_key)) {}

  bool available() override {
    if (!write_failing_.load(std::memory_order_acquire)) return true;
    std::lock_guard write_lock(write_mutex_);
    if (!write_failing_.load(std::memory_order_acquire)) return true;  // a writer succeeded
    const auto now = std::chrono::steady_clock::now();
    if (now - last_probe_ < kProbeInterval) return false;
    try {
      write_probe();
    } catch (const StorageError& error) {
      last_probe_ = std::chrono::steady_clock::now();
      log::debug("storage: probe write failed: ", error.what());
      return false;
    }
    note_write_success();
    return true;
  }

  void ensure_instance(std::string_view instance_id) override {
    write([&](Connection& connection) {
      connection.prepare("INSERT OR IGNORE INTO instances(id) VALUES(?1)")
          .bind(1, instance_id)
          .run();
    });
  }

  bool instance_exists(std::string_view instance_id) override {
    return read([&]() -> bool {
      auto lease = pool_.acquire();
      return instance_exists(*lease, instance_id);
    });
  }

  std::vector<std::string> instances() override {
    return read([&]() -> std::vector<std::string> {
      auto lease = pool_.acquire();
      Statement select = lease->prepare("SELECT id FROM instances ORDER BY id");
      std::vector<std::string> out;
      while (select.step()) out.push_back(select.text(0));
      return out;
    });
  }

  // Within the caller's write transaction.
  void insert_grants(Connection& connection, std::string_view access_key_id,
                     const std::vector<std::string>& instances) {
    for (const auto& instance : instances) {
      require_instance(connection, instance);
      connection
          .prepare(
              "INSERT OR IGNORE INTO admin_key_instances(access_key_id, instance_id) "
              "VALUES(?1, ?2)")
          .bind(1, access_key_id)
          .bind(2, instance)
          .run();
    }
  }

  AdminKey create_admin_key(const std::vector<std::string>& instances) override {
    AdminKey key{new_admin_key_id(), new_admin_secret(), {}};
    write([&](Connection& connection) {
      connection
          .prepare(
              "INSERT INTO admin_keys(access_key_id, secret_enc, create_time_ms) "
              "VALUES(?1, ?2, ?3)")
          .bind(1, key.access_key_id)
          .bind_blob(2, seal(key.access_key_secret, key.access_key_id))
          .bind(3, now_ms())
          .run();
      insert_grants(connection, key.access_key_id, instances);
    });
    key.instances = instances;
    std::sort(key.instances.begin(), key.instances.end());
    key.instances.erase(std::unique(key.instances.begin(), key.instances.end()),
                        key.instances.end());
    return key;
  }

  void grant_admin_key(std::string_view access_key_id,
                       const std::vector<std::string>& instances) override {
    write([&](Connection& connection) {
      Statement exists = connection.prepare("SELECT 1 FROM admin_keys WHERE access_key_id = ?1");
      exists.bind(1, access_key_id);
      if (!exists.step()) throw StorageError("storage: unknown admin key");
      insert_grants(connection, access_key_id, instances);
    });
  }

  std::optional<AdminKey> find_admin_key(std::string_view access_key_id) override {
    return read([&]() -> std::optional<AdminKey> {
      auto lease = pool_.acquire();
      Connection& connection = *lease;
      Transaction transaction(connection, Transaction::Kind::read);  // one consistent snapshot
      AdminKey key;
      {
        Statement select =
            connection.prepare("SELECT secret_enc FROM admin_keys WHERE access_key_id = ?1");
        select.bind(1, access_key_id);
        if (!select.step()) return std::nullopt;
        key.access_key_id = std::string(access_key_id);
        key.access_key_secret = open_sealed(select.blob(0), key.access_key_id);
      }
      Statement instances = connection.prepare(
          "SELECT instance_id FROM admin_key_instances WHERE access_key_id = ?1 "
          "ORDER BY instance_id");
      instances.bind(1, access_key_id);
      while (instances.step()) key.instances.push_back(instances.text(0));
      return key;
    });
  }

  CredentialChange register_credential(std::string_view instance_id,
                                       std::string_view client_id) override {
    CredentialChange change;
    std::optional<std::string> old_key_id;
    std::shared_ptr<const IndexedCredential> entry;
    write(
        [&](Connection& connection) {
          require_instance(connection, instance_id);
          if (auto old = delete_credential(connection, instance_id, client_id)) {
            change.revoked_serial = old->serial;
            old_key_id = std::move(old->access_key_id);
          }
          const std::int64_t now = now_ms();
          change.current =
              insert_credential(connection, instance_id, client_id, new_device_key_id(), now, now);
          entry = index_entry(*change.current);
        },
        [&] {
          if (old_key_id) index_.erase(*old_key_id);
          index_.insert_or_assign(change.current->access_key_id, std::move(entry));
        });
    return change;
  }

  std::optional<CredentialChange> refresh_credential(std::string_view instance_id,
                                                     std::string_view client_id) override {
    std::optional<CredentialChange> change;
    std::shared_ptr<const IndexedCredential> entry;
    write(
        [&](Connection& connection) {
          auto old = select_credential(connection, instance_id, client_id);
          if (!old) return;
          delete_credential(connection, instance_id, client_id);
          // Strictly later than the previous issuance, so clients can order refreshes.
          const std::int64_t update_time = std::max(now_ms(), old->update_time_ms + 1);
          change.emplace();
          change->revoked_serial = old->serial;
          change->current = insert_credential(connection, instance_id, client_id,
                                              old->access_key_id, old->create_time_ms, update_time);
          entry = index_entry(*change->current);
        },
        [&] {
          if (change) index_.insert_or_assign(change->current->access_key_id, std::move(entry));
        });
    return change;
  }

  std::optional<CredentialChange> unregister_credential(std::string_view instance_id,
                                                        std::string_view client_id) override {
    std::optional<CredentialChange> change;
    std::string old_key_id;
    write(
        [&](Connection& connection) {
          if (auto old = delete_credential(connection, instance_id, client_id)) {
            change.emplace();
            change->revoked_serial = old->serial;
            old_key_id = std::move(old->access_key_id);
          }
        },
        [&] {
          if (change) index_.erase(old_key_id);
        });
    return change;
  }

  std::optional<DeviceCredential> get_credential(std::string_view instance_id,
                                                 std::string_view client_id) override {
    return read([&]() -> std::optional<DeviceCredential> {
      auto lease = pool_.acquire();
      return select_credential(*lease, instance_id, client_id);
    });
  }

  std::optional<DeviceCredential> find_credential_by_key_id(
      std::string_view access_key_id) override {
    return read([&]() -> std::optional<DeviceCredential> {
      auto lease = pool_.acquire();
      Statement select = lease->prepare(
          "SELECT instance_id, client_id, secret_enc, create_time_ms, update_time_ms, serial "
          "FROM device_credentials WHERE access_key_id = ?1");
      select.bind(1, access_key_id);
      if (!select.step()) return std::nullopt;
      DeviceCredential credential;
      credential.instance_id = select.text(0);
      credential.client_id = select.text(1);
      credential.access_key_id = std::string(access_key_id);
      credential.access_key_secret = open_sealed(select.blob(2), credential.access_key_id);
      credential.create_time_ms = select.integer(3);
      credential.update_time_ms = select.integer(4);
      credential.serial = select.integer(5);
      return credential;
    });
  }

  MemoryLookup find_credential_in_memory(std::string_view access_key_id,
                                         std::shared_ptr<const IndexedCredential>& out) override {
    // While writes (or reads) fail, the caller must go through available() and the store
    // (fail closed).
    if (write_failing_.load(std::memory_order_acquire) ||
        read_failing_.load(std::memory_order_acquire)) {
      return MemoryLookup::ask_the_store;
    }
    std::shared_lock index_lock(index_mutex_);
    // Checked under the lock: a writer abandons the index (clears it) under the same lock, so
    // an emptied index is never read as "no such key".
    if (!index_usable_.load(std::memory_order_relaxed)) return MemoryLookup::ask_the_store;
    const auto it = index_.find(access_key_id);
    if (it == index_.end()) return MemoryLookup::absent;
    if (!it->second) return MemoryLookup::ask_the_store;  // did not decrypt at open
    out = it->second;
    return MemoryLookup::found;
  }

  // Fills the credential index from the table (at open, after the master key check). A row
  // whose secret does not decrypt gets an empty entry: its lookups go to the store, which
  // reports the failure as before.
  void load_index() {
    auto lease = pool_.acquire();
    Statement select = lease->prepare(
        "SELECT access_key_id, instance_id, client_id, secret_enc, serial "
        "FROM device_credentials");
    std::unique_lock index_lock(index_mutex_);
    while (select.step()) {
      std::string key_id = select.text(0);
      std::string secret;
      std::shared_ptr<const IndexedCredential> entry;
      if (crypto::aes_gcm_open(master_key_, select.blob(3), key_id, secret)) {
        entry = std::make_shared<const IndexedCredential>(IndexedCredential{
            select.text(1), select.text(2), std::move(secret), select.integer(4)});
      }
      index_.insert_or_assign(std::move(key_id), std::move(entry));
    }
  }

  std::optional<std::int64_t> credential_serial(std::string_view instance_id,
                                                std::string_view client_id) override {
    return read([&]() -> std::optional<std::int64_t> {
      auto lease = pool_.acquire();
      Statement select = lease->prepare(
          "SELECT serial FROM device_credentials WHERE instance_id = ?1 AND client_id = ?2");
      select.bind(1, instance_id).bind(2, client_id);
      if (!select.step()) return std::nullopt;
      return select.integer(0);
    });
  }

  std::vector<StoredInstanceState> load_broker_state() override {
    return read([&]() -> std::vector<StoredInstanceState> {
      auto lease = pool_.acquire();
      Transaction transaction(*lease, Transaction::Kind::read);  // one consistent snapshot
      return read_broker_state(*lease);
    });
  }

  void save_broker_state(const std::vector<StoredInstanceState>& instances) override {
    write([&](Connection& connection) { replace_broker_state(connection, instances); });
  }

  void clear_broker_state() override { write(delete_all_broker_state); }

  ClientIdPage list_client_ids(std::string_view instance_id, std::string_view group_id, int page_no,
                               int page_size, std::string_view next_token) override {
    return read([&]() -> ClientIdPage {
      if (page_size < 1) throw InvalidArgument("page size must be at least 1");
      std::string after;
      if (!next_token.empty()) {
        // A token is the last client id of a page of this group: anything else did not come
        // from us (or belongs to another group's listing).
        if (!crypto::base64url_decode(next_token, after) || group_of(after) != group_id) {
          throw InvalidArgument("malformed next token");
        }
      } else if (page_no < 1) {
        throw InvalidArgument("page number must be at least 1");
      }

      auto lease = pool_.acquire();
      Connection& connection = *lease;
      Transaction transaction(connection, Transaction::Kind::read);  // total and page agree
      ClientIdPage page;
      {
        // The group's total, and how many ids precede a token's position (one scan).
        Statement count = connection.prepare(
            "SELECT COUNT(*), COALESCE(SUM(client_id <= ?3), 0) FROM device_credentials "
            "WHERE instance_id = ?1 AND group_id = ?2");
        count.bind(1, instance_id).bind(2, group_id).bind(3, after);
        if (count.step()) {
          page.total = count.integer(0);
          const std::int64_t preceding = count.integer(1);
          page.page_no = after.empty()
                             ? page_no
                             : static_cast<int>(std::min<std::int64_t>(
                                   preceding / page_size + 1, std::numeric_limits<int>::max()));
        }
      }
      // One row more than asked tells whether another page follows.
      const std::int64_t limit = static_cast<std::int64_t>(page_size) + 1;
      auto collect = [&](Statement& select) {
        while (select.step()) page.client_ids.push_back(select.text(0));
      };
      if (!after.empty()) {
        Statement select = connection.prepare(
            "SELECT client_id FROM device_credentials "
            "WHERE instance_id = ?1 AND group_id = ?2 AND client_id > ?3 "
            "ORDER BY client_id LIMIT ?4");
        select.bind(1, instance_id).bind(2, group_id).bind(3, after).bind(4, limit);
        collect(select);
      } else {
        const std::int64_t offset =
            (static_cast<std::int64_t>(page_no) - 1) * static_cast<std::int64_t>(page_size);
        Statement select = connection.prepare(
            "SELECT client_id FROM device_credentials WHERE instance_id = ?1 AND group_id = ?2 "
            "ORDER BY client_id LIMIT ?3 OFFSET ?4");
        select.bind(1, instance_id).bind(2, group_id).bind(3, limit).bind(4, offset);
        collect(select);
      }
      if (page.client_ids.size() > static_cast<std::size_t>(page_size)) {
        page.client_ids.pop_back();
        page.next_token = crypto::base64url_encode(page.client_ids.back());
      }
      return page;
    });
  }

  // Checks the key-check value against the master key, storing one on first start.
  void verify_master_key() {
    auto lease = pool_.acquire();
    Connection& connection = *lease;
    if (auto check = read_key_check(connection)) {
      std::string plaintext;
      if (!crypto::aes_gcm_open(master_key_, *check, kKeyCheckAad, plaintext) ||
          plaintext != kKeyCheckPlaintext) {
        throw StorageError(std::string(kWrongKeyMessage));
      }
      return;
    }
    // No check value yet. A database that already holds sealed secrets (written before check
    // values existed, or whose meta row was lost) must not get one sealed under a key that
    // cannot open them: try one of each kind first.
    verify_sealed_rows(connection);
    {
      Transaction transaction(connection, Transaction::Kind::write);
      connection.prepare("INSERT OR IGNORE INTO meta(name, value) VALUES(?1, ?2)")
          .bind(1, kKeyCheckName)
          .bind_blob(2, crypto::aes_gcm_seal(master_key_, kKeyCheckPlaintext, kKeyCheckAad))
          .run();
      transaction.commit();
    }
    verify_master_key_once_more(connection);
  }

  // Whether any admin key or device credential row (the sealed secrets) exists.
  static bool holds_sealed_rows(Connection& connection) {
    Statement admin = connection.prepare("SELECT 1 FROM admin_keys LIMIT 1");
    if (admin.step()) return true;
    Statement device = connection.prepare("SELECT 1 FROM device_credentials LIMIT 1");
    return device.step();
  }

  void verify_sealed_rows(Connection& connection) const {
    for (const char* sql : {"SELECT access_key_id, secret_enc FROM admin_keys LIMIT 1",
                            "SELECT access_key_id, secret_enc FROM device_credentials LIMIT 1"}) {
      Statement select = connection.prepare(sql);
      if (!select.step()) continue;
      std::string secret;
      if (!crypto::aes_gcm_open(master_key_, select.blob(1), select.text(0), secret)) {
        throw StorageError(std::string(kWrongKeyMessage));
      }
    }
  }

  static std::optional<std::string> read_key_check(Connection& connection) {
    Statement select = connection.prepare("SELECT value FROM meta WHERE name = ?1");
    select.bind(1, kKeyCheckName);
    if (!select.step()) return std::nullopt;
    return select.blob(0);
  }

 private:
  // Another process may have stored its own check value first (INSERT OR IGNORE).
  void verify_master_key_once_more(Connection& connection) {
    auto check = read_key_check(connection);
    std::string plaintext;
    if (!check || !crypto::aes_gcm_open(master_key_, *check, kKeyCheckAad, plaintext) ||
        plaintext != kKeyCheckPlaintext) {
      throw StorageError(std::string(kWrongKeyMessage));
    }
  }

  // Runs a read. An I/O failure marks the store as failing reads until a read succeeds again:
  // meanwhile the credential index does not answer (a CONNECT then goes to the store and is
  // refused as before, as long as the disk fails).
  template <class Body>
  std::invoke_result_t<Body&> read(Body&& body) {
    try {
      auto result = body();
      if (read_failing_.load(std::memory_order_relaxed)) {
        read_failing_.store(false, std::memory_order_release);
      }
      return result;
    } catch (const StorageError& error) {
      if (is_io_failure(error.sqlite_code)) read_failing_.store(true, std::memory_order_release);
      throw;
    }
  }

  // A write that changes no credential: the index is left alone (not even locked).
  struct NoIndexUpdate {
    void operator()() const {}
  };
  template <class Body>
  void write(Body&& body) {
    write(body, NoIndexUpdate{});
  }

  // `on_commit` updates the credential index (index_ is its only business) after the commit,
  // still under write_mutex_, so the index follows the table in commit order and is up to date
  // before the write returns (and before the caller tells the revocation hub). Should it throw
  // (out of memory), the index is abandoned: lookups fall back to the store from then on.
  template <class Body, class OnCommit>
  void write(Body&& body, OnCommit&& on_commit) {
    // Writers queue here rather than spinning in SQLite's busy handler.
    std::lock_guard write_lock(write_mutex_);
    try {
      write_locked(body);
    } catch (const StorageError& error) {
      if (is_io_failure(error.sqlite_code)) note_write_failure(error);
      throw;
    }
    if constexpr (!std::is_same_v<std::decay_t<OnCommit>, NoIndexUpdate>) {
      std::unique_lock index_lock(index_mutex_);
      try {
        on_commit();
      } catch (const std::exception& error) {
        index_usable_.store(false, std::memory_order_release);
        index_.clear();
        log::error("storage: credential index abandoned (", error.what(),
                   "); CONNECTs look credentials up in the database from now on");
      }
    }
    note_write_success();
  }

  template <class Body>
  void write_locked(Body& body) {
    auto lease = pool_.acquire();
    Connection& connection = *lease;
    Transaction transaction(connection, Transaction::Kind::write);
    try {
      body(connection);
    } catch (const crypto::CryptoError& error) {
      throw StorageError(std::string("storage: ") + error.what());
    }
    transaction.commit();
  }

  // Failures that say the disk or file is unusable, as opposed to a logic error (constraint,
  // bad SQL, misuse) that only concerns the one statement.
  static bool is_io_failure(int code) {
    switch (code & 0xFF) {
      case SQLITE_IOERR:
      case SQLITE_FULL:
      case SQLITE_CANTOPEN:
      case SQLITE_READONLY:
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
      case SQLITE_NOMEM:
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
      case SQLITE_PROTOCOL:
      case SQLITE_PERM:
        return true;
      default:
        return false;
    }
  }

  // Under write_mutex_.
  void note_write_failure(const StorageError& error) {
    last_probe_ = std::chrono::steady_clock::now();
    if (!write_failing_.exchange(true, std::memory_order_acq_rel)) {
      log::error("storage: writes fail (", error.what(),
                 "); new MQTT connections are refused until a write succeeds again");
    }
  }

  // Under write_mutex_.
  void note_write_success() {
    if (write_failing_.exchange(false, std::memory_order_acq_rel)) {
      log::warn("storage: writes succeed again; accepting new MQTT connections");
    }
  }

  static bool instance_exists(Connection& connection, std::string_view instance_id) {
    Statement select = connection.prepare("SELECT 1 FROM instances WHERE id = ?1");
    select.bind(1, instance_id);
    return select.step();
  }

  static void require_instance(Connection& connection, std::string_view instance_id) {
    // The foreign keys enforce this too; checking first gives a clearer message.
    if (!instance_exists(connection, instance_id)) {
      throw StorageError("storage: instance " + std::string(instance_id) + " does not exist");
    }
  }

  std::string seal(std::string_view secret, std::string_view key_id) const {
    return crypto::aes_gcm_seal(master_key_, secret, key_id);
  }

  std::string open_sealed(std::string_view sealed, std::string_view key_id) const {
    std::string secret;
    if (!crypto::aes_gcm_open(master_key_, sealed, key_id, secret)) {
      throw StorageError("storage: cannot decrypt the secret of key " + std::string(key_id) +
                         " (tampered row or wrong master key)");
    }
    return secret;
  }

  std::optional<DeviceCredential> select_credential(Connection& connection,
                                                    std::string_view instance_id,
                                                    std::string_view client_id) const {
    Statement select = connection.prepare(
        "SELECT access_key_id, secret_enc, create_time_ms, update_time_ms, serial "
        "FROM device_credentials WHERE instance_id = ?1 AND client_id = ?2");
    select.bind(1, instance_id).bind(2, client_id);
    if (!select.step()) return std::nullopt;
    DeviceCredential credential;
    credential.instance_id = std::string(instance_id);
    credential.client_id = std::string(client_id);
    credential.access_key_id = select.text(0);
    credential.access_key_secret = open_sealed(select.blob(1), credential.access_key_id);
    credential.create_time_ms = select.integer(2);
    credential.update_time_ms = select.integer(3);
    credential.serial = select.integer(4);
    return credential;
  }

  struct DeletedRow {
    std::int64_t serial;
    std::string access_key_id;
  };
  // Returns the serial and key id of the deleted row, if there was one.
  static std::optional<DeletedRow> delete_credential(Connection& connection,
                                                     std::string_view instance_id,
                                                     std::string_view client_id) {
    Statement remove = connection.prepare(
        "DELETE FROM device_credentials WHERE instance_id = ?1 AND client_id = ?2 "
        "RETURNING serial, access_key_id");
    remove.bind(1, instance_id).bind(2, client_id);
    std::optional<DeletedRow> row;
    while (remove.step()) row = DeletedRow{remove.integer(0), remove.text(1)};
    return row;
  }

  static std::shared_ptr<const IndexedCredential> index_entry(const DeviceCredential& credential) {
    return std::make_shared<const IndexedCredential>(
        IndexedCredential{credential.instance_id, credential.client_id,
                          credential.access_key_secret, credential.serial});
  }

  DeviceCredential insert_credential(Connection& connection, std::string_view instance_id,
                                     std::string_view client_id, std::string access_key_id,
                                     std::int64_t create_time_ms, std::int64_t update_time_ms) {
    DeviceCredential credential;
    credential.instance_id = std::string(instance_id);
    credential.client_id = std::string(client_id);
    credential.access_key_id = std::move(access_key_id);
    credential.access_key_secret = new_device_secret();
    credential.create_time_ms = create_time_ms;
    credential.update_time_ms = update_time_ms;
    Statement insert = connection.prepare(
        "INSERT INTO device_credentials(instance_id, client_id, group_id, access_key_id, "
        "secret_enc, create_time_ms, update_time_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) "
        "RETURNING serial");
    insert.bind(1, instance_id)
        .bind(2, client_id)
        .bind(3, group_of(client_id))
        .bind(4, credential.access_key_id)
        .bind_blob(5, seal(credential.access_key_secret, credential.access_key_id))
        .bind(6, create_time_ms)
        .bind(7, update_time_ms);
    if (!insert.step()) throw StorageError("storage: insert returned no serial");
    credential.serial = insert.integer(0);
    insert.run();
    return credential;
  }

  // Under write_mutex_. A value that changes each time, so SQLite really writes a page.
  void write_probe() {
    auto probe = [](Connection& connection) {
      connection
          .prepare(
              "INSERT INTO meta(name, value) VALUES(?1, ?2) "
              "ON CONFLICT(name) DO UPDATE SET value = excluded.value")
          .bind(1, kProbeName)
          .bind(2, now_ms())
          .run();
    };
    write_locked(probe);
  }

  std::unique_ptr<DataDirLock> lock_;  // first member: held until everything else is gone
  ConnectionPool pool_;
  const std::string master_key_;
  std::mutex write_mutex_;
  // Set by a write that failed for an I/O reason, cleared by the next one that succeeds.
  std::atomic<bool> write_failing_{false};
  std::chrono::steady_clock::time_point last_probe_;  // under write_mutex_

  // The credential index: access key id -> what CONNECT authentication needs (null: the
  // secret did not decrypt at open). Written under write_mutex_ and index_mutex_.
  std::shared_mutex index_mutex_;
  StringMap<std::shared_ptr<const IndexedCredential>> index_;
  std::atomic<bool> index_usable_{true};
  // Set by a read that failed for an I/O reason, cleared by the next one that succeeds.
  std::atomic<bool> read_failing_{false};
};

}  // namespace

std::unique_ptr<Store> Store::open(const std::filesystem::path& data_dir) {
  try {
    std::filesystem::path dir = data_dir;
    if (!dir.has_filename() && dir.has_parent_path()) dir = dir.parent_path();
    ensure_private_directory(dir);
    auto lock = std::make_unique<DataDirLock>(dir);
    const std::filesystem::path db_path = dir / "credmq.db";
    ensure_private_file(db_path);
    auto first = std::make_unique<Connection>(db_path);
    migrate(*first);
    // A database that already seals secrets must never get a fresh (hence wrong) key.
    const bool holds_secrets =
        SqliteStore::read_key_check(*first).has_value() || SqliteStore::holds_sealed_rows(*first);
    std::string master_key = load_or_create_master_key(dir / "master.key", !holds_secrets);
    auto store = std::make_unique<SqliteStore>(std::move(lock), db_path, std::move(first),
                                               std::move(master_key));
    store->verify_master_key();
    store->load_index();
    return store;
  } catch (const crypto::CryptoError& error) {
    throw StorageError(std::string("storage: ") + error.what());
  }
}

}  // namespace credmq::storage
