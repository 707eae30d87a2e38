// frame(): fixed header parsing, Variable Byte Integer edges, incremental input, size limits.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {
namespace {

constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

Frame frame_of(const std::vector<std::uint8_t>& bytes, std::size_t max = unlimited) {
  return frame(bytes, max);
}

struct VbiCase {
  std::uint32_t value;
  std::vector<std::uint8_t> encoding;
};

const VbiCase vbi_cases[] = {
    {0, {0x00}},
    {127, {0x7F}},
    {128, {0x80, 0x01}},
    {16'383, {0xFF, 0x7F}},
    {16'384, {0x80, 0x80, 0x01}},
    {2'097'151, {0xFF, 0xFF, 0x7F}},
    {2'097'152, {0x80, 0x80, 0x80, 0x01}},
    {268'435'455, {0xFF, 0xFF, 0xFF, 0x7F}},
};

TEST(CodecFrame, VariableByteIntegerEdgeValuesDecode) {
  for (const VbiCase& c : vbi_cases) {
    std::vector<std::uint8_t> bytes{0x30};
    bytes.insert(bytes.end(), c.encoding.begin(), c.encoding.end());
    const Frame f = frame_of(bytes);
    ASSERT_EQ(f.status, Frame::Status::complete) << c.value;
    EXPECT_EQ(f.first_byte, 0x30);
    EXPECT_EQ(f.remaining_length, c.value);
    EXPECT_EQ(f.header_size, 1 + c.encoding.size());
    EXPECT_EQ(f.total_size(), 1 + c.encoding.size() + c.value);
  }
}

TEST(CodecFrame, VariableByteIntegerEdgeValuesEncodeMinimally) {
  // encode_publish_header writes the real remaining length without needing the payload.
  for (const VbiCase& c : vbi_cases) {
    if (c.value < 3) continue;  // a PUBLISH with topic "t" has at least 3 bytes
    std::string out;
    encode_publish_header(out, ProtocolVersion::v3_1_1, 0, false, false, "t", 0, {}, c.value - 3);
    std::string expected{'\x30'};
    expected.append(c.encoding.begin(), c.encoding.end());
    expected.append({'\x00', '\x01', 't'});
    EXPECT_EQ(out, expected) << c.value;
  }
  std::string ping;
  encode(Pingreq{}, ProtocolVersion::v3_1_1, ping);
  EXPECT_EQ(ping, std::string("\xC0\x00", 2));
}

TEST(CodecFrame, NonMinimalLengthIsAccepted) {
  // Minimal encoding binds the sender; a receiver accepting up to 4 bytes is interoperable.
  const Frame f = frame_of({0xC0, 0x80, 0x00});
  ASSERT_EQ(f.status, Frame::Status::complete);
  EXPECT_EQ(f.remaining_length, 0u);
  EXPECT_EQ(f.header_size, 3u);
  Packet packet;
  EXPECT_FALSE(
      decode(std::vector<std::uint8_t>{0xC0, 0x80, 0x00}, ProtocolVersion::v3_1_1, packet));
  EXPECT_TRUE(std::holds_alternative<Pingreq>(packet));
}

TEST(CodecFrame, FifthLengthByteIsMalformed) {
  const Frame f = frame_of({0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F});
  EXPECT_EQ(f.status, Frame::Status::error);
  EXPECT_EQ(f.error, ReasonCode::malformed_packet);
  // Known as soon as the 4th length byte carries a continuation bit.
  EXPECT_EQ(frame_of({0x30, 0x80, 0x80, 0x80, 0x80}).status, Frame::Status::error);
  EXPECT_EQ(frame_of({0x30, 0x80, 0x80, 0x80}).status, Frame::Status::need_more);
}

TEST(CodecFrame, EmptyAndPartialHeadersNeedMore) {
  EXPECT_EQ(frame_of({}).status, Frame::Status::need_more);
  EXPECT_EQ(frame_of({0x30}).status, Frame::Status::need_more);
  EXPECT_EQ(frame_of({0x30, 0x80}).status, Frame::Status::need_more);
  EXPECT_EQ(frame_of({0x30, 0x80, 0x80}).status, Frame::Status::need_more);
}

TEST(CodecFrame, CompleteHeaderDoesNotWaitForTheBody) {
  const Frame f = frame_of({0x30, 0x0A, 0x00});
  ASSERT_EQ(f.status, Frame::Status::complete);
  EXPECT_EQ(f.total_size(), 12u);
}

TEST(CodecFrame, IncrementalFeedingOneByteAtATime) {
  std::string encoded;
  Publish publish;
  publish.topic = "sensors/temperature";
  publish.qos = 1;
  publish.packet_id = 7;
  publish.payload.assign(300, 'x');  // two length bytes
  encode(publish, ProtocolVersion::v3_1_1, encoded);
  const std::vector<std::uint8_t> bytes(encoded.begin(), encoded.end());

  for (std::size_t available = 0; available <= bytes.size(); ++available) {
    const Frame f = frame(std::span(bytes.data(), available), unlimited);
    if (available < 3) {
      EXPECT_EQ(f.status, Frame::Status::need_more) << available;
      continue;
    }
    ASSERT_EQ(f.status, Frame::Status::complete) << available;
    EXPECT_EQ(f.header_size, 3u);
    EXPECT_EQ(f.total_size(), bytes.size());
    if (available == f.total_size()) {
      Packet packet;
      ASSERT_FALSE(decode(std::span(bytes.data(), available), ProtocolVersion::v3_1_1, packet));
      EXPECT_EQ(std::get<Publish>(packet), publish);
    }
  }
}

TEST(CodecFrame, MaxPacketSizeCountsTheFixedHeader) {
  // 0x30 0x0A: total 12 bytes.
  EXPECT_EQ(frame_of({0x30, 0x0A}, 12).status, Frame::Status::complete);
  const Frame too_large = frame_of({0x30, 0x0A}, 11);
  EXPECT_EQ(too_large.status, Frame::Status::error);
  EXPECT_EQ(too_large.error, ReasonCode::packet_too_large);
  EXPECT_EQ(too_large.remaining_length, 10u);
  EXPECT_EQ(too_large.header_size, 2u);
}

TEST(CodecFrame, TooLargeIsReportedBeforeTheBodyArrives) {
  const std::vector<std::uint8_t> header{0x30, 0xFF, 0xFF, 0xFF, 0x7F};
  for (std::size_t available = 0; available < header.size(); ++available) {
    EXPECT_EQ(frame(std::span(header.data(), available), 1024).status, Frame::Status::need_more);
  }
  const Frame f = frame(header, 1024);
  EXPECT_EQ(f.status, Frame::Status::error);
  EXPECT_EQ(f.error, ReasonCode::packet_too_large);
  // The largest possible packet fits an unlimited bound.
  EXPECT_EQ(frame(header, 268'435'455 + 5).status, Frame::Status::complete);
  EXPECT_EQ(frame(header, 268'435'455 + 4).status, Frame::Status::error);
}

TEST(CodecFrame, ConsecutivePacketsInOneBuffer) {
  std::string stream;
  encode(Pingreq{}, ProtocolVersion::v3_1_1, stream);
  encode(Ack{PacketType::puback, 9, 0, {}}, ProtocolVersion::v3_1_1, stream);
  encode(Disconnect{}, ProtocolVersion::v3_1_1, stream);
  const std::vector<std::uint8_t> bytes(stream.begin(), stream.end());
  std::span<const std::uint8_t> rest(bytes);
  std::vector<std::size_t> sizes;
  while (!rest.empty()) {
    const Frame f = frame(rest, 1024);
    ASSERT_EQ(f.status, Frame::Status::complete);
    Packet packet;
    ASSERT_FALSE(decode(rest.first(f.total_size()), ProtocolVersion::v3_1_1, packet));
    sizes.push_back(f.total_size());
    rest = rest.subspan(f.total_size());
  }
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 4, 2}));
}

}  // namespace
}  // namespace credmq::mqtt
