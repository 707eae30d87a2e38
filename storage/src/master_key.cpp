#include "master_key.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "credmq/common/crypto.hpp"
#include "credmq/common/log.hpp"
#include "credmq/storage/store.hpp"

namespace credmq::storage {
namespace {

std::string system_error_text(int error) { return std::strerror(error); }

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path, int error) {
  throw StorageError("storage: " + what + " " + path.string() + ": " + system_error_text(error));
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

void write_all(int fd, const std::string& bytes, const std::filesystem::path& path) {
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", path, errno);
    }
    written += static_cast<std::size_t>(n);
  }
}

void sync_directory(const std::filesystem::path& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());
}

// Writes a complete key to a private temporary file, then link()s it into place: link fails
// with EEXIST if another process won the race, so nobody ever reads a half-written key.
// Returns false if the key file appeared meanwhile.
bool create_key_file(const std::filesystem::path& path, const std::string& key) {
  const std::filesystem::path temp =
      path.parent_path() / (path.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                            crypto::base64url_encode(crypto::random_bytes(6)));
  {
    FileDescriptor fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.get() < 0) fail("cannot create", temp, errno);
    try {
      write_all(fd.get(), key, temp);
      if (::fsync(fd.get()) != 0) fail("cannot sync", temp, errno);
    } catch (...) {
      ::unlink(temp.c_str());
      throw;
    }
  }
  const int rc = ::link(temp.c_str(), path.c_str());
  const int link_error = errno;
  ::unlink(temp.c_str());
  if (rc != 0) {
    if (link_error == EEXIST) return false;
    fail("cannot create", path, link_error);
  }
  sync_directory(path.parent_path());
  return true;
}

std::string read_key_file(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail("cannot open", path, errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) fail("cannot stat", path, errno);
  if (!S_ISREG(info.st_mode) || info.st_size != static_cast<off_t>(crypto::kAesKeySize)) {
    throw StorageError("storage: master key " + path.string() + " must be a regular file of " +
                       std::to_string(crypto::kAesKeySize) + " bytes");
  }
  if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    log::warn("storage: master key ", path.string(), " is accessible by group or others");
  }
  std::string key(crypto::kAesKeySize, '\0');
  std::size_t got = 0;
  while (got < key.size()) {
    const ssize_t n = ::read(fd.get(), key.data() + got, key.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read", path, errno);
    if (n == 0) throw StorageError("storage: master key " + path.string() + " is truncated");
    got += static_cast<std::size_t>(n);
  }
  return key;
}

}  // namespace

std::string load_or_create_master_key(const std::filesystem::path& path, bool may_create) {
  std::error_code error;
  const bool present = std::filesystem::exists(std::filesystem::symlink_status(path, error));
  if (!present) {
    if (!may_create) {
      throw StorageError("storage: master key " + path.string() +
                         " is missing but the database holds encrypted secrets (restore the "
                         "master.key backed up with this credmq.db; a new key could not "
                         "decrypt them)");
    }
    std::string key = crypto::random_bytes(crypto::kAesKeySize);
    if (create_key_file(path, key)) {
      log::info("storage: created master key ", path.string());
      return key;
    }
  }
  return read_key_file(path);
}

void ensure_private_directory(const std::filesystem::path& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0) return;
  if (errno == EEXIST) {
    if (!std::filesystem::is_directory(dir)) {
      throw StorageError("storage: " + dir.string() + " is not a directory");
    }
    return;
  }
  if (errno != ENOENT) fail("cannot create directory", dir, errno);
  // Missing parents: create them with default permissions, the leaf itself private.
  std::error_code error;
  if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), error);
  if (error) throw StorageError("storage: cannot create directory " + dir.parent_path().string());
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    fail("cannot create directory", dir, errno);
  }
}

void ensure_private_file(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (fd.get() < 0) fail("cannot open", path, errno);
}

DataDirLock::DataDirLock(const std::filesystem::path& dir) {
  const auto path = dir / "credmq.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw StorageError("storage: cannot open " + path.string() + ": " + std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw StorageError(error == EWOULDBLOCK
                           ? "storage: data dir " + dir.string() +
                                 " is in use by another credmq process"
                           : "storage: cannot lock " + path.string() + ": " + std::strerror(error));
  }
}

DataDirLock::~DataDirLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace credmq::storage
