// Helpers shared by the admin tests (and the admin fuzz targets).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "../../admin/src/signature.hpp"  // internal header, reached relative to this file

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

// `params` as a client form-encodes them (query string or form body): name=value pairs,
// both percent-encoded, joined by '&'.
inline std::string form_encode(const Params& params) {
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += percent_encode(name) + "=" + percent_encode(value);
  }
  return out;
}

}  // namespace credmq::admin::test_support
