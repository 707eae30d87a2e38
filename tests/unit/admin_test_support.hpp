// Helpers shared by the admin tests.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace credmq::admin::test_support {

// `when` as the API's Timestamp: UTC "YYYY-MM-DDThh:mm:ssZ".
inline std::string utc_timestamp(
    std::chrono::system_clock::time_point when = std::chrono::system_clock::now()) {
  const auto seconds = std::chrono::floor<std::chrono::seconds>(when);
  const auto days = std::chrono::floor<std::chrono::days>(seconds);
  const std::chrono::year_month_day date{days};
  const std::chrono::hh_mm_ss time{seconds - days};
  char text[32];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02ld:%02ld:%02ldZ", int(date.year()),
                unsigned(date.month()), unsigned(date.day()), long(time.hours().count()),
                long(time.minutes().count()), long(time.seconds().count()));
  return text;
}

}  // namespace credmq::admin::test_support
