// Byte-level reading and writing shared by the codec translation units. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt::wire {

inline constexpr std::uint32_t max_variable_byte_integer = 268'435'455;
inline constexpr std::size_t max_two_byte_length = 65'535;

// Bounds-checked cursor over a packet. Every read fails (returns false) instead of reading
// past the end, which the decoder reports as a Malformed Packet.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) : data_(bytes.data()), size_(bytes.size()) {}

  std::size_t remaining() const { return size_ - position_; }
  bool at_end() const { return position_ == size_; }

  bool read_byte(std::uint8_t& value) {
    if (remaining() < 1) return false;
    value = data_[position_++];
    return true;
  }
  bool read_u16(std::uint16_t& value) {
    if (remaining() < 2) return false;
    value = static_cast<std::uint16_t>((data_[position_] << 8) | data_[position_ + 1]);
    position_ += 2;
    return true;
  }
  bool read_u32(std::uint32_t& value) {
    if (remaining() < 4) return false;
    value = (std::uint32_t{data_[position_]} << 24) | (std::uint32_t{data_[position_ + 1]} << 16) |
            (std::uint32_t{data_[position_ + 2]} << 8) | std::uint32_t{data_[position_ + 3]};
    position_ += 4;
    return true;
  }
  // At most 4 bytes; a continuation bit on the 4th byte is malformed [MQTT-1.5.5-1].
  // Non-minimal encodings are accepted: the minimality rule binds the sender only.
  bool read_variable_byte_integer(std::uint32_t& value) {
    value = 0;
    for (int index = 0; index < 4; ++index) {
      std::uint8_t byte = 0;
      if (!read_byte(byte)) return false;
      value |= std::uint32_t{byte & 0x7Fu} << (7 * index);
      if ((byte & 0x80u) == 0) return true;
    }
    return false;
  }
  // Two-byte length followed by that many bytes, viewed in place.
  bool read_length_prefixed(std::string_view& value) {
    std::uint16_t length = 0;
    if (!read_u16(length) || remaining() < length) return false;
    value = std::string_view(reinterpret_cast<const char*>(data_ + position_), length);
    position_ += length;
    return true;
  }
  bool read_bytes(std::size_t count, std::string_view& value) {
    if (remaining() < count) return false;
    value = std::string_view(reinterpret_cast<const char*>(data_ + position_), count);
    position_ += count;
    return true;
  }
  // Splits off the next `count` bytes as their own reader (for property blocks).
  bool split(std::size_t count, Reader& part) {
    if (remaining() < count) return false;
    part = Reader(std::span<const std::uint8_t>(data_ + position_, count));
    position_ += count;
    return true;
  }

 private:
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t position_ = 0;
};

constexpr std::size_t variable_byte_integer_size(std::uint32_t value) {
  return value < 128 ? 1 : value < 16'384 ? 2 : value < 2'097'152 ? 3 : 4;
}

// Sinks: encoding is written once, generic over a sink that either counts bytes or appends them,
// so encoded_size() and encode() cannot disagree.
struct SizeSink {
  std::size_t size = 0;
  void byte(std::uint8_t) { size += 1; }
  void u16(std::uint16_t) { size += 2; }
  void u32(std::uint32_t) { size += 4; }
  void variable_byte_integer(std::uint32_t value) { size += variable_byte_integer_size(value); }
  void raw(std::string_view bytes) { size += bytes.size(); }
  void length_prefixed(std::string_view bytes) { size += 2 + bytes.size(); }
};

struct StringSink {
  std::string& out;
  void byte(std::uint8_t value) { out.push_back(static_cast<char>(value)); }
  void u16(std::uint16_t value) {
    const char bytes[2] = {static_cast<char>(value >> 8), static_cast<char>(value)};
    out.append(bytes, 2);
  }
  void u32(std::uint32_t value) {
    const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                           static_cast<char>(value >> 8), static_cast<char>(value)};
    out.append(bytes, 4);
  }
  void variable_byte_integer(std::uint32_t value) {
    if (value > max_variable_byte_integer) {
      throw std::length_error("value exceeds the MQTT Variable Byte Integer range");
    }
    char bytes[4];
    std::size_t count = 0;
    do {
      std::uint8_t byte = value & 0x7Fu;
      value >>= 7;
      if (value != 0) byte |= 0x80u;
      bytes[count++] = static_cast<char>(byte);
    } while (value != 0);
    out.append(bytes, count);
  }
  void raw(std::string_view bytes) { out.append(bytes); }
  void length_prefixed(std::string_view bytes) {
    // A longer string cannot be represented; silently truncating would corrupt the stream.
    if (bytes.size() > max_two_byte_length) {
      throw std::length_error("MQTT string or binary field longer than 65535 bytes");
    }
    u16(static_cast<std::uint16_t>(bytes.size()));
    out.append(bytes);
  }
};

}  // namespace credmq::mqtt::wire
