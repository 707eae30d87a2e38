// Form parsing (query strings and POST bodies): regressions found by fuzz_admin_request.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "../../admin/src/form.hpp"  // internal header, reached relative to this file

namespace credmq::admin {
namespace {

using namespace std::string_literals;

// fuzz_admin_request: Boost.URL's parse_query() ran strlen() over the view, reading past the
// end of a query that is not NUL-terminated (heap-buffer-overflow under ASan) and parsing
// bytes outside the view.
TEST(AdminForm, ParsesOnlyTheViewItIsGiven) {
  constexpr std::string_view kText = "Action=Get&ClientId=GID_a@@@b";
  // Exactly sized heap buffer, no terminator: ASan flags any read past it.
  const auto buffer = std::make_unique<char[]>(kText.size());
  std::memcpy(buffer.get(), kText.data(), kText.size());
  Params params;
  ASSERT_TRUE(parse_form_into(std::string_view(buffer.get(), kText.size()), params));
  EXPECT_EQ(params, (Params{{"Action", "Get"}, {"ClientId", "GID_a@@@b"}}));

  params.clear();
  ASSERT_TRUE(parse_form_into(std::string_view(buffer.get(), 10), params));  // "Action=Get"
  EXPECT_EQ(params, (Params{{"Action", "Get"}}));
}

// The same strlen() made a raw NUL end the text: "a=b\0c=%zz" passed as just {a: b}.
TEST(AdminForm, RawNulIsRefused) {
  Params params;
  EXPECT_FALSE(parse_form_into("a=b\0c=%zz"s, params));
  EXPECT_FALSE(parse_form_into("a=b\0c=d"s, params));
  EXPECT_FALSE(parse_form_into("\0"s, params));
  params.clear();
  EXPECT_TRUE(parse_form_into("a=%00", params));  // an encoded NUL is a value like any other
  EXPECT_EQ(params.at("a"), "\0"s);
}

TEST(AdminForm, PlusIsSpaceAndLastDuplicateWins) {
  Params params;
  ASSERT_TRUE(parse_form_into("a+b=c+d&x=%E4%B8%AD&&=v&k&x=2", params));
  EXPECT_EQ(params, (Params{{"a b", "c d"}, {"k", ""}, {"x", "2"}}));
  EXPECT_FALSE(parse_form_into("a=%zz", params));
  EXPECT_FALSE(parse_form_into("a=%", params));
}

}  // namespace
}  // namespace credmq::admin
