// The SQLite-backed repository of instances, admin access keys and device credentials.
// Every public method but find_credential_in_memory is blocking (disk I/O) and thread-safe:
// call it from a worker pool, never from an I/O thread. Every write is one transaction,
// committed before return.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "credmq/storage/broker_state.hpp"

namespace credmq::storage {

// Any storage failure (SQLite error, full disk, unreadable/wrong master key...).
struct StorageError : std::runtime_error {
  using std::runtime_error::runtime_error;
  StorageError(const std::string& what, int code) : std::runtime_error(what), sqlite_code(code) {}
  // The (extended) SQLite result code when SQLite reported the failure, 0 otherwise.
  int sqlite_code = 0;
};

// A caller-supplied value the store cannot use (malformed next_token, page_no or page_size
// below 1). Not a StorageError, so the admin API can answer 400 rather than 500.
struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Schema version this build writes; older databases are migrated forward on open, newer
// ones are refused.
inline constexpr std::int64_t kSchemaVersion = 2;

struct DeviceCredential {
  std::string instance_id;
  std::string client_id;
  std::string access_key_id;        // "DC." + base64url(16 random bytes)
  std::string access_key_secret;    // "DC." + base64url(32 random bytes), decrypted
  std::int64_t create_time_ms = 0;  // Unix epoch milliseconds
  std::int64_t update_time_ms = 0;
  // Identifies this issuance of the secret: changes on every Register and Refresh and is
  // never reused. Live sessions are bound to it, so revoking a serial closes exactly the
  // sessions that authenticated with that secret.
  std::int64_t serial = 0;
};

// What CONNECT authentication needs of a device credential: an entry of the store's
// in-memory index of the credential table (Store::find_credential_in_memory).
struct IndexedCredential {
  std::string instance_id;
  std::string client_id;
  std::string access_key_secret;  // decrypted
  std::int64_t serial = 0;
};

struct AdminKey {
  std::string access_key_id;
  std::string access_key_secret;       // decrypted
  std::vector<std::string> instances;  // instances this key may act on
};

// Result of an operation that replaces or removes a credential.
struct CredentialChange {
  std::optional<DeviceCredential> current;     // the credential after the change (none on delete)
  std::optional<std::int64_t> revoked_serial;  // the issuance that stopped working, if any
};

struct ClientIdPage {
  std::vector<std::string> client_ids;
  std::int64_t total = 0;  // matching rows overall
  std::string next_token;  // empty when this is the last page
  // Which page this is: the page_no asked for, or, when a next_token was given, where the
  // token's position falls at this page size.
  int page_no = 1;
};

class Store {
 public:
  // Opens (creating if needed) DIR/credmq.db in WAL mode and DIR/master.key (32 random bytes,
  // mode 0600, created on first start), and applies forward migrations. Refuses (StorageError)
  // a master key that does not decrypt the existing rows.
  static std::unique_ptr<Store> open(const std::filesystem::path& data_dir);
  virtual ~Store() = default;

  // Whether the store takes writes. False from a write that failed for an I/O reason (disk
  // full, I/O error, unopenable file...) until a write succeeds again; while false, each call
  // retries a tiny probe write, at most one every 200 ms (otherwise it answers false at once).
  // True at once while writes succeed (one atomic load). Blocking: call it from the pool.
  // The authenticator refuses new CONNECTs while this is false (fail closed: a credential
  // cannot be revoked while writes fail).
  virtual bool available() { return true; }

  virtual void ensure_instance(std::string_view instance_id) = 0;
  virtual bool instance_exists(std::string_view instance_id) = 0;
  virtual std::vector<std::string> instances() = 0;

  // Creates a new admin key pair ("AK..." id, random secret) allowed on `instances`.
  virtual AdminKey create_admin_key(const std::vector<std::string>& instances) = 0;
  // Lets an existing admin key act on more instances (already granted ones are kept).
  virtual void grant_admin_key(std::string_view access_key_id,
                               const std::vector<std::string>& instances) = 0;
  virtual std::optional<AdminKey> find_admin_key(std::string_view access_key_id) = 0;

  // Issues a fresh key id and secret for (instance, client id), replacing any existing one
  // (whose serial is then reported as revoked). CreateTime is reset on re-issue.
  virtual CredentialChange register_credential(std::string_view instance_id,
                                               std::string_view client_id) = 0;
  // New secret, same key id, UpdateTime bumped, new serial. nullopt if there is none.
  virtual std::optional<CredentialChange> refresh_credential(std::string_view instance_id,
                                                             std::string_view client_id) = 0;
  // Deletes the row. nullopt if there is none; otherwise revoked_serial is set.
  virtual std::optional<CredentialChange> unregister_credential(std::string_view instance_id,
                                                                std::string_view client_id) = 0;
  virtual std::optional<DeviceCredential> get_credential(std::string_view instance_id,
                                                         std::string_view client_id) = 0;
  virtual std::optional<DeviceCredential> find_credential_by_key_id(
      std::string_view access_key_id) = 0;
  // Non-blocking (no disk I/O, a shared lock): looks `access_key_id` up in the store's
  // in-memory mirror of the device credential table. The mirror is loaded at open and
  // updated by every credential write after its commit, under the write lock (so in commit
  // order) and before the write returns: it answers as a store lookup started at the same
  // moment would. `found` sets `out`; `absent`: no such key id. `ask_the_store` when it cannot
  // answer from memory (writes are failing, the row's secret did not decrypt at open, the
  // mirror could not be updated, or the store keeps none: the default); then use
  // find_credential_by_key_id on a worker pool.
  enum class MemoryLookup { found, absent, ask_the_store };
  virtual MemoryLookup find_credential_in_memory(
      std::string_view /*access_key_id*/, std::shared_ptr<const IndexedCredential>& /*out*/) {
    return MemoryLookup::ask_the_store;
  }
  // The serial of the current issuance of (instance, client id)'s credential, if it has one.
  // Decrypts nothing.
  virtual std::optional<std::int64_t> credential_serial(std::string_view instance_id,
                                                        std::string_view client_id) = 0;
  // Client ids of `group_id` (the part before "@@@") in `instance_id`, ordered by client id.
  // Paging: either `next_token` (opaque, from a previous page; wins when non-empty) or
  // 1-based `page_no`. Throws InvalidArgument for a malformed token or page_no/page_size < 1.
  // A client id without "@@@" belongs to the group "".
  virtual ClientIdPage list_client_ids(std::string_view instance_id, std::string_view group_id,
                                       int page_no, int page_size, std::string_view next_token) = 0;

  // The broker's saved state (sessions, queues, retained messages), by instance id; sessions
  // by client id. References to messages are resolved to indexes; a row that refers to a
  // missing message is left out.
  virtual std::vector<StoredInstanceState> load_broker_state() = 0;
  // One transaction: replaces everything saved for each listed instance (other instances
  // keep theirs). Message indexes must be valid (std::invalid_argument otherwise).
  virtual void save_broker_state(const std::vector<StoredInstanceState>& instances) = 0;
  // Forgets every saved broker state (persistence turned off).
  virtual void clear_broker_state() = 0;
};

}  // namespace credmq::storage
