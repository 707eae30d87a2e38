// Test-only storage fault injection: a SQLite VFS shim in front of the default ("unix") VFS
// that makes the database's file I/O fail on demand, so tests can drive the real broker
// through an unreadable/unwritable database or a full disk (we run as root: chmod does not
// stop writes).
//
// Nothing of it runs unless install_fault_injection() was called (the credmq executable calls
// it only when the environment variable CREDMQ_STORAGE_FAULTS names a control file); without
// it SQLite uses its default VFS directly and there is no cost at all.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

namespace credmq::storage {

enum class StorageFault {
  none,
  // Unreadable and unwritable: opens, reads, writes, syncs, truncates and WAL-index lock
  // acquisitions fail with SQLITE_CANTOPEN / SQLITE_IOERR_* (memory-mapped reads are off).
  io_error,
  // Unwritable: writes, syncs and truncates fail with SQLITE_IOERR_*; reads work.
  write_error,
  // Disk full: every write fails with SQLITE_FULL; reads, syncs and truncates work.
  full,
};

// Parses "none", "io-error", "write-error", "full" (surrounding whitespace ignored).
std::optional<StorageFault> parse_storage_fault(std::string_view text);
std::string_view storage_fault_name(StorageFault fault);

// Registers the shim as SQLite's default VFS for this process (only databases opened
// afterwards use it). With a control file, the fault in force is the word in that file,
// re-read at every I/O operation (a missing or empty file means none), so another process
// switches faults instantly by rewriting it; without one, set_storage_fault() decides.
// Idempotent: a second call only changes the control file. Throws StorageError if SQLite
// refuses the registration.
void install_fault_injection(std::optional<std::filesystem::path> control_file = std::nullopt);

// The fault used when no control file was given (unit tests). Initially none.
void set_storage_fault(StorageFault fault);

}  // namespace credmq::storage
