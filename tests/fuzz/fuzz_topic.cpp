// libFuzzer target: topic names and filters (MQTT 4.7) and the broker's subscription trie.
// Input: strings separated by NUL bytes (NUL is never valid in a topic). Each string is tried
// as a filter and as a topic name.
// Checked: valid_utf8() agrees with a straightforward reference decoder; a topic name is a
// filter; a filter without wildcards matches exactly itself; TopicTree::match() returns
// exactly the subscriptions whose filter topic_matches() the topic (shared ones through their
// inner filter, once per group); erasing everything that was inserted empties the tree.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "credmq/mqtt/codec.hpp"
#include "fuzz_input.hpp"
#include "topic_tree.hpp"

namespace {

using namespace credmq;
using broker::detail::Session;
using broker::detail::TopicTree;

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_topic: check failed: %s\n", what);
    std::abort();
  }
}

// Unicode scalar values except U+0000, shortest form only.
bool reference_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length;
    std::uint32_t code;
    if (lead < 0x80) {
      length = 1;
      code = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      code = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      code = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      code = lead & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr std::uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF) ||
        code == 0) {
      return false;
    }
    i += length;
  }
  return true;
}

Session* fake_session(std::size_t index) {
  // Never dereferenced by the tree: any distinct non-null pointer value will do.
  return reinterpret_cast<Session*>((index + 1) * 64);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> strings = fuzz::split_at_nul(input, 32);

  TopicTree tree;
  struct Inserted {
    std::string filter;
    std::string_view match_filter;  // the inner filter of a shared subscription
    std::string group;              // empty if not shared
    Session* session;
  };
  std::vector<Inserted> inserted;
  for (std::size_t i = 0; i < strings.size(); ++i) {
    const std::string_view text = strings[i];
    require(mqtt::valid_utf8(text) == reference_utf8(text), "valid_utf8 differs from reference");
    const bool name = mqtt::valid_topic_name(text);
    const bool filter = mqtt::valid_topic_filter(text);
    if (name) require(filter, "a valid topic name is not a valid filter");
    if (name) require(mqtt::topic_matches(text, text), "a topic name does not match itself");

    std::string_view group;
    std::string_view inner;
    bool shared_valid = false;
    const bool shared = broker::detail::parse_shared_filter(text, group, inner, shared_valid);
    if (shared ? !shared_valid : !filter) continue;
    // As the broker does: one session per filter here, sometimes the same session twice.
    Session* session = fake_session(i % 8);
    bool duplicate = false;
    for (const Inserted& other : inserted) {
      if (other.filter == text && other.session == session) duplicate = true;
    }
    tree.insert(text, session, {{1, false, false, 0}, static_cast<std::uint32_t>(i)});
    if (!duplicate) {
      inserted.push_back({std::string(text), {}, std::string(shared ? group : ""), session});
    }
  }
  for (Inserted& entry : inserted) {
    std::string_view group;
    std::string_view inner = entry.filter;
    bool valid = false;
    broker::detail::parse_shared_filter(entry.filter, group, inner, valid);
    entry.match_filter = inner;
  }

  std::vector<TopicTree::Match> matches;
  for (const std::string_view topic : strings) {
    if (!mqtt::valid_topic_name(topic)) continue;
    // Expected: (session, filter) pairs for plain subscriptions; one entry per shared group.
    std::multiset<Session*> expected_sessions;
    std::set<std::pair<std::string, std::string>> expected_groups;  // (inner filter, group)
    for (const Inserted& entry : inserted) {
      const bool matches_topic = mqtt::topic_matches(entry.match_filter, topic);
      if (!matches_topic) continue;
      if (entry.group.empty()) {
        expected_sessions.insert(entry.session);
      } else {
        expected_groups.emplace(std::string(entry.match_filter), entry.group);
      }
      // A filter without wildcards matches exactly the same topic.
      if (mqtt::valid_topic_name(entry.match_filter)) {
        require(entry.match_filter == topic, "a plain filter matched another topic");
      }
    }
    matches.clear();
    tree.match(topic, matches);
    std::multiset<Session*> got_sessions;
    std::size_t got_groups = 0;
    for (const TopicTree::Match& match : matches) {
      if (match.session) {
        got_sessions.insert(match.session);
      } else {
        require(match.group && *match.group, "shared match without its group");
        ++got_groups;
      }
    }
    require(got_sessions == expected_sessions, "TopicTree::match differs from topic_matches");
    require(got_groups == expected_groups.size(), "TopicTree shared matches differ");
  }

  for (const Inserted& entry : inserted) {
    require(tree.erase(entry.filter, entry.session), "erase of an inserted subscription failed");
  }
  require(tree.empty(), "tree not empty after erasing everything");
  return 0;
}
