// Shared by the fuzz targets whose input is a list of NUL-separated fields.
#pragma once

#include <cstddef>
#include <limits>
#include <string_view>
#include <vector>

namespace credmq::fuzz {

// The first `max_fields` fields of `input` split at NUL bytes (a raw NUL is never valid inside
// a field). Always at least one field; empty fields are kept, including a last one after a
// trailing NUL.
inline std::vector<std::string_view> split_at_nul(
    std::string_view input, std::size_t max_fields = std::numeric_limits<std::size_t>::max()) {
  std::vector<std::string_view> fields;
  for (std::size_t start = 0;;) {
    const std::size_t end = input.find('\0', start);
    fields.push_back(input.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos || fields.size() == max_fields) break;
    start = end + 1;
  }
  return fields;
}

}  // namespace credmq::fuzz
