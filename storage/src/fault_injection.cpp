// The fault-injection VFS shim (see fault_injection.hpp). Every file SQLite opens goes
// through FaultFile, which forwards to the real VFS's file unless the fault in force says the
// operation fails. Unlock operations always go through, so SQLite's lock state stays sane.
#include "credmq/storage/fault_injection.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <mutex>
#include <string>

#include "credmq/common/log.hpp"
#include "credmq/storage/store.hpp"

namespace credmq::storage {
namespace {

constexpr const char* kVfsName = "credmq-faults";

sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs fault_vfs{};
std::once_flag registered;
// Set once per install_fault_injection() call; older values are leaked on purpose (a reader
// may still hold one, and there are at most a handful).
std::atomic<const std::string*> control_path{nullptr};
std::atomic<StorageFault> in_process_fault{StorageFault::none};
std::atomic<StorageFault> last_reported{StorageFault::none};

StorageFault read_control_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return StorageFault::none;
  char buffer[64];
  ssize_t n;
  do {
    n = ::read(fd, buffer, sizeof buffer);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return StorageFault::none;
  const auto fault = parse_storage_fault(std::string_view(buffer, static_cast<std::size_t>(n)));
  return fault.value_or(StorageFault::none);
}

StorageFault current_fault() {
  const std::string* path = control_path.load(std::memory_order_acquire);
  const StorageFault fault =
      path ? read_control_file(*path) : in_process_fault.load(std::memory_order_relaxed);
  if (last_reported.exchange(fault, std::memory_order_relaxed) != fault) {
    log::warn("storage: injected fault now ", storage_fault_name(fault));
  }
  return fault;
}

struct FaultFile {
  sqlite3_file base;   // base.pMethods = &kFaultMethods once the real file is open
  sqlite3_file* real;  // lives right after this struct (szOsFile covers both)
};

sqlite3_file* real_of(sqlite3_file* file) { return reinterpret_cast<FaultFile*>(file)->real; }

int fault_close(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods ? real->pMethods->xClose(real) : SQLITE_OK;
}

int fault_read(sqlite3_file* file, void* buffer, int amount, sqlite3_int64 offset) {
  if (current_fault() == StorageFault::io_error) return SQLITE_IOERR_READ;
  sqlite3_file* real = real_of(file);
  return real->pMethods->xRead(real, buffer, amount, offset);
}

int fault_write(sqlite3_file* file, const void* buffer, int amount, sqlite3_int64 offset) {
  switch (current_fault()) {
    case StorageFault::io_error:
    case StorageFault::write_error:
      return SQLITE_IOERR_WRITE;
    case StorageFault::full:
      return SQLITE_FULL;
    case StorageFault::none:
      break;
  }
  sqlite3_file* real = real_of(file);
  return real->pMethods->xWrite(real, buffer, amount, offset);
}

int fault_truncate(sqlite3_file* file, sqlite3_int64 size) {
  const StorageFault fault = current_fault();
  if (fault == StorageFault::io_error || fault == StorageFault::write_error) {
    return SQLITE_IOERR_TRUNCATE;
  }
  sqlite3_file* real = real_of(file);
  return real->pMethods->xTruncate(real, size);
}

int fault_sync(sqlite3_file* file, int flags) {
  const StorageFault fault = current_fault();
  if (fault == StorageFault::io_error || fault == StorageFault::write_error) {
    return SQLITE_IOERR_FSYNC;
  }
  sqlite3_file* real = real_of(file);
  return real->pMethods->xSync(real, flags);
}

int fault_file_size(sqlite3_file* file, sqlite3_int64* size) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFileSize(real, size);
}

int fault_lock(sqlite3_file* file, int level) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xLock(real, level);
}

int fault_unlock(sqlite3_file* file, int level) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xUnlock(real, level);
}

int fault_check_reserved_lock(sqlite3_file* file, int* out) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xCheckReservedLock(real, out);
}

int fault_file_control(sqlite3_file* file, int op, void* arg) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xFileControl(real, op, arg);
}

int fault_sector_size(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xSectorSize(real);
}

int fault_device_characteristics(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  return real->pMethods->xDeviceCharacteristics(real);
}

int fault_shm_map(sqlite3_file* file, int page, int page_size, int extend, void volatile** out) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 2 || !real->pMethods->xShmMap) return SQLITE_IOERR_SHMMAP;
  return real->pMethods->xShmMap(real, page, page_size, extend, out);
}

// A WAL-mode transaction starts by taking a WAL-index lock; failing that is what makes a read
// fail even when every page it needs is in the connection's cache.
int fault_shm_lock(sqlite3_file* file, int offset, int count, int flags) {
  if ((flags & SQLITE_SHM_LOCK) && current_fault() == StorageFault::io_error) {
    return SQLITE_IOERR_SHMLOCK;
  }
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 2 || !real->pMethods->xShmLock) return SQLITE_IOERR_SHMLOCK;
  return real->pMethods->xShmLock(real, offset, count, flags);
}

void fault_shm_barrier(sqlite3_file* file) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion >= 2 && real->pMethods->xShmBarrier) {
    real->pMethods->xShmBarrier(real);
  }
}

int fault_shm_unmap(sqlite3_file* file, int delete_flag) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 2 || !real->pMethods->xShmUnmap) return SQLITE_OK;
  return real->pMethods->xShmUnmap(real, delete_flag);
}

// Returning no pointer makes SQLite use xRead, where the fault applies.
int fault_fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  *out = nullptr;
  if (current_fault() != StorageFault::none) return SQLITE_OK;
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 3 || !real->pMethods->xFetch) return SQLITE_OK;
  return real->pMethods->xFetch(real, offset, amount, out);
}

int fault_unfetch(sqlite3_file* file, sqlite3_int64 offset, void* pointer) {
  sqlite3_file* real = real_of(file);
  if (real->pMethods->iVersion < 3 || !real->pMethods->xUnfetch) return SQLITE_OK;
  return real->pMethods->xUnfetch(real, offset, pointer);
}

const sqlite3_io_methods kFaultMethods = {
    3,
    fault_close,
    fault_read,
    fault_write,
    fault_truncate,
    fault_sync,
    fault_file_size,
    fault_lock,
    fault_unlock,
    fault_check_reserved_lock,
    fault_file_control,
    fault_sector_size,
    fault_device_characteristics,
    fault_shm_map,
    fault_shm_lock,
    fault_shm_barrier,
    fault_shm_unmap,
    fault_fetch,
    fault_unfetch,
};

int fault_open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* wrapper = reinterpret_cast<FaultFile*>(file);
  wrapper->base.pMethods = nullptr;
  wrapper->real = reinterpret_cast<sqlite3_file*>(wrapper + 1);
  wrapper->real->pMethods = nullptr;
  if (current_fault() == StorageFault::io_error) return SQLITE_CANTOPEN;
  const int rc = real_vfs->xOpen(real_vfs, name, wrapper->real, flags, out_flags);
  if (wrapper->real->pMethods) wrapper->base.pMethods = &kFaultMethods;
  return rc;
}

// The rest of the VFS goes straight to the real one, with the real one as its `this`.
int vfs_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
int vfs_access(sqlite3_vfs*, const char* name, int flags, int* out) {
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
int vfs_full_pathname(sqlite3_vfs*, const char* name, int size, char* out) {
  return real_vfs->xFullPathname(real_vfs, name, size, out);
}
void* vfs_dl_open(sqlite3_vfs*, const char* name) { return real_vfs->xDlOpen(real_vfs, name); }
void vfs_dl_error(sqlite3_vfs*, int size, char* out) { real_vfs->xDlError(real_vfs, size, out); }
void (*vfs_dl_sym(sqlite3_vfs*, void* handle, const char* symbol))(void) {
  return real_vfs->xDlSym(real_vfs, handle, symbol);
}
void vfs_dl_close(sqlite3_vfs*, void* handle) { real_vfs->xDlClose(real_vfs, handle); }
int vfs_randomness(sqlite3_vfs*, int size, char* out) {
  return real_vfs->xRandomness(real_vfs, size, out);
}
int vfs_sleep(sqlite3_vfs*, int micros) { return real_vfs->xSleep(real_vfs, micros); }
int vfs_current_time(sqlite3_vfs*, double* out) { return real_vfs->xCurrentTime(real_vfs, out); }
int vfs_get_last_error(sqlite3_vfs*, int size, char* out) {
  return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, size, out) : 0;
}
int vfs_current_time_int64(sqlite3_vfs*, sqlite3_int64* out) {
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

}  // namespace

std::optional<StorageFault> parse_storage_fault(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  while (!text.empty() &&
         (std::isspace(static_cast<unsigned char>(text.back())) || text.back() == '\0')) {
    text.remove_suffix(1);
  }
  if (text.empty() || text == "none") return StorageFault::none;
  if (text == "io-error") return StorageFault::io_error;
  if (text == "write-error") return StorageFault::write_error;
  if (text == "full") return StorageFault::full;
  return std::nullopt;
}

std::string_view storage_fault_name(StorageFault fault) {
  switch (fault) {
    case StorageFault::none:
      return "none";
    case StorageFault::io_error:
      return "io-error";
    case StorageFault::write_error:
      return "write-error";
    case StorageFault::full:
      return "full";
  }
  return "?";
}

void install_fault_injection(std::optional<std::filesystem::path> control_file) {
  if (control_file) {
    control_path.store(new std::string(control_file->string()), std::memory_order_release);
  }
  std::call_once(registered, [] {
    real_vfs = sqlite3_vfs_find(nullptr);
    if (real_vfs == nullptr) throw StorageError("storage: no default SQLite VFS");
    fault_vfs.iVersion = 2;
    fault_vfs.szOsFile = static_cast<int>(sizeof(FaultFile)) + real_vfs->szOsFile;
    fault_vfs.mxPathname = real_vfs->mxPathname;
    fault_vfs.zName = kVfsName;
    fault_vfs.xOpen = fault_open;
    fault_vfs.xDelete = vfs_delete;
    fault_vfs.xAccess = vfs_access;
    fault_vfs.xFullPathname = vfs_full_pathname;
    fault_vfs.xDlOpen = vfs_dl_open;
    fault_vfs.xDlError = vfs_dl_error;
    fault_vfs.xDlSym = vfs_dl_sym;
    fault_vfs.xDlClose = vfs_dl_close;
    fault_vfs.xRandomness = vfs_randomness;
    fault_vfs.xSleep = vfs_sleep;
    fault_vfs.xCurrentTime = vfs_current_time;
    fault_vfs.xGetLastError = vfs_get_last_error;
    fault_vfs.xCurrentTimeInt64 = vfs_current_time_int64;
    const int rc = sqlite3_vfs_register(&fault_vfs, /*makeDflt=*/1);
    if (rc != SQLITE_OK) {
      throw StorageError(std::string("storage: cannot register the fault-injection VFS: ") +
                         sqlite3_errstr(rc));
    }
  });
  log::warn("storage: fault injection is on (test only)",
            control_file ? ", control file " + control_file->string() : std::string());
}

void set_storage_fault(StorageFault fault) {
  in_process_fault.store(fault, std::memory_order_relaxed);
}

}  // namespace credmq::storage
