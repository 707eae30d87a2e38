// Shared by the storage tests: the data dir's files and database touched behind the store's
// back, and Store::open()'s refusals.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "credmq/storage/store.hpp"

namespace credmq::storage::test_support {

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Runs SQL on the database file directly (the store closed).
inline void exec_sql(const std::filesystem::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << (error ? error : "");
  sqlite3_free(error);
  sqlite3_close(db);
}

// The first column of the first row `sql` returns (-1 if no row), read on the database file
// directly.
inline std::int64_t query_integer(const std::filesystem::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

// Store::open(dir) must refuse with a StorageError whose message holds `expected`;
// `if_opened` is the failure reported when it opens.
inline void expect_open_refused(const std::filesystem::path& dir, const char* if_opened,
                                const char* expected) {
  try {
    Store::open(dir);
    FAIL() << if_opened;
  } catch (const StorageError& error) {
    EXPECT_THAT(error.what(), ::testing::HasSubstr(expected));
  }
}

}  // namespace credmq::storage::test_support
