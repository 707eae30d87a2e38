// Minimal leveled logging to stderr. Arguments are streamed one after another:
//   log::info("client ", client_id, " connected on ", instance);
// Never pass secrets (passwords, access key secrets, master keys): log key ids only.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace credmq::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };

void set_level(Level level);
Level level();
// Parses "debug", "info", "warn", "error", "off"; returns false on an unknown name.
bool parse_level(std::string_view name, Level& out);
void write(Level level, std::string_view message);
// A client-supplied value (client id, topic) cut to at most `max` bytes for a log line, so a
// 64 KiB client id cannot make 64 KiB log lines.
std::string clip(std::string_view value, std::size_t max = 128);

template <class... Args>
void emit(Level at, const Args&... args) {
  if (level() > at) return;
  std::ostringstream out;
  (out << ... << args);
  write(at, out.str());
}
template <class... Args>
void debug(const Args&... args) {
  emit(Level::debug, args...);
}
template <class... Args>
void info(const Args&... args) {
  emit(Level::info, args...);
}
template <class... Args>
void warn(const Args&... args) {
  emit(Level::warn, args...);
}
template <class... Args>
void error(const Args&... args) {
  emit(Level::error, args...);
}

}  // namespace credmq::log
