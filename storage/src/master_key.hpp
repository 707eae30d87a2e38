// The master key file that encrypts secrets at rest: DIR/master.key, 32 raw bytes, mode 0600.
#pragma once

#include <filesystem>
#include <string>

namespace credmq::storage {

// Reads the key; if the file is missing and `may_create`, creates it atomically with fresh
// random bytes. Throws StorageError if it is missing (and may not be created), unreadable or
// not exactly 32 bytes.
std::string load_or_create_master_key(const std::filesystem::path& path, bool may_create);

// Creates `dir` (mode 0700) if missing. Throws StorageError.
void ensure_private_directory(const std::filesystem::path& dir);

// Creates an empty file with mode 0600 if missing, so SQLite (which copies the database's
// mode to its -wal and -shm files) never creates world-readable files.
void ensure_private_file(const std::filesystem::path& path);

// Exclusive lock on the data dir (flock on DIR/credmq.lock) for the life of the object. A
// second credmq on the same dir would not know the first one's live sessions, so its
// revocations could not close them: it must refuse to start instead.
class DataDirLock {
 public:
  explicit DataDirLock(const std::filesystem::path& dir);  // throws StorageError if held
  ~DataDirLock();
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace credmq::storage
