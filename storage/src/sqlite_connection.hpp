// RAII wrappers over one sqlite3 connection and its cached prepared statements.
// A Connection is used by one thread at a time (the pool hands it out exclusively).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace credmq::storage {

class Connection;

// A cached prepared statement in use. Resets and clears its bindings on destruction so the
// cached statement never holds a read snapshot or stale values between uses.
class Statement {
 public:
  Statement(Connection& connection, sqlite3_stmt* stmt) : connection_(connection), stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite.
  Statement& bind(int index, std::string_view text);
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind(int index, std::int64_t value);
  Statement& bind_null(int index);
  // NULL for an empty optional.
  Statement& bind(int index, const std::optional<std::int64_t>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }

  // Advances; true if a row is available, false when done. Throws StorageError.
  bool step();
  // Runs a statement that returns no rows.
  void run();

  std::string text(int column) const;  // 0-based
  std::string blob(int column) const;
  std::int64_t integer(int column) const;
  bool is_null(int column) const;

 private:
  Connection& connection_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  // Opens (creating if missing) the database file and applies the per-connection pragmas.
  explicit Connection(const std::filesystem::path& db_path);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // `sql` must be a string literal: it is the cache key and is never built from values.
  Statement prepare(const char* sql);
  // Runs one or more fixed statements without results (schema, pragmas, BEGIN/COMMIT).
  void exec(const char* sql);

  // Throws StorageError describing the last error of this connection.
  [[noreturn]] void fail(std::string_view what) const;
  [[noreturn]] void fail(std::string_view what, int code) const;

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
};

// BEGIN (IMMEDIATE for writes) ... COMMIT, rolled back if destroyed before commit().
class Transaction {
 public:
  enum class Kind { read, write };
  Transaction(Connection& connection, Kind kind);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Connection& connection_;
  bool open_ = true;
};

}  // namespace credmq::storage
