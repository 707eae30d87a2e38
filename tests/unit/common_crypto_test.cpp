#include <gtest/gtest.h>

#include <set>

#include "credmq/common/crypto.hpp"

namespace credmq::crypto {
namespace {

TEST(Base64, EncodesKnownVectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode(std::string("\xfb\xff\xfe", 3)), "+//+");
}

TEST(Base64, RoundTripsEveryLengthAndByte) {
  for (std::size_t size = 0; size < 70; ++size) {
    std::string bytes;
    for (std::size_t i = 0; i < size; ++i) bytes.push_back(static_cast<char>((i * 37 + 200) % 256));
    std::string decoded;
    ASSERT_TRUE(base64_decode(base64_encode(bytes), decoded)) << size;
    EXPECT_EQ(decoded, bytes);
    ASSERT_TRUE(base64url_decode(base64url_encode(bytes), decoded)) << size;
    EXPECT_EQ(decoded, bytes);
  }
}

TEST(Base64, RefusesMalformedInput) {
  std::string out;
  EXPECT_FALSE(base64_decode("abc", out));
  EXPECT_FALSE(base64_decode("ab=c", out));
  EXPECT_FALSE(base64_decode("====", out));
  EXPECT_FALSE(base64_decode("a===", out));
  EXPECT_FALSE(base64_decode(" abc", out));
  EXPECT_FALSE(base64_decode("ab-_", out));
  EXPECT_FALSE(base64url_decode("ab+/", out));
  EXPECT_FALSE(base64url_decode("a", out));
  EXPECT_TRUE(base64_decode("", out));
  EXPECT_EQ(out, "");
}

TEST(Base64, UrlVariantHasNoPaddingNorPlusNorSlash) {
  const std::string bytes("\xfb\xff\xfe\xfb\xff", 5);
  EXPECT_EQ(base64_encode(bytes), "+//++/8=");
  EXPECT_EQ(base64url_encode(bytes), "-__--_8");
  for (int i = 0; i < 200; ++i) {
    const std::string encoded = base64url_encode(random_bytes(static_cast<std::size_t>(i % 40)));
    EXPECT_EQ(encoded.find_first_of("+/="), std::string::npos) << encoded;
  }
}

TEST(Hmac, MatchesRfc2202Vector) {
  EXPECT_EQ(base64_encode(hmac_sha1("Jefe", "what do ya want for nothing?")),
            base64_encode(std::string("\xef\xfc\xdf\x6a\xe5\xeb\x2f\xa2\xd2\x74\x16\xd5\xf1\x84"
                                      "\xdf\x9c\x25\x9a\x7c\x79",
                                      20)));
}

TEST(Hmac, MatchesTheMqttAuthSpecVector) {
  EXPECT_EQ(hmac_sha1_base64("DC.testsecret0001", "GID_test@@@device-001"),
            "TdyH2E2stRxzQGZgijzPcfDrEmk=");
  EXPECT_EQ(hmac_sha1_base64("DC.testsecret0001&", "GID_test@@@device-001"),
            "M3v+3gMytjSty/yuqToL1QgEjNM=");
}

TEST(Hmac, AcceptsAnEmptyKey) {
  // RFC 2104 with an empty key; value from Python's hmac module.
  EXPECT_EQ(hmac_sha1_base64("", ""), "+9sdGxiqbAgyS31ktx+3Y3BpDh0=");
}

TEST(ConstantTimeEqual, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
}

TEST(Random, ReturnsRequestedLengthAndDiffers) {
  EXPECT_EQ(random_bytes(0).size(), 0u);
  EXPECT_EQ(random_bytes(32).size(), 32u);
  EXPECT_NE(random_bytes(32), random_bytes(32));
}

class AesGcm : public ::testing::Test {
 protected:
  const std::string key_ = random_bytes(kAesKeySize);
  const std::string plaintext_ = "DC.some-secret-value";
  const std::string aad_ = "DC.key-id";
};

TEST_F(AesGcm, RoundTrips) {
  const std::string sealed = aes_gcm_seal(key_, plaintext_, aad_);
  EXPECT_EQ(sealed.size(), 12 + plaintext_.size() + 16);
  EXPECT_EQ(sealed.find(plaintext_), std::string::npos);
  std::string opened;
  ASSERT_TRUE(aes_gcm_open(key_, sealed, aad_, opened));
  EXPECT_EQ(opened, plaintext_);
}

TEST_F(AesGcm, UsesAFreshNonceEveryTime) {
  EXPECT_NE(aes_gcm_seal(key_, plaintext_, aad_), aes_gcm_seal(key_, plaintext_, aad_));
}

TEST_F(AesGcm, RoundTripsEmptyPlaintext) {
  std::string opened = "not empty";
  ASSERT_TRUE(aes_gcm_open(key_, aes_gcm_seal(key_, "", aad_), aad_, opened));
  EXPECT_EQ(opened, "");
}

TEST_F(AesGcm, RefusesWrongKey) {
  const std::string sealed = aes_gcm_seal(key_, plaintext_, aad_);
  std::string opened;
  EXPECT_FALSE(aes_gcm_open(random_bytes(kAesKeySize), sealed, aad_, opened));
  EXPECT_EQ(opened, "");
  EXPECT_FALSE(aes_gcm_open(key_.substr(1), sealed, aad_, opened));
}

TEST_F(AesGcm, RefusesTamperedData) {
  const std::string sealed = aes_gcm_seal(key_, plaintext_, aad_);
  std::string opened;
  for (std::size_t i = 0; i < sealed.size(); ++i) {
    std::string tampered = sealed;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    EXPECT_FALSE(aes_gcm_open(key_, tampered, aad_, opened)) << "byte " << i;
  }
  EXPECT_FALSE(aes_gcm_open(key_, sealed.substr(0, sealed.size() - 1), aad_, opened));
  EXPECT_FALSE(aes_gcm_open(key_, sealed.substr(0, 27), aad_, opened));
}

TEST_F(AesGcm, RefusesWrongAad) {
  const std::string sealed = aes_gcm_seal(key_, plaintext_, aad_);
  std::string opened;
  EXPECT_FALSE(aes_gcm_open(key_, sealed, "DC.other-key-id", opened));
  EXPECT_FALSE(aes_gcm_open(key_, sealed, "", opened));
}

TEST_F(AesGcm, RefusesAShortKeyWhenSealing) {
  EXPECT_THROW(aes_gcm_seal("short", plaintext_, aad_), CryptoError);
}

// std::regex is avoided: GCC 12 warns inside it under the sanitizer build.
bool is_upper_uuid_v4(const std::string& text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = text[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return false;
  }
  return text[14] == '4' && std::string_view("89AB").find(text[19]) != std::string_view::npos;
}

TEST(Uuid, IsUpperCaseVersion4) {
  EXPECT_FALSE(is_upper_uuid_v4("e4581ccd-62af-44d9-b5b4-d1dbdc0e1234"));
  EXPECT_TRUE(is_upper_uuid_v4("E4581CCD-62AF-44D9-B5B4-D1DBDC0E1234"));
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string uuid = uuid_v4_upper();
    EXPECT_TRUE(is_upper_uuid_v4(uuid)) << uuid;
    seen.insert(uuid);
  }
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace credmq::crypto
