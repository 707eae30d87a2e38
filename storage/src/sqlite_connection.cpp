#include "sqlite_connection.hpp"

#include <climits>

#include "credmq/common/log.hpp"
#include "credmq/storage/store.hpp"

namespace credmq::storage {
namespace {
constexpr int kBusyTimeoutMs = 5000;

int checked_size(std::string_view value) {
  if (value.size() > static_cast<std::size_t>(INT_MAX)) {
    throw StorageError("storage: value too large to bind");
  }
  return static_cast<int>(value.size());
}
}  // namespace

Statement::~Statement() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Statement& Statement::bind(int index, std::string_view text) {
  // SQLITE_TRANSIENT: SQLite copies, so the caller's buffer may die before step().
  const int rc = sqlite3_bind_text(stmt_, index, text.empty() ? "" : text.data(),
                                   checked_size(text), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) connection_.fail("bind", rc);
  return *this;
}

Statement& Statement::bind_blob(int index, std::string_view bytes) {
  const int rc = sqlite3_bind_blob(stmt_, index, bytes.empty() ? "" : bytes.data(),
                                   checked_size(bytes), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) connection_.fail("bind", rc);
  return *this;
}

Statement& Statement::bind(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) connection_.fail("bind", rc);
  return *this;
}

Statement& Statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) connection_.fail("bind", rc);
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  connection_.fail("step", rc);
}

void Statement::run() {
  while (step()) {
  }
}

std::string Statement::text(int column) const {
  const auto* data = sqlite3_column_text(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
}

std::string Statement::blob(int column) const {
  const void* data = sqlite3_column_blob(stmt_, column);
  const int size = sqlite3_column_bytes(stmt_, column);
  if (data == nullptr) return {};
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
}

std::int64_t Statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

Connection::Connection(const std::filesystem::path& db_path) {
  // NOMUTEX: the pool guarantees one thread per connection at a time.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(db_path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = "storage: cannot open database " + db_path.string() + ": " +
                          (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw StorageError(message, rc);
  }
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, kBusyTimeoutMs);
    {
      Statement journal = prepare("PRAGMA journal_mode=WAL");
      if (!journal.step() || journal.text(0) != "wal") {
        throw StorageError("storage: cannot switch " + db_path.string() + " to WAL mode");
      }
    }
    exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
  } catch (...) {
    for (auto& [_, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
    throw;
  }
}

Connection::~Connection() {
  for (auto& [_, stmt] : statements_) sqlite3_finalize(stmt);
  if (sqlite3_close_v2(db_) != SQLITE_OK) log::warn("storage: closing a connection failed");
}

Statement Connection::prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) fail("prepare", rc);
    it = statements_.emplace(sql, stmt).first;
  }
  return Statement(*this, it->second);
}

void Connection::exec(const char* sql) {
  char* error = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    throw StorageError("storage: exec failed: " + message + " (code " + std::to_string(rc) + ")",
                       rc);
  }
}

void Connection::fail(std::string_view what) const { fail(what, sqlite3_extended_errcode(db_)); }

void Connection::fail(std::string_view what, int code) const {
  // SQLite messages name tables and columns, never bound values, so no secret leaks here.
  throw StorageError("storage: " + std::string(what) + " failed: " + sqlite3_errmsg(db_) +
                         " (code " + std::to_string(code) + ")",
                     code);
}

Transaction::Transaction(Connection& connection, Kind kind) : connection_(connection) {
  connection_.exec(kind == Kind::write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED");
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    connection_.exec("ROLLBACK");
  } catch (const StorageError& error) {
    // SQLite may already have rolled back (e.g. after SQLITE_FULL); nothing left to undo.
    log::debug("storage: rollback: ", error.what());
  }
}

void Transaction::commit() {
  connection_.exec("COMMIT");
  open_ = false;
}

}  // namespace credmq::storage
