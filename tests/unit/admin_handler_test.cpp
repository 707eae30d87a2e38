// The admin API handler (no HTTP) over the real SQLite Store: the five actions end to end,
// paging with the store's opaque NextToken, and revocation through the real hub.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "../../admin/src/api.hpp"  // internal header, reached relative to this file
#include "admin_test_support.hpp"
#include "credmq/auth/credential_service.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/common/crypto.hpp"
#include "credmq/storage/store.hpp"
#include "storage_temp_dir.hpp"

namespace credmq::admin {
namespace {
using credmq::admin::test_support::form_encode;
using credmq::admin::test_support::utc_timestamp;

namespace json = boost::json;

constexpr char kInstance[] = "mqtt-cn-test0001";

class AdminHandlerTest : public ::testing::Test {
 protected:
  AdminHandlerTest() {
    store_->ensure_instance(kInstance);
    key_ = store_->create_admin_key({kInstance});
  }

  json::object call(std::string_view action, Params extra, unsigned expected_status = 200) {
    Params params{{"Action", std::string(action)},  {"AccessKeyId", key_.access_key_id},
                  {"SignatureMethod", "HMAC-SHA1"}, {"SignatureNonce", crypto::uuid_v4_upper()},
                  {"SignatureVersion", "1.0"},      {"Timestamp", utc_timestamp()},
                  {"Version", "2020-04-20"},        {"InstanceId", kInstance}};
    for (auto& [name, value] : extra) params[name] = std::move(value);
    params["Signature"] = sign(key_.access_key_secret, string_to_sign("POST", params));
    ApiRequest request;
    request.method = "POST";
    request.body_is_form = true;
    request.body = form_encode(params);
    request.host_id = "admin.test";
    const ApiResponse response = handler_.handle(request);
    EXPECT_EQ(response.status, expected_status) << response.body;
    return json::parse(response.body).as_object();
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::Store> store_ = storage::Store::open(dir_.path());
  auth::RevocationHub hub_;
  auth::CredentialService credentials_{*store_, hub_};
  ApiHandler handler_{ApiConfig{}, credentials_};
  storage::AdminKey key_;
};

TEST_F(AdminHandlerTest, LifecycleOverTheRealStore) {
  const auto registered = call("RegisterDeviceCredential", {{"ClientId", "GID_test@@@device-001"}});
  const auto& credential = registered.at("DeviceCredential").as_object();
  EXPECT_EQ(credential.at("ClientId").as_string(), "GID_test@@@device-001");
  EXPECT_EQ(credential.at("InstanceId").as_string(), kInstance);
  EXPECT_TRUE(credential.at("CreateTime").is_int64());
  EXPECT_GT(credential.at("CreateTime").as_int64(), 1'600'000'000'000);  // epoch milliseconds

  const auto fetched = call("GetDeviceCredential", {{"ClientId", "GID_test@@@device-001"}});
  EXPECT_EQ(fetched.at("DeviceCredential"), registered.at("DeviceCredential"));

  const auto refreshed = call("RefreshDeviceCredential", {{"ClientId", "GID_test@@@device-001"}});
  EXPECT_EQ(refreshed.at("DeviceCredential").at("DeviceAccessKeyId"),
            credential.at("DeviceAccessKeyId"));
  EXPECT_NE(refreshed.at("DeviceCredential").at("DeviceAccessKeySecret"),
            credential.at("DeviceAccessKeySecret"));

  const auto removed = call("UnRegisterDeviceCredential", {{"ClientId", "GID_test@@@device-001"}});
  EXPECT_EQ(removed.size(), 1u);
  EXPECT_EQ(call("GetDeviceCredential", {{"ClientId", "GID_test@@@device-001"}}, 400)
                .at("Code")
                .as_string(),
            "DeviceCredentialNotFound");
}

TEST_F(AdminHandlerTest, ListFollowsTheStoresNextToken) {
  for (const char* id : {"GID_test@@@a", "GID_test@@@b", "GID_test@@@c", "GID_else@@@z"}) {
    call("RegisterDeviceCredential", {{"ClientId", id}});
  }
  const auto first =
      call("ListDeviceCredentialClientId", {{"GroupId", "GID_test"}, {"PageSize", "2"}});
  const auto& page = first.at("DeviceCredentialClientIdList").as_object();
  EXPECT_EQ(page.at("ClientIdList"), json::array({"GID_test@@@a", "GID_test@@@b"}));
  EXPECT_EQ(page.at("Total").as_string(), "3");
  const std::string token(page.at("NextToken").as_string());
  ASSERT_FALSE(token.empty());

  EXPECT_EQ(page.at("PageNo").as_string(), "1");

  // The token wins over PageNo, and the reply says which page the token led to.
  const auto second =
      call("ListDeviceCredentialClientId",
           {{"GroupId", "GID_test"}, {"PageSize", "2"}, {"NextToken", token}, {"PageNo", "3"}});
  const auto& rest = second.at("DeviceCredentialClientIdList").as_object();
  EXPECT_EQ(rest.at("ClientIdList"), json::array({"GID_test@@@c"}));
  EXPECT_EQ(rest.at("NextToken").as_string(), "");
  EXPECT_EQ(rest.at("PageNo").as_string(), "2");

  const auto by_page = call("ListDeviceCredentialClientId",
                            {{"GroupId", "GID_test"}, {"PageSize", "2"}, {"PageNo", "2"}});
  EXPECT_EQ(by_page.at("DeviceCredentialClientIdList").at("ClientIdList"),
            json::array({"GID_test@@@c"}));
}

TEST_F(AdminHandlerTest, MalformedNextTokenIsInvalidParameter) {
  const auto reply = call("ListDeviceCredentialClientId",
                          {{"GroupId", "GID_test"}, {"NextToken", "!!not-a-token!!"}}, 400);
  EXPECT_EQ(reply.at("Code").as_string(), "InvalidParameter.NextToken");
}

}  // namespace
}  // namespace credmq::admin
