// UTF-8 validation, topic name/filter rules and matching (MQTT 3.1.1 / 5.0 section 4.7).
#include <gtest/gtest.h>

#include <string>

#include "credmq/mqtt/codec.hpp"

namespace credmq::mqtt {
namespace {

using namespace std::string_literals;

TEST(CodecUtf8, AcceptsWellFormedText) {
  EXPECT_TRUE(valid_utf8(""));
  EXPECT_TRUE(valid_utf8("plain ascii that is longer than one eight byte word"));
  EXPECT_TRUE(valid_utf8("\xC2\xA9"));          // U+00A9
  EXPECT_TRUE(valid_utf8("\xE4\xB8\xAD"));      // U+4E2D
  EXPECT_TRUE(valid_utf8("\xF0\x9F\x98\x80"));  // U+1F600
  EXPECT_TRUE(valid_utf8("\xED\x9F\xBF"));      // U+D7FF, last before surrogates
  EXPECT_TRUE(valid_utf8("\xEE\x80\x80"));      // U+E000, first after surrogates
  EXPECT_TRUE(valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(
      valid_utf8("\xEF\xBB\xBF"
                 "abc"));                               // BOM is a character, not skipped
  EXPECT_TRUE(valid_utf8("\xEF\xBF\xBF"));              // U+FFFF non-character is allowed
  EXPECT_TRUE(valid_utf8("abcdefgh\xC2\xA9ijklmnop"));  // non-ASCII after the fast path
}

TEST(CodecUtf8, RejectsIllFormedText) {
  EXPECT_FALSE(valid_utf8("\0"s));
  EXPECT_FALSE(valid_utf8("abcdefg\0hijklmn"s));  // NUL inside a word of the fast path
  EXPECT_FALSE(valid_utf8("abcdefghijklmno\0"s));
  EXPECT_FALSE(valid_utf8("\xC0\x80"));          // overlong U+0000
  EXPECT_FALSE(valid_utf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(valid_utf8("\xE0\x80\x80"));      // overlong 3-byte
  EXPECT_FALSE(valid_utf8("\xE0\x9F\xBF"));      // overlong 3-byte
  EXPECT_FALSE(valid_utf8("\xF0\x80\x80\x80"));  // overlong 4-byte
  EXPECT_FALSE(valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte
  EXPECT_FALSE(valid_utf8("\xED\xA0\x80"));      // U+D800 surrogate
  EXPECT_FALSE(valid_utf8("\xED\xBF\xBF"));      // U+DFFF surrogate
  EXPECT_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(valid_utf8("\xFF"));
  EXPECT_FALSE(valid_utf8("\x80"));      // lone continuation
  EXPECT_FALSE(valid_utf8("\xE4\xB8"));  // truncated
  EXPECT_FALSE(
      valid_utf8("\xE4\xB8"
                 "a"));                      // bad continuation
  EXPECT_FALSE(valid_utf8("\xF0\x9F\x98"));  // truncated 4-byte
  EXPECT_FALSE(valid_utf8("\xC2"));
}

TEST(CodecTopic, TopicNames) {
  EXPECT_TRUE(valid_topic_name("sport/tennis/player1"));
  EXPECT_TRUE(valid_topic_name("/"));
  EXPECT_TRUE(valid_topic_name("$SYS/broker"));
  EXPECT_TRUE(valid_topic_name(" "));
  EXPECT_FALSE(valid_topic_name(""));
  EXPECT_FALSE(valid_topic_name("sport/+"));
  EXPECT_FALSE(valid_topic_name("sport/#"));
  EXPECT_FALSE(valid_topic_name("sport+"));
  EXPECT_FALSE(valid_topic_name("a\0b"s));
  EXPECT_FALSE(valid_topic_name("\xED\xA0\x80"));
}

TEST(CodecTopic, TopicFiltersFromTheSpec) {
  for (const char* valid :
       {"sport/tennis/player1/#", "sport/#", "#", "sport/tennis/#", "+", "+/tennis/#",
        "sport/+/player1", "/+", "+/+", "/", "//", "$SYS/#", "$share/group/a/+", "a//b", "+/+/+"}) {
    EXPECT_TRUE(valid_topic_filter(valid)) << valid;
  }
  for (const char* invalid : {"", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "#/a",
                              "a/#/", "++", "a/b+", "+a", "##", "a/#b"}) {
    EXPECT_FALSE(valid_topic_filter(invalid)) << invalid;
  }
  EXPECT_FALSE(valid_topic_filter("a\0"s));
  EXPECT_FALSE(valid_topic_filter("\xC0\x80"));
}

struct MatchCase {
  const char* filter;
  const char* topic;
  bool matches;
};

TEST(CodecTopic, MatchingTableFromTheSpec) {
  const MatchCase cases[] = {
      // 4.7.1.2 multi-level wildcard
      {"sport/tennis/player1/#", "sport/tennis/player1", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
      {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
      {"sport/tennis/player1/#", "sport/tennis/player2", false},
      {"sport/tennis/player1/#", "sport/tennis", false},
      {"sport/#", "sport", true},
      {"sport/#", "sport/", true},
      {"sport/#", "sports", false},
      {"#", "sport/tennis", true},
      {"#", "/", true},
      {"#", "a", true},
      // 4.7.1.3 single-level wildcard
      {"sport/tennis/+", "sport/tennis/player1", true},
      {"sport/tennis/+", "sport/tennis/player2", true},
      {"sport/tennis/+", "sport/tennis/player1/ranking", false},
      {"sport/+", "sport", false},
      {"sport/+", "sport/", true},
      {"+/+", "/finance", true},
      {"/+", "/finance", true},
      {"+", "/finance", false},
      {"+", "finance", true},
      {"+/tennis/#", "sport/tennis/player1", true},
      {"+/tennis/#", "sport/tennis", true},
      {"sport/+/player1", "sport/tennis/player1", true},
      {"sport/+/player1", "sport//player1", true},
      {"+/+/+", "a/b", false},
      {"a/+/c", "a/b/c/d", false},
      // exact and empty levels
      {"/finance", "finance", false},
      {"finance", "/finance", false},
      {"a//b", "a//b", true},
      {"a/b", "a/b/", false},
      {"a/b/", "a/b", false},
      {"ACCOUNTS", "Accounts", false},
      // 4.7.2 topics beginning with '$'
      {"#", "$SYS/monitor/Clients", false},
      {"+/monitor/Clients", "$SYS/monitor/Clients", false},
      {"$SYS/#", "$SYS/monitor/Clients", true},
      {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
      {"$SYS/#", "$SYS", true},
      {"+", "$SYS", false},
      {"a/#", "a/$SYS", true},
      {"a/+", "a/$x", true},
  };
  for (const MatchCase& c : cases) {
    EXPECT_EQ(topic_matches(c.filter, c.topic), c.matches)
        << "filter '" << c.filter << "' topic '" << c.topic << "'";
  }
}

TEST(CodecReasonCategory, NamesAndMessages) {
  EXPECT_STREQ(reason_category().name(), "mqtt");
  const boost::system::error_code malformed = ReasonCode::malformed_packet;
  EXPECT_EQ(malformed.message(), "malformed packet");
  EXPECT_EQ(&malformed.category(), &reason_category());
  EXPECT_EQ(malformed.value(), 0x81);
  EXPECT_TRUE(malformed.failed());
  EXPECT_EQ(make_error_code(ReasonCode::packet_too_large).message(), "packet too large");
  EXPECT_EQ(make_error_code(ReasonCode::granted_qos_1).message(), "granted QoS 1");
  // Every enumerator has a real message.
  int named = 0;
  for (int value = 0; value <= 0xFF; ++value) {
    const std::string message = reason_category().message(value);
    EXPECT_FALSE(message.empty());
    if (message != "unknown MQTT reason code") ++named;
  }
  EXPECT_EQ(named, 43);
  EXPECT_EQ(reason_category().message(0x03), "unknown MQTT reason code");
  EXPECT_EQ(reason_category().message(-1), "unknown MQTT reason code");
  EXPECT_EQ(reason_category().message(0x181), "unknown MQTT reason code");
  char buffer[8];
  EXPECT_STREQ(reason_category().message(0x87, buffer, sizeof buffer), "not authorized");
}

}  // namespace
}  // namespace credmq::mqtt
