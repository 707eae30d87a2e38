#include "rules.hpp"

#include <algorithm>
#include <cstdint>

namespace credmq::admin {
namespace {

constexpr std::size_t kMaxClientIdLength = 64;
constexpr std::size_t kMinGroupIdLength = 7;
constexpr std::size_t kMaxGroupIdLength = 64;
constexpr std::string_view kSeparator = "@@@";

bool is_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool all_id_chars(std::string_view text) {
  for (char c : text) {
    if (!is_id_char(c)) return false;
  }
  return true;
}

bool digits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  out = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

}  // namespace

bool is_valid_group_id(std::string_view group_id) {
  if (group_id.size() < kMinGroupIdLength || group_id.size() > kMaxGroupIdLength) return false;
  if (!group_id.starts_with("GID_") && !group_id.starts_with("GID-")) return false;
  return all_id_chars(group_id);
}

bool is_valid_client_id(std::string_view client_id) {
  if (client_id.size() > kMaxClientIdLength) return false;
  const auto separator = client_id.find(kSeparator);
  if (separator == std::string_view::npos) return false;
  const auto device_id = client_id.substr(separator + kSeparator.size());
  return is_valid_group_id(client_id.substr(0, separator)) && !device_id.empty() &&
         all_id_chars(device_id);
}

std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text) {
  // YYYY-MM-DDThh:mm:ss then optional .fraction then Z
  if (text.size() < 20 || text.back() != 'Z') return std::nullopt;
  if (text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') {
    return std::nullopt;
  }
  const auto tail = text.substr(19, text.size() - 20);  // between seconds and 'Z'
  if (!tail.empty()) {
    if (tail.size() < 2 || tail[0] != '.') return std::nullopt;
    for (char c : tail.substr(1)) {
      if (c < '0' || c > '9') return std::nullopt;
    }
  }
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(text, 0, 4, year) || !digits(text, 5, 2, month) || !digits(text, 8, 2, day) ||
      !digits(text, 11, 2, hour) || !digits(text, 14, 2, minute) || !digits(text, 17, 2, second)) {
    return std::nullopt;
  }
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{year},
                                         std::chrono::month{static_cast<unsigned>(month)},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  // In seconds first: a system_clock time point counts nanoseconds in 64 bits and holds only
  // the years 1678-2261, so converting year 9999 (or 0001) overflowed (UB, found by
  // fuzz_admin_request), and the window check's `timestamp - now` needs room too. Such dates
  // are far outside any window: clamp them to 1970 / 2200, which the caller refuses as expired.
  const std::chrono::sys_seconds exact = std::chrono::sys_days{date} + std::chrono::hours{hour} +
                                         std::chrono::minutes{minute} +
                                         std::chrono::seconds{second};
  constexpr std::chrono::sys_seconds kEarliest{std::chrono::seconds{0}};            // 1970-01-01
  constexpr std::chrono::sys_seconds kLatest{std::chrono::seconds{7'258'118'400}};  // 2200-01-01
  return std::chrono::system_clock::time_point{std::clamp(exact, kEarliest, kLatest)};
}

std::optional<int> parse_bounded_int(std::string_view text, int min, int max) {
  if (text.empty() || text.size() > 9) return std::nullopt;
  std::int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  if (value < min || value > max) return std::nullopt;
  return static_cast<int>(value);
}

}  // namespace credmq::admin
