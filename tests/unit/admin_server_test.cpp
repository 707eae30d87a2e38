// The admin HTTP server in process: a fake in-memory Store (with injectable failures), the
// real CredentialService and RevocationHub, a blocking thread pool, and a Beast client that
// signs requests with signature V1.
#include "credmq/admin/admin_server.hpp"

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../admin/src/signature.hpp"  // internal header, reached relative to this file
#include "admin_test_support.hpp"
#include "credmq/auth/credential_service.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/common/crypto.hpp"
#include "credmq/storage/store.hpp"

namespace credmq::admin {
namespace {
using credmq::admin::test_support::form_encode;
using credmq::admin::test_support::utc_timestamp;

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;

constexpr char kInstance[] = "mqtt-cn-test0001";
constexpr char kOtherInstance[] = "mqtt-cn-other0001";
constexpr char kKeyId[] = "testid";
constexpr char kSecret[] = "testsecret";
constexpr char kClientId[] = "GID_test@@@device-001";
constexpr char kJsonContentType[] = "application/json;charset=utf-8";

// In-memory Store. `fail` makes every call throw StorageError.
class FakeStore : public storage::Store {
 public:
  std::atomic<bool> fail{false};
  std::atomic<int> hold_registration_us{0};
  std::atomic<int> registrations_running{0};
  std::atomic<int> max_registrations_running{0};

  void ensure_instance(std::string_view instance_id) override {
    check();
    std::lock_guard lock(mutex_);
    instances_.emplace(instance_id);
  }
  bool instance_exists(std::string_view instance_id) override {
    check();
    std::lock_guard lock(mutex_);
    return instances_.contains(std::string(instance_id));
  }
  std::vector<std::string> instances() override {
    check();
    std::lock_guard lock(mutex_);
    return {instances_.begin(), instances_.end()};
  }
  storage::AdminKey create_admin_key(const std::vector<std::string>& instances) override {
    return add_admin_key("AK" + crypto::uuid_v4_upper(), "secret", instances);
  }
  storage::AdminKey add_admin_key(std::string id, std::string secret,
                                  std::vector<std::string> instances) {
    std::lock_guard lock(mutex_);
    storage::AdminKey key{std::move(id), std::move(secret), std::move(instances)};
    keys_[key.access_key_id] = key;
    return key;
  }
  void grant_admin_key(std::string_view access_key_id,
                       const std::vector<std::string>& instances) override {
    check();
    std::lock_guard lock(mutex_);
    auto& granted = keys_.at(std::string(access_key_id)).instances;
    granted.insert(granted.end(), instances.begin(), instances.end());
  }
  std::optional<storage::AdminKey> find_admin_key(std::string_view access_key_id) override {
    check();
    std::lock_guard lock(mutex_);
    auto it = keys_.find(std::string(access_key_id));
    if (it == keys_.end()) return std::nullopt;
    return it->second;
  }
  storage::CredentialChange register_credential(std::string_view instance_id,
                                                std::string_view client_id) override {
    check();
    // How many registrations run at once (the pool has two threads), held a little so that
    // overlapping calls would be seen.
    const int running = ++registrations_running;
    int seen = max_registrations_running.load();
    while (running > seen && !max_registrations_running.compare_exchange_weak(seen, running)) {
    }
    std::this_thread::sleep_for(std::chrono::microseconds(hold_registration_us.load()));
    --registrations_running;
    std::lock_guard lock(mutex_);
    storage::CredentialChange change;
    auto& slot = credentials_[{std::string(instance_id), std::string(client_id)}];
    if (slot.serial != 0) change.revoked_serial = slot.serial;
    slot.instance_id = instance_id;
    slot.client_id = client_id;
    slot.access_key_id = "DC." + crypto::base64url_encode(crypto::random_bytes(16));
    slot.access_key_secret = "DC." + crypto::base64url_encode(crypto::random_bytes(32));
    slot.create_time_ms = slot.update_time_ms = ++clock_ms_;
    slot.serial = ++serial_;
    change.current = slot;
    return change;
  }
  std::optional<storage::CredentialChange> refresh_credential(std::string_view instance_id,
                                                              std::string_view client_id) override {
    check();
    std::lock_guard lock(mutex_);
    auto it = credentials_.find({std::string(instance_id), std::string(client_id)});
    if (it == credentials_.end()) return std::nullopt;
    storage::CredentialChange change;
    change.revoked_serial = it->second.serial;
    it->second.access_key_secret = "DC." + crypto::base64url_encode(crypto::random_bytes(32));
    it->second.update_time_ms = ++clock_ms_;
    it->second.serial = ++serial_;
    change.current = it->second;
    return change;
  }
  std::optional<storage::CredentialChange> unregister_credential(
      std::string_view instance_id, std::string_view client_id) override {
    check();
    std::lock_guard lock(mutex_);
    auto it = credentials_.find({std::string(instance_id), std::string(client_id)});
    if (it == credentials_.end()) return std::nullopt;
    storage::CredentialChange change;
    change.revoked_serial = it->second.serial;
    credentials_.erase(it);
    return change;
  }
  std::optional<storage::DeviceCredential> get_credential(std::string_view instance_id,
                                                          std::string_view client_id) override {
    check();
    std::lock_guard lock(mutex_);
    auto it = credentials_.find({std::string(instance_id), std::string(client_id)});
    if (it == credentials_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::int64_t> credential_serial(std::string_view instance_id,
                                                std::string_view client_id) override {
    auto credential = get_credential(instance_id, client_id);
    return credential ? std::optional(credential->serial) : std::nullopt;
  }
  // The admin API never touches the broker's saved state.
  std::vector<storage::StoredInstanceState> load_broker_state() override { return {}; }
  void save_broker_state(const std::vector<storage::StoredInstanceState>&) override {}
  void clear_broker_state() override {}
  std::optional<storage::DeviceCredential> find_credential_by_key_id(
      std::string_view access_key_id) override {
    check();
    std::lock_guard lock(mutex_);
    for (const auto& [_, credential] : credentials_) {
      if (credential.access_key_id == access_key_id) return credential;
    }
    return std::nullopt;
  }
  storage::ClientIdPage list_client_ids(std::string_view instance_id, std::string_view group_id,
                                        int page_no, int page_size,
                                        std::string_view next_token) override {
    check();
    std::lock_guard lock(mutex_);
    last_list_call = {page_no, page_size, std::string(next_token)};
    std::vector<std::string> matching;
    for (const auto& [key, _] : credentials_) {
      if (key.first == instance_id && key.second.starts_with(std::string(group_id) + "@@@")) {
        matching.push_back(key.second);
      }
    }
    auto begin = matching.begin();
    if (!next_token.empty()) {
      begin = std::upper_bound(matching.begin(), matching.end(), std::string(next_token));
    } else {
      begin += std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(page_no - 1) * page_size,
                                        std::distance(matching.begin(), matching.end()));
    }
    storage::ClientIdPage page;
    page.total = static_cast<std::int64_t>(matching.size());
    page.page_no = next_token.empty()
                       ? page_no
                       : static_cast<int>(std::distance(matching.begin(), begin) / page_size + 1);
    auto end = begin + std::min<std::ptrdiff_t>(page_size, std::distance(begin, matching.end()));
    page.client_ids.assign(begin, end);
    if (end != matching.end()) page.next_token = page.client_ids.back();
    return page;
  }

  struct ListCall {
    int page_no = 0;
    int page_size = 0;
    std::string next_token;
  };
  ListCall last_list_call;

 private:
  void check() const {
    if (fail) throw storage::StorageError("injected storage failure");
  }

  std::mutex mutex_;
  std::set<std::string> instances_;
  std::map<std::string, storage::AdminKey> keys_;
  std::map<std::pair<std::string, std::string>, storage::DeviceCredential> credentials_;
  std::int64_t clock_ms_ = 1'600'000'000'000;
  std::int64_t serial_ = 0;
};

// Common parameters of a valid call of `action`, signature excluded.
Params common_params(std::string_view action, Params extra = {}) {
  Params params{{"Action", std::string(action)},
                {"AccessKeyId", kKeyId},
                {"Format", "JSON"},
                {"SignatureMethod", "HMAC-SHA1"},
                {"SignatureNonce", crypto::uuid_v4_upper()},
                {"SignatureVersion", "1.0"},
                {"Timestamp", utc_timestamp(std::chrono::system_clock::now())},
                {"Version", "2020-04-20"}};
  for (auto& [name, value] : extra) params[name] = std::move(value);
  return params;
}

Params signed_params(std::string_view method, Params params, std::string_view secret = kSecret) {
  params["Signature"] = sign(secret, string_to_sign(method, params));
  return params;
}

struct Reply {
  unsigned status = 0;
  json::object body;
  http::response<http::string_body> raw;
};

// A blocking HTTP/1.1 client on one keep-alive connection.
class Client {
 public:
  explicit Client(const tcp::endpoint& endpoint) : stream_(io_) { stream_.connect(endpoint); }

  Reply send(http::verb method, std::string target, std::string body = {},
             std::string content_type = "application/x-www-form-urlencoded",
             std::map<std::string, std::string> headers = {}) {
    write(method, std::move(target), std::move(body), std::move(content_type), std::move(headers));
    return read();
  }

  void write(http::verb method, std::string target, std::string body = {},
             std::string content_type = "application/x-www-form-urlencoded",
             std::map<std::string, std::string> headers = {}) {
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "admin.test");
    if (!body.empty()) request.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    http::write(stream_, request);
  }

  void write_raw(std::string_view bytes) { net::write(stream_, net::buffer(bytes)); }
  tcp::socket& socket() { return stream_.socket(); }

  Reply read() {
    Reply reply;
    http::read(stream_, buffer_, reply.raw);
    reply.status = reply.raw.result_int();
    EXPECT_EQ(reply.raw[http::field::content_type], kJsonContentType);
    json::value parsed = json::parse(reply.raw.body());
    EXPECT_TRUE(parsed.is_object()) << reply.raw.body();
    if (parsed.is_object()) reply.body = parsed.as_object();
    return reply;
  }

  // True if the server closes the connection within `timeout` without sending anything.
  bool closed_silently_within(std::chrono::milliseconds timeout) {
    pollfd descriptor{stream_.socket().native_handle(), POLLIN, 0};
    if (::poll(&descriptor, 1, static_cast<int>(timeout.count())) <= 0) return false;
    return closed_by_server();
  }

  // True once the server has closed the connection (EOF after any buffered bytes).
  bool closed_by_server() {
    beast::error_code ec;
    char byte;
    stream_.read_some(net::buffer(&byte, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }

 private:
  net::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

class AdminServerTest : public ::testing::Test {
 protected:
  AdminServerTest() {
    store_.ensure_instance(kInstance);
    store_.ensure_instance(kOtherInstance);
    store_.add_admin_key(kKeyId, kSecret, {kInstance});
  }
  ~AdminServerTest() override {
    if (server_) server_->stop();
    pool_.join();
  }

  void start(AdminConfig config = {}) {
    config.listen = tcp::endpoint(net::ip::make_address("127.0.0.1"), 0);
    server_ = std::make_unique<AdminServer>(config, credentials_, pool_.get_executor());
    server_->start();
  }
  Client client() {
    if (!server_) start();
    return Client(server_->bound_endpoint());
  }

  // One signed GET (all parameters in the query) on a fresh connection.
  Reply get(Params params) {
    return client().send(http::verb::get, "/?" + form_encode(signed_params("GET", params)));
  }
  Reply call(std::string_view action, Params extra = {}) {
    return get(common_params(action, std::move(extra)));
  }

  static void expect_error(const Reply& reply, unsigned status, std::string_view code) {
    EXPECT_EQ(reply.status, status) << reply.raw.body();
    ASSERT_TRUE(reply.body.contains("Code")) << reply.raw.body();
    EXPECT_EQ(reply.body.at("Code").as_string(), code) << reply.raw.body();
    EXPECT_EQ(reply.body.size(), 4u) << reply.raw.body();
    ASSERT_TRUE(reply.body.contains("RequestId"));
    EXPECT_EQ(reply.body.at("RequestId").as_string().size(), 36u);
    ASSERT_TRUE(reply.body.contains("HostId"));
    EXPECT_EQ(reply.body.at("HostId").as_string(), "admin.test");
    ASSERT_TRUE(reply.body.contains("Message"));
    EXPECT_FALSE(reply.body.at("Message").as_string().empty());
  }

  static void expect_credential(const json::object& body, std::string_view client_id) {
    EXPECT_FALSE(body.contains("Code"));
    ASSERT_EQ(body.size(), 2u);
    EXPECT_EQ(body.at("RequestId").as_string().size(), 36u);
    const auto& credential = body.at("DeviceCredential").as_object();
    EXPECT_EQ(credential.size(), 6u);
    EXPECT_EQ(credential.at("ClientId").as_string(), client_id);
    EXPECT_EQ(credential.at("InstanceId").as_string(), kInstance);
    EXPECT_TRUE(credential.at("DeviceAccessKeyId").as_string().starts_with("DC."));
    EXPECT_TRUE(credential.at("DeviceAccessKeySecret").as_string().starts_with("DC."));
    EXPECT_TRUE(credential.at("CreateTime").is_int64());
    EXPECT_TRUE(credential.at("UpdateTime").is_int64());
  }

  FakeStore store_;
  auth::RevocationHub hub_;
  auth::CredentialService credentials_{store_, hub_};
  net::thread_pool pool_{2};
  std::unique_ptr<AdminServer> server_;
};

// --- the five actions -----------------------------------------------------------------

TEST_F(AdminServerTest, RegisterThenGetOverGet) {
  const Reply registered =
      call("RegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  ASSERT_EQ(registered.status, 200u) << registered.raw.body();
  expect_credential(registered.body, kClientId);

  const Reply fetched =
      call("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  ASSERT_EQ(fetched.status, 200u) << fetched.raw.body();
  expect_credential(fetched.body, kClientId);
  EXPECT_EQ(fetched.body.at("DeviceCredential"), registered.body.at("DeviceCredential"));
  EXPECT_NE(fetched.body.at("RequestId"), registered.body.at("RequestId"));
  EXPECT_EQ(fetched.raw["x-acs-request-id"], fetched.body.at("RequestId").as_string());
}

TEST_F(AdminServerTest, RegisterOverPostFormBody) {
  const auto params =
      signed_params("POST", common_params("RegisterDeviceCredential",
                                          {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const Reply reply = client().send(http::verb::post, "/", form_encode(params));
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  expect_credential(reply.body, kClientId);
}

TEST_F(AdminServerTest, PostWithEverythingInTheQueryAndAnEmptyBody) {
  store_.register_credential(kInstance, kClientId);
  const auto params = signed_params(
      "POST",
      common_params("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const Reply reply = client().send(http::verb::post, "/?" + form_encode(params));
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  expect_credential(reply.body, kClientId);
}

TEST_F(AdminServerTest, PostSplitBetweenQueryAndBody) {
  Params params = signed_params(
      "POST",
      common_params("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  store_.register_credential(kInstance, kClientId);
  Params in_body{{"ClientId", params["ClientId"]}, {"InstanceId", params["InstanceId"]}};
  params.erase("ClientId");
  params.erase("InstanceId");
  // '+' for space must be accepted in a form body: no space here, but %40 vs '@' raw is.
  const Reply reply =
      client().send(http::verb::post, "/?" + form_encode(params),
                    "ClientId=GID_test@@@device-001&InstanceId=" + in_body["InstanceId"]);
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  expect_credential(reply.body, kClientId);
}

TEST_F(AdminServerTest, PostSignedAsGetIsRefused) {
  const auto params = signed_params(
      "GET",
      common_params("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const Reply reply = client().send(http::verb::post, "/", form_encode(params));
  expect_error(reply, 400, "SignatureDoesNotMatch");
  EXPECT_NE(reply.body.at("Message").as_string().find("POST&%2F&AccessKeyId%3Dtestid"),
            std::string::npos);
}

TEST_F(AdminServerTest, RefreshKeepsTheKeyIdAndChangesTheSecret) {
  const auto original = store_.register_credential(kInstance, kClientId).current.value();
  const Reply reply =
      call("RefreshDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  expect_credential(reply.body, kClientId);
  const auto& credential = reply.body.at("DeviceCredential").as_object();
  EXPECT_EQ(credential.at("DeviceAccessKeyId").as_string(), original.access_key_id);
  EXPECT_NE(credential.at("DeviceAccessKeySecret").as_string(), original.access_key_secret);
  EXPECT_GT(credential.at("UpdateTime").as_int64(), original.update_time_ms);
  EXPECT_EQ(credential.at("CreateTime").as_int64(), original.create_time_ms);
}

TEST_F(AdminServerTest, UnRegisterReturnsOnlyTheRequestIdThenTheCredentialIsGone) {
  store_.register_credential(kInstance, kClientId);
  const Reply reply =
      call("UnRegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  ASSERT_EQ(reply.body.size(), 1u) << reply.raw.body();
  EXPECT_EQ(reply.body.at("RequestId").as_string().size(), 36u);
  EXPECT_FALSE(store_.get_credential(kInstance, kClientId));

  expect_error(
      call("UnRegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}), 400,
      "DeviceCredentialNotFound");
}

TEST_F(AdminServerTest, ListPagesWithStringCounts) {
  for (const char* id : {"GID_test@@@a", "GID_test@@@b", "GID_test@@@c", "GID_other@@@x"}) {
    store_.register_credential(kInstance, id);
  }
  const Reply first = call("ListDeviceCredentialClientId",
                           {{"InstanceId", kInstance}, {"GroupId", "GID_test"}, {"PageSize", "2"}});
  ASSERT_EQ(first.status, 200u) << first.raw.body();
  EXPECT_EQ(first.body.size(), 2u);
  EXPECT_FALSE(first.body.contains("Code"));
  const auto& list = first.body.at("DeviceCredentialClientIdList").as_object();
  EXPECT_EQ(list.at("ClientIdList"), json::array({"GID_test@@@a", "GID_test@@@b"}));
  EXPECT_EQ(list.at("NextToken").as_string(), "GID_test@@@b");
  EXPECT_EQ(list.at("PageNo").as_string(), "1");
  EXPECT_EQ(list.at("PageSize").as_string(), "2");
  EXPECT_EQ(list.at("Total").as_string(), "3");

  const Reply second = call("ListDeviceCredentialClientId", {{"InstanceId", kInstance},
                                                             {"GroupId", "GID_test"},
                                                             {"PageSize", "2"},
                                                             {"NextToken", "GID_test@@@b"}});
  ASSERT_EQ(second.status, 200u) << second.raw.body();
  const auto& rest = second.body.at("DeviceCredentialClientIdList").as_object();
  EXPECT_EQ(rest.at("ClientIdList"), json::array({"GID_test@@@c"}));
  EXPECT_EQ(rest.at("NextToken").as_string(), "");
  EXPECT_EQ(store_.last_list_call.next_token, "GID_test@@@b");
}

TEST_F(AdminServerTest, ListDefaultsAndPageNo) {
  Reply reply =
      call("ListDeviceCredentialClientId", {{"InstanceId", kInstance}, {"GroupId", "GID_test"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  const auto& list = reply.body.at("DeviceCredentialClientIdList").as_object();
  EXPECT_EQ(list.at("ClientIdList"), json::array());
  EXPECT_EQ(list.at("PageNo").as_string(), "1");
  EXPECT_EQ(list.at("PageSize").as_string(), "100");
  EXPECT_EQ(list.at("Total").as_string(), "0");
  EXPECT_EQ(store_.last_list_call.page_size, 100);

  reply = call("ListDeviceCredentialClientId",
               {{"InstanceId", kInstance}, {"GroupId", "GID_test"}, {"PageNo", "3"}});
  ASSERT_EQ(reply.status, 200u) << reply.raw.body();
  EXPECT_EQ(store_.last_list_call.page_no, 3);
  EXPECT_EQ(reply.body.at("DeviceCredentialClientIdList").at("PageNo").as_string(), "3");
}

TEST_F(AdminServerTest, ListParameterErrors) {
  expect_error(call("ListDeviceCredentialClientId", {{"InstanceId", kInstance}}), 400,
               "MissingParameter.GroupId");
  expect_error(
      call("ListDeviceCredentialClientId", {{"InstanceId", kInstance}, {"GroupId", "nope"}}), 400,
      "InvalidParameter.GroupId");
  for (const char* size : {"0", "101", "x", "-1"}) {
    expect_error(call("ListDeviceCredentialClientId",
                      {{"InstanceId", kInstance}, {"GroupId", "GID_test"}, {"PageSize", size}}),
                 400, "InvalidParameter.PageSize");
  }
  expect_error(call("ListDeviceCredentialClientId",
                    {{"InstanceId", kInstance}, {"GroupId", "GID_test"}, {"PageNo", "0"}}),
               400, "InvalidParameter.PageNo");
}

TEST_F(AdminServerTest, RegisterOverAnExistingCredentialReissuesIt) {
  const auto original = store_.register_credential(kInstance, kClientId).current.value();
  const Reply reply =
      call("RegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  ASSERT_EQ(reply.status, 200u);
  EXPECT_NE(reply.body.at("DeviceCredential").at("DeviceAccessKeyId").as_string(),
            original.access_key_id);
}

// --- errors ---------------------------------------------------------------------------

TEST_F(AdminServerTest, MissingCommonParameters) {
  for (const char* name : {"Action", "AccessKeyId", "SignatureMethod", "SignatureVersion",
                           "SignatureNonce", "Timestamp", "Version"}) {
    Params params =
        common_params("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
    params.erase(name);
    expect_error(get(params), 400, std::string("MissingParameter.") + name);
  }
  const auto unsigned_params = common_params("GetDeviceCredential");
  expect_error(client().send(http::verb::get, "/?" + form_encode(unsigned_params)), 400,
               "MissingParameter.Signature");
  // An empty value counts as missing.
  expect_error(call("", {{"InstanceId", kInstance}}), 400, "MissingParameter.Action");
}

TEST_F(AdminServerTest, RegionIdAndSecurityTokenAreOptional) {
  const Reply reply = call("RegisterDeviceCredential", {{"InstanceId", kInstance},
                                                        {"ClientId", kClientId},
                                                        {"RegionId", "cn-hangzhou"},
                                                        {"SecurityToken", "token"}});
  EXPECT_EQ(reply.status, 200u) << reply.raw.body();
  Params params = common_params("RegisterDeviceCredential",
                                {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  params.erase("Format");
  params["SignatureMethod"] = "hmac-sha1";
  EXPECT_EQ(get(params).status, 200u);
}

TEST_F(AdminServerTest, StaticParameterErrors) {
  expect_error(call("GetDeviceCredential", {{"Version", "2014-05-26"}}), 400, "InvalidVersion");
  expect_error(call("GetDeviceCredential", {{"Format", "XML"}}), 400, "InvalidParameter.Format");
  expect_error(call("GetDeviceCredential", {{"SignatureMethod", "HMAC-SHA256"}}), 400,
               "InvalidParameter.SignatureMethod");
  expect_error(call("GetDeviceCredential", {{"SignatureVersion", "2.0"}}), 400,
               "InvalidParameter.SignatureVersion");
  expect_error(call("GetDeviceCredential", {{"Timestamp", "yesterday"}}), 400,
               "InvalidParameter.Timestamp");
  expect_error(call("GetDeviceCredential", {{"SignatureNonce", std::string(129, 'n')}}), 400,
               "InvalidParameter.SignatureNonce");
}

TEST_F(AdminServerTest, UnknownAccessKeyId) {
  expect_error(call("GetDeviceCredential", {{"AccessKeyId", "nobody"}}), 404,
               "InvalidAccessKeyId.NotFound");
}

TEST_F(AdminServerTest, WrongSecretGivesSignatureDoesNotMatchWithTheStringToSign) {
  const auto params = signed_params(
      "GET", common_params("GetDeviceCredential", {{"InstanceId", kInstance}}), "wrongsecret");
  const Reply reply = client().send(http::verb::get, "/?" + form_encode(params));
  expect_error(reply, 400, "SignatureDoesNotMatch");
  EXPECT_NE(reply.body.at("Message").as_string().find(string_to_sign("GET", params)),
            std::string::npos);
  EXPECT_EQ(reply.raw.body().find(kSecret), std::string::npos);
}

TEST_F(AdminServerTest, TamperedParameterBreaksTheSignature) {
  Params params = signed_params(
      "GET",
      common_params("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  params["ClientId"] = "GID_test@@@device-002";
  expect_error(client().send(http::verb::get, "/?" + form_encode(params)), 400,
               "SignatureDoesNotMatch");
}

TEST_F(AdminServerTest, TimestampOutsideTheWindow) {
  const auto now = std::chrono::system_clock::now();
  expect_error(
      call("GetDeviceCredential", {{"Timestamp", utc_timestamp(now - std::chrono::minutes(16))}}),
      400, "InvalidTimeStamp.Expired");
  expect_error(
      call("GetDeviceCredential", {{"Timestamp", utc_timestamp(now + std::chrono::minutes(16))}}),
      400, "InvalidTimeStamp.Expired");
  // Dates a nanosecond clock cannot hold (they overflowed it, found by fuzz_admin_request).
  for (const char* far : {"4040-04-20T12:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"}) {
    expect_error(call("GetDeviceCredential", {{"Timestamp", far}}), 400,
                 "InvalidTimeStamp.Expired");
  }
  const Reply inside = call("RegisterDeviceCredential",
                            {{"InstanceId", kInstance},
                             {"ClientId", kClientId},
                             {"Timestamp", utc_timestamp(now - std::chrono::minutes(14))}});
  EXPECT_EQ(inside.status, 200u) << inside.raw.body();
}

TEST_F(AdminServerTest, ReplayedNonceIsRefused) {
  const auto params =
      signed_params("GET", common_params("RegisterDeviceCredential",
                                         {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const std::string target = "/?" + form_encode(params);
  EXPECT_EQ(client().send(http::verb::get, target).status, 200u);
  expect_error(client().send(http::verb::get, target), 400, "SignatureNonceUsed");
}

TEST_F(AdminServerTest, NonceIsRecordedOnlyAfterTheSignatureVerified) {
  Params params = common_params("RegisterDeviceCredential",
                                {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  Params forged = signed_params("GET", params, "wrongsecret");
  expect_error(client().send(http::verb::get, "/?" + form_encode(forged)), 400,
               "SignatureDoesNotMatch");
  EXPECT_EQ(get(params).status, 200u);  // same nonce, now correctly signed
}

TEST_F(AdminServerTest, UnknownActionIsApiNotSupport) {
  expect_error(call("DescribeRegions", {{"InstanceId", kInstance}}), 404, "ApiNotSupport");
}

TEST_F(AdminServerTest, InstanceChecks) {
  expect_error(call("GetDeviceCredential", {{"ClientId", kClientId}}), 400,
               "MissingParameter.InstanceId");
  expect_error(
      call("GetDeviceCredential", {{"InstanceId", "mqtt-cn-none"}, {"ClientId", kClientId}}), 400,
      "InstanceNotFound");
  const Reply refused =
      call("GetDeviceCredential", {{"InstanceId", kOtherInstance}, {"ClientId", kClientId}});
  expect_error(refused, 400, "InstancePermissionCheckFailed");
  EXPECT_EQ(refused.body.at("Message").as_string(),
            "An error occurred while validating the permissions of the instance. Please verify "
            "the account that created the instance and its permissions settings.");
}

TEST_F(AdminServerTest, ClientIdChecksOnEverySingleDeviceAction) {
  for (const char* action : {"RegisterDeviceCredential", "GetDeviceCredential",
                             "RefreshDeviceCredential", "UnRegisterDeviceCredential"}) {
    expect_error(call(action, {{"InstanceId", kInstance}}), 400, "MissingParameter.ClientId");
    for (const char* bad : {"device-001", "GID_ab@@@x", "GID_test@@@", "GID_test@@@a/b",
                            "GID_test@@@0123456789012345678901234567890123456789012345678901234"}) {
      const Reply reply = call(action, {{"InstanceId", kInstance}, {"ClientId", bad}});
      expect_error(reply, 400, "InvalidParameter.ClientId");
      EXPECT_EQ(reply.body.at("Message").as_string(),
                "An error occurred while validating the parameter. The parameter may be missing "
                "or invalid.");
    }
  }
}

TEST_F(AdminServerTest, MissingCredential) {
  for (const char* action :
       {"GetDeviceCredential", "RefreshDeviceCredential", "UnRegisterDeviceCredential"}) {
    const Reply reply = call(action, {{"InstanceId", kInstance}, {"ClientId", kClientId}});
    expect_error(reply, 400, "DeviceCredentialNotFound");
    EXPECT_EQ(reply.body.at("Message").as_string(),
              "Device Credential Not Found. Check if the device certificate is registered.");
  }
}

TEST_F(AdminServerTest, ThrottlingPerAccount) {
  AdminConfig config;
  config.calls_per_second_per_account = 0.001;  // one call, then nothing for 1000 s
  start(config);
  EXPECT_EQ(
      call("RegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}).status,
      200u);
  const Reply throttled =
      call("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  expect_error(throttled, 400, "Throttling.User");
  EXPECT_EQ(throttled.body.at("Message").as_string(),
            "Request was denied due to user flow control.");
}

TEST_F(AdminServerTest, StorageFailureIsInternalError) {
  start();
  store_.fail = true;
  const Reply reply =
      call("RegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}});
  expect_error(reply, 500, "InternalError");
  EXPECT_EQ(reply.body.at("Message").as_string(),
            "An error occurred while processing your request. Try again later.");
  store_.fail = false;
  EXPECT_EQ(
      call("RegisterDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}).status,
      200u);
}

TEST_F(AdminServerTest, QueueTooDeepIsSystemOverFlow) {
  AdminConfig config;
  config.max_pending_actions = 0;
  start(config);
  const Reply reply = call("GetDeviceCredential", {{"InstanceId", kInstance}});
  expect_error(reply, 500, "SystemOverFlow");
  EXPECT_EQ(reply.body.at("Message").as_string(),
            "An error occurred while processing your request. Please try again.");
}

TEST_F(AdminServerTest, SignatureV3HeaderIsAJsonError) {
  const Reply reply =
      client().send(http::verb::post, "/?ClientId=GID_test%40%40%40d&InstanceId=x", "", "",
                    {{"Authorization",
                      "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=host,"
                      "Signature=00"},
                     {"x-acs-action", "GetDeviceCredential"}});
  expect_error(reply, 400, "MissingParameter.Signature");
}

// --- HTTP plumbing --------------------------------------------------------------------

TEST_F(AdminServerTest, BodyTooLargeIs413AndClosesTheConnection) {
  AdminConfig config;
  config.max_body_bytes = 1024;
  start(config);
  Client connection = client();
  const Reply reply = connection.send(http::verb::post, "/", std::string(4096, 'a'));
  expect_error(reply, 413, "InvalidParameter.Body");
  EXPECT_FALSE(reply.raw.keep_alive());
  EXPECT_TRUE(connection.closed_by_server());
}

// Writes `bytes` one a second, each long before a per-read deadline would expire, and expects
// the server's 3 s deadline on the whole request (counted from `opened`) to close the
// connection.
void expect_closed_by_the_3_s_deadline(Client& connection, std::string_view bytes,
                                       std::chrono::steady_clock::time_point opened) {
  bool closed = false;
  for (char byte : bytes) {
    beast::error_code ec;
    net::write(connection.socket(), net::buffer(&byte, 1), ec);
    if (ec || connection.closed_silently_within(std::chrono::seconds(1))) {
      closed = true;
      break;
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - opened;
  EXPECT_TRUE(closed);
  EXPECT_GE(elapsed, std::chrono::milliseconds(2990));
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(AdminServerTest, SlowlorisHeaderIsClosedByTheRequestDeadline) {
  AdminConfig config;
  config.idle_timeout = std::chrono::seconds(3);
  start(config);
  Client connection = client();
  const std::string request =
      "GET /?Action=GetDeviceCredential HTTP/1.1\r\nHost: admin.test\r\nX-Slow: " +
      std::string(64, 'a');
  const auto opened = std::chrono::steady_clock::now();
  // One header byte a second: each arrives long before the deadline after the previous one,
  // so only a deadline on the whole request (not per read) ends this.
  expect_closed_by_the_3_s_deadline(connection, request, opened);
}

TEST_F(AdminServerTest, SlowlorisBodyIsClosedByTheRequestDeadline) {
  AdminConfig config;
  config.idle_timeout = std::chrono::seconds(3);
  start(config);
  Client connection = client();
  const auto opened = std::chrono::steady_clock::now();
  // A complete header at once, then the body a byte a second: the deadline set when the
  // server started reading the request still applies.
  connection.write_raw(
      "POST / HTTP/1.1\r\nHost: admin.test\r\nContent-Type: "
      "application/x-www-form-urlencoded\r\nContent-Length: 64\r\n\r\n");
  expect_closed_by_the_3_s_deadline(connection, std::string(64, 'a'), opened);
}

TEST_F(AdminServerTest, HeaderOverSixteenKiBIsAJsonErrorThenClose) {
  Client connection = client();
  connection.write_raw("GET /?Action=x HTTP/1.1\r\nHost: admin.test\r\nX-Big: " +
                       std::string(17 * 1024, 'a') + "\r\n\r\n");
  const Reply reply = connection.read();
  EXPECT_EQ(reply.status, 400u);
  EXPECT_EQ(reply.body.at("Code").as_string(), "ParameterCheckFailed");
  EXPECT_FALSE(reply.raw.keep_alive());
  EXPECT_TRUE(connection.closed_by_server());
}

TEST_F(AdminServerTest, BodyTooLargeAtTheDefaultLimit) {
  Client connection = client();  // AdminConfig defaults: 64 KiB
  const Reply accepted =
      connection.send(http::verb::post, "/", std::string(AdminConfig{}.max_body_bytes, 'a'));
  EXPECT_NE(accepted.status, 413u);
  Client other = client();
  const Reply reply =
      other.send(http::verb::post, "/", std::string(AdminConfig{}.max_body_bytes + 1, 'a'));
  expect_error(reply, 413, "InvalidParameter.Body");
  EXPECT_TRUE(other.closed_by_server());
}

TEST_F(AdminServerTest, UnknownPathAndMethod) {
  expect_error(client().send(http::verb::get, "/other?Action=GetDeviceCredential"), 404,
               "ApiNotSupport");
  const Reply reply = client().send(http::verb::put, "/");
  expect_error(reply, 405, "UnsupportedHTTPMethod");
  EXPECT_EQ(reply.raw[http::field::allow], "GET, POST");
}

TEST_F(AdminServerTest, MalformedQueryIsAJsonError) {
  expect_error(client().send(http::verb::get, "/?Action=%ZZ"), 400, "ParameterCheckFailed");
}

TEST_F(AdminServerTest, MalformedHttpIsAJsonErrorThenClose) {
  Client connection = client();
  connection.write_raw("GET / HTTP/1.1\r\nHost: admin.test\r\nContent-Length: x\r\n\r\n");
  const Reply reply = connection.read();
  EXPECT_EQ(reply.status, 400u);
  EXPECT_EQ(reply.body.at("Code").as_string(), "ParameterCheckFailed");
  EXPECT_TRUE(connection.closed_by_server());
}

TEST_F(AdminServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Client connection = client();
  const auto first =
      signed_params("GET", common_params("RegisterDeviceCredential",
                                         {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const Reply registered = connection.send(http::verb::get, "/?" + form_encode(first));
  EXPECT_EQ(registered.status, 200u);
  EXPECT_TRUE(registered.raw.keep_alive());
  // An error does not close a keep-alive connection either.
  expect_error(connection.send(http::verb::get, "/?Action=x"), 400, "MissingParameter.AccessKeyId");
  const auto second = signed_params(
      "POST",
      common_params("GetDeviceCredential", {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const Reply fetched = connection.send(http::verb::post, "/", form_encode(second));
  EXPECT_EQ(fetched.status, 200u) << fetched.raw.body();
  expect_credential(fetched.body, kClientId);
}

TEST_F(AdminServerTest, PipelinedRequestsAreAnsweredInOrder) {
  Client connection = client();
  const auto first =
      signed_params("GET", common_params("RegisterDeviceCredential",
                                         {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  const auto second =
      signed_params("GET", common_params("UnRegisterDeviceCredential",
                                         {{"InstanceId", kInstance}, {"ClientId", kClientId}}));
  connection.write(http::verb::get, "/?" + form_encode(first));
  connection.write(http::verb::get, "/?" + form_encode(second));
  const Reply a = connection.read();
  const Reply b = connection.read();
  EXPECT_EQ(a.status, 200u);
  EXPECT_TRUE(a.body.contains("DeviceCredential"));
  EXPECT_EQ(b.status, 200u);
  EXPECT_EQ(b.body.size(), 1u);
}

// A bounded queue per connection: the server reads the next request only after the reply
// to the previous one is written, so 100 requests pipelined in one write are handled one at a
// time (never two at once on the pool's two threads) and answered in order; the rest wait in
// the socket and the session's read buffer.
TEST_F(AdminServerTest, HundredPipelinedRequestsInOneWriteRunOneAtATimeInOrder) {
  constexpr int kRequests = 100;
  store_.hold_registration_us = 2000;
  Client connection = client();
  std::string pipelined;
  for (int i = 0; i < kRequests; ++i) {
    const auto params = signed_params(
        "GET", common_params("RegisterDeviceCredential",
                             {{"InstanceId", kInstance},
                              {"ClientId", "GID_test@@@pipelined-" + std::to_string(i)}}));
    pipelined += "GET /?" + form_encode(params) + " HTTP/1.1\r\nHost: admin.test\r\n\r\n";
  }
  connection.write_raw(pipelined);
  for (int i = 0; i < kRequests; ++i) {
    const Reply reply = connection.read();
    ASSERT_EQ(reply.status, 200u) << "reply " << i << ": " << reply.raw.body();
    EXPECT_TRUE(reply.raw.keep_alive());
    expect_credential(reply.body, "GID_test@@@pipelined-" + std::to_string(i));
  }
  EXPECT_EQ(store_.max_registrations_running.load(), 1);
  // The connection is still usable afterwards.
  const auto last = signed_params(
      "GET", common_params("GetDeviceCredential",
                           {{"InstanceId", kInstance}, {"ClientId", "GID_test@@@pipelined-99"}}));
  const Reply fetched = connection.send(http::verb::get, "/?" + form_encode(last));
  EXPECT_EQ(fetched.status, 200u) << fetched.raw.body();
}

TEST_F(AdminServerTest, HostIdFallsBackToTheListenerAddress) {
  Client connection = client();
  connection.write_raw("GET /?Action=x HTTP/1.0\r\n\r\n");
  const Reply reply = connection.read();
  EXPECT_EQ(reply.status, 400u);
  const auto endpoint = server_->bound_endpoint();
  EXPECT_EQ(reply.body.at("HostId").as_string(), "127.0.0.1:" + std::to_string(endpoint.port()));
}

TEST_F(AdminServerTest, NonAsciiHostHeaderStaysValidJson) {
  Client connection = client();
  connection.write_raw("GET /?Action=x HTTP/1.1\r\nHost: h\xC3\x28st\r\n\r\n");
  const Reply reply = connection.read();  // read() parses the body as JSON
  EXPECT_EQ(reply.status, 400u);
  EXPECT_EQ(reply.body.at("HostId").as_string(), "h?(st");
}

TEST_F(AdminServerTest, StopIsIdempotentAndClosesConnections) {
  Client connection = client();
  server_->stop();
  server_->stop();
  EXPECT_TRUE(connection.closed_by_server());
}

}  // namespace
}  // namespace credmq::admin
