// UTF-8 validation and topic name/filter rules (MQTT 3.1.1 section 4.7, 5.0 section 4.7).
#include <cstring>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {
namespace {

constexpr std::uint64_t high_bits = 0x8080808080808080ull;
constexpr std::uint64_t low_bits = 0x0101010101010101ull;

// True when the 8 bytes are all ASCII and none is NUL: the common case, checked a word at a time.
inline bool plain_ascii_word(const unsigned char* bytes) {
  std::uint64_t word;
  std::memcpy(&word, bytes, sizeof word);
  const bool has_zero_byte = ((word - low_bits) & ~word & high_bits) != 0;
  return (word & high_bits) == 0 && !has_zero_byte;
}

}  // namespace

// Well-formed UTF-8 per RFC 3629 (no overlongs, no surrogates, nothing above U+10FFFF)
// [MQTT-1.5.4-1], and no U+0000 [MQTT-1.5.4-2].
bool valid_utf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  std::size_t index = 0;
  while (index < size) {
    if (size - index >= 8 && plain_ascii_word(bytes + index)) {
      index += 8;
      continue;
    }
    const unsigned char lead = bytes[index];
    if (lead < 0x80) {
      if (lead == 0) return false;
      ++index;
      continue;
    }
    std::size_t continuation_count;
    unsigned char second_min = 0x80, second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation_count = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      continuation_count = 2;
      if (lead == 0xE0) second_min = 0xA0;  // overlong
      if (lead == 0xED) second_max = 0x9F;  // surrogates U+D800..U+DFFF
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      continuation_count = 3;
      if (lead == 0xF0) second_min = 0x90;  // overlong
      if (lead == 0xF4) second_max = 0x8F;  // above U+10FFFF
    } else {
      return false;  // continuation byte as lead, C0/C1 overlongs, F5..FF
    }
    if (size - index <= continuation_count) return false;
    const unsigned char second = bytes[index + 1];
    if (second < second_min || second > second_max) return false;
    for (std::size_t offset = 2; offset <= continuation_count; ++offset) {
      if ((bytes[index + offset] & 0xC0) != 0x80) return false;
    }
    index += continuation_count + 1;
  }
  return true;
}

bool valid_topic_name(std::string_view topic) {
  // Topic names are at least one character [MQTT-4.7.3-1] and carry no wildcards [MQTT-3.3.2-2].
  return !topic.empty() && topic.find_first_of("+#") == std::string_view::npos && valid_utf8(topic);
}

bool valid_topic_filter(std::string_view filter) {
  if (filter.empty() || !valid_utf8(filter)) return false;  // [MQTT-4.7.3-1]
  std::size_t level_start = 0;
  for (;;) {
    std::size_t level_end = filter.find('/', level_start);
    const bool last_level = level_end == std::string_view::npos;
    if (last_level) level_end = filter.size();
    const std::string_view level = filter.substr(level_start, level_end - level_start);
    if (level.find('#') != std::string_view::npos) {
      // '#' stands alone as the last level [MQTT-4.7.1-1].
      if (level.size() != 1 || !last_level) return false;
    } else if (level.find('+') != std::string_view::npos) {
      // '+' occupies an entire level [MQTT-4.7.1-2].
      if (level.size() != 1) return false;
    }
    if (last_level) return true;
    level_start = level_end + 1;
  }
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  // Wildcards at the start of a filter do not match topics beginning with '$' [MQTT-4.7.2-1].
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  std::size_t filter_start = 0;
  std::size_t topic_start = 0;
  bool topic_exhausted = false;
  for (;;) {
    std::size_t filter_end = filter.find('/', filter_start);
    if (filter_end == std::string_view::npos) filter_end = filter.size();
    const std::string_view filter_level = filter.substr(filter_start, filter_end - filter_start);
    // '#' also matches the parent level: "sport/#" matches "sport".
    if (filter_level == "#") return true;
    if (topic_exhausted) return false;
    std::size_t topic_end = topic.find('/', topic_start);
    if (topic_end == std::string_view::npos) topic_end = topic.size();
    const std::string_view topic_level = topic.substr(topic_start, topic_end - topic_start);
    if (filter_level != "+" && filter_level != topic_level) return false;
    const bool filter_done = filter_end == filter.size();
    const bool topic_done = topic_end == topic.size();
    if (filter_done) return topic_done;
    filter_start = filter_end + 1;
    if (topic_done) {
      topic_exhausted = true;
    } else {
      topic_start = topic_end + 1;
    }
  }
}

}  // namespace credmq::mqtt
