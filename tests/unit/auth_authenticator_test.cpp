#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <iostream>
#include <mutex>
#include <thread>

#include "credmq/auth/credential_service.hpp"
#include "credmq/auth/device_credential_authenticator.hpp"
#include "storage_temp_dir.hpp"

namespace credmq::auth {
namespace {

constexpr const char* kInstance = "mqtt-cn-test0001";
constexpr const char* kOtherInstance = "mqtt-cn-test0002";
constexpr const char* kClient = "GID_test@@@device-001";
constexpr const char* kRemote = "203.0.113.7";

// Delegates to the real store, counting lookups and optionally failing or running a hook.
class InstrumentedStore : public storage::Store {
 public:
  explicit InstrumentedStore(storage::Store& inner) : inner_(inner) {}

  std::atomic<int> lookups{0};
  bool fail = false;
  bool unwritable = false;  // available() answers false (writes failing)
  std::function<void()> during_lookup;

  bool available() override { return !unwritable && inner_.available(); }

  void ensure_instance(std::string_view id) override { inner_.ensure_instance(id); }
  bool instance_exists(std::string_view id) override {
    maybe_fail();
    return inner_.instance_exists(id);
  }
  std::vector<std::string> instances() override { return inner_.instances(); }
  storage::AdminKey create_admin_key(const std::vector<std::string>& instances) override {
    return inner_.create_admin_key(instances);
  }
  void grant_admin_key(std::string_view id, const std::vector<std::string>& instances) override {
    inner_.grant_admin_key(id, instances);
  }
  std::optional<storage::AdminKey> find_admin_key(std::string_view id) override {
    on_lookup();
    return inner_.find_admin_key(id);
  }
  storage::CredentialChange register_credential(std::string_view i, std::string_view c) override {
    return inner_.register_credential(i, c);
  }
  std::optional<storage::CredentialChange> refresh_credential(std::string_view i,
                                                              std::string_view c) override {
    return inner_.refresh_credential(i, c);
  }
  std::optional<storage::CredentialChange> unregister_credential(std::string_view i,
                                                                 std::string_view c) override {
    return inner_.unregister_credential(i, c);
  }
  std::optional<storage::DeviceCredential> get_credential(std::string_view i,
                                                          std::string_view c) override {
    return inner_.get_credential(i, c);
  }
  std::optional<storage::DeviceCredential> find_credential_by_key_id(std::string_view id) override {
    on_lookup();
    return inner_.find_credential_by_key_id(id);
  }
  std::optional<std::int64_t> credential_serial(std::string_view i, std::string_view c) override {
    maybe_fail();
    return inner_.credential_serial(i, c);
  }
  std::vector<storage::StoredInstanceState> load_broker_state() override {
    return inner_.load_broker_state();
  }
  void save_broker_state(const std::vector<storage::StoredInstanceState>& state) override {
    inner_.save_broker_state(state);
  }
  void clear_broker_state() override { inner_.clear_broker_state(); }
  storage::ClientIdPage list_client_ids(std::string_view i, std::string_view g, int n, int s,
                                        std::string_view t) override {
    return inner_.list_client_ids(i, g, n, s, t);
  }

 private:
  void maybe_fail() {
    if (fail) throw storage::StorageError("storage: simulated disk failure");
  }
  void on_lookup() {
    ++lookups;
    maybe_fail();
    if (during_lookup) during_lookup();
  }
  storage::Store& inner_;
};

class AuthenticatorTest : public ::testing::Test {
 protected:
  AuthenticatorTest()
      : real_store_(storage::Store::open(temp_.path())),
        store_(*real_store_),
        service_(store_, hub_),
        authenticator_(store_, hub_, io_.get_executor(), limits()) {
    store_.ensure_instance(kInstance);
    store_.ensure_instance(kOtherInstance);
    credential_ = service_.register_device(kInstance, kClient);
  }

  // Throttling off by default, so each refusal case really reaches the check it tests.
  static ThrottleLimits limits(std::size_t per_client_id = 0) {
    ThrottleLimits out;
    out.max_failures_per_client_id = per_client_id;
    out.max_failures_per_address = 0;
    return out;
  }

  ConnectRequest request(std::string username, std::string password,
                         std::string client_id = kClient) const {
    ConnectRequest out;
    out.client_id = std::move(client_id);
    out.username = std::move(username);
    out.password = std::move(password);
    out.remote_address = kRemote;
    return out;
  }

  static std::string device_username(const storage::DeviceCredential& credential,
                                     std::string_view instance = kInstance) {
    return "DeviceCredential|" + credential.access_key_id + "|" + std::string(instance);
  }

  ConnectRequest device_request(const storage::DeviceCredential& credential) const {
    return request(device_username(credential),
                   DeviceCredentialAuthenticator::expected_password(credential.access_key_secret,
                                                                    credential.client_id),
                   credential.client_id);
  }

  // An acceptance of credential_ carries its identity and the epoch read before the lookup.
  void expect_device_identity(const AuthResult& result, std::uint64_t epoch) const {
    ASSERT_TRUE(result.accepted());
    EXPECT_EQ(result.identity->instance_id, kInstance);
    EXPECT_EQ(result.identity->mode, "DeviceCredential");
    EXPECT_EQ(result.identity->key_id, credential_.access_key_id);
    EXPECT_EQ(result.identity->credential_serial, credential_.serial);
    EXPECT_EQ(result.identity->revocation_epoch, epoch);
  }

  Refusal refusal_of(const ConnectRequest& connect) { return refusal_of(authenticator_, connect); }
  static Refusal refusal_of(DeviceCredentialAuthenticator& authenticator,
                            const ConnectRequest& connect) {
    const auto result = authenticator.authenticate_now(connect);
    EXPECT_FALSE(result.accepted());
    return result.refusal;
  }

  testing::TempDir temp_;
  std::unique_ptr<storage::Store> real_store_;
  InstrumentedStore store_;
  RevocationHub hub_;
  CredentialService service_;
  boost::asio::io_context io_;
  DeviceCredentialAuthenticator authenticator_;
  storage::DeviceCredential credential_;
};

TEST(ExpectedPassword, MatchesTheSpecVector) {
  EXPECT_EQ(DeviceCredentialAuthenticator::expected_password("DC.testsecret0001",
                                                             "GID_test@@@device-001"),
            "TdyH2E2stRxzQGZgijzPcfDrEmk=");
  // The admin-API keying (secret + "&") is a different, wrong password.
  EXPECT_EQ(DeviceCredentialAuthenticator::expected_password("DC.testsecret0001&",
                                                             "GID_test@@@device-001"),
            "M3v+3gMytjSty/yuqToL1QgEjNM=");
}

TEST_F(AuthenticatorTest, AcceptsAValidDeviceCredential) {
  const auto epoch = hub_.epoch();
  const auto result = authenticator_.authenticate_now(device_request(credential_));
  expect_device_identity(result, epoch);
}

TEST_F(AuthenticatorTest, ReadsTheEpochBeforeTheLookup) {
  const auto epoch_before = hub_.epoch();
  store_.during_lookup = [&] { hub_.revoke(123456); };  // an unrelated revocation meanwhile
  const auto result = authenticator_.authenticate_now(device_request(credential_));
  ASSERT_TRUE(result.accepted());
  EXPECT_EQ(result.identity->revocation_epoch, epoch_before);
  EXPECT_LT(result.identity->revocation_epoch, hub_.epoch());
}

TEST_F(AuthenticatorTest, RefusesTheAmpersandKeyedPassword) {
  auto connect = device_request(credential_);
  connect.password = DeviceCredentialAuthenticator::expected_password(
      credential_.access_key_secret + "&", kClient);
  EXPECT_EQ(refusal_of(connect), Refusal::bad_credentials);
}

TEST_F(AuthenticatorTest, RefusesAWrongPassword) {
  auto connect = device_request(credential_);
  connect.password = "TdyH2E2stRxzQGZgijzPcfDrEmk=";
  EXPECT_EQ(refusal_of(connect), Refusal::bad_credentials);
  connect.password = std::string("\0\xff", 2);
  EXPECT_EQ(refusal_of(connect), Refusal::bad_credentials);
  connect.password = "";
  EXPECT_EQ(refusal_of(connect), Refusal::bad_credentials);
  connect.password.reset();
  EXPECT_EQ(refusal_of(connect), Refusal::bad_credentials);
}

TEST_F(AuthenticatorTest, RefusesAnUnknownKeyId) {
  EXPECT_EQ(refusal_of(request("DeviceCredential|DC.testkeyid0001|mqtt-cn-test0001",
                               "TdyH2E2stRxzQGZgijzPcfDrEmk=")),
            Refusal::bad_credentials);
}

TEST_F(AuthenticatorTest, RefusesAValidKeyUsedByAnotherClientId) {
  const std::string other_client = "GID_test@@@device-002";
  // Whether the password is computed for the CONNECT client id or the key's own.
  EXPECT_EQ(refusal_of(request(device_username(credential_),
                               DeviceCredentialAuthenticator::expected_password(
                                   credential_.access_key_secret, other_client),
                               other_client)),
            Refusal::not_authorized);
  EXPECT_EQ(refusal_of(request(device_username(credential_),
                               DeviceCredentialAuthenticator::expected_password(
                                   credential_.access_key_secret, kClient),
                               other_client)),
            Refusal::not_authorized);
}

TEST_F(AuthenticatorTest, RefusesAValidKeyUsedOnAnotherInstance) {
  auto connect = device_request(credential_);
  connect.username = device_username(credential_, kOtherInstance);
  EXPECT_EQ(refusal_of(connect), Refusal::not_authorized);
  connect.username = device_username(credential_, "mqtt-cn-does-not-exist");
  EXPECT_EQ(refusal_of(connect), Refusal::not_authorized);
}

TEST_F(AuthenticatorTest, RefusesMalformedUsernamesAndOtherModes) {
  const std::string password =
      DeviceCredentialAuthenticator::expected_password(credential_.access_key_secret, kClient);
  const std::string key = credential_.access_key_id;
  for (const std::string& username : std::vector<std::string>{
           std::string(""),
           "DeviceCredential",
           "DeviceCredential|" + key,
           "DeviceCredential|" + key + "|" + kInstance + "|extra",
           "DeviceCredential||" + std::string(kInstance),
           "DeviceCredential|" + key + "|",
           "|" + key + "|" + kInstance,
           "devicecredential|" + key + "|" + kInstance,
           "Token|" + key + "|" + kInstance,
           "Bogus|" + key + "|" + kInstance,
       }) {
    EXPECT_EQ(refusal_of(request(username, password)), Refusal::bad_credentials) << username;
  }
}

TEST_F(AuthenticatorTest, RefusesAnonymousClientsUnlessTheListenerAllows) {
  ConnectRequest connect;
  connect.client_id = "anything";
  connect.remote_address = kRemote;
  EXPECT_EQ(refusal_of(connect), Refusal::not_authorized);

  connect.anonymous_instance = kOtherInstance;
  const auto result = authenticator_.authenticate_now(connect);
  ASSERT_TRUE(result.accepted());
  EXPECT_EQ(result.identity->mode, "Anonymous");
  EXPECT_EQ(result.identity->instance_id, kOtherInstance);
  EXPECT_EQ(result.identity->key_id, "");
  EXPECT_EQ(result.identity->credential_serial, 0);

  connect.anonymous_instance = "mqtt-cn-does-not-exist";
  EXPECT_EQ(refusal_of(connect), Refusal::not_authorized);
}

TEST_F(AuthenticatorTest, AcceptsSignatureModeOnTheKeysInstances) {
  const auto admin = store_.create_admin_key({kInstance});
  const std::string client = "GID_app@@@any-client";
  const std::string password =
      DeviceCredentialAuthenticator::expected_password(admin.access_key_secret, client);
  const auto result = authenticator_.authenticate_now(
      request("Signature|" + admin.access_key_id + "|" + kInstance, password, client));
  ASSERT_TRUE(result.accepted());
  EXPECT_EQ(result.identity->mode, "Signature");
  EXPECT_EQ(result.identity->key_id, admin.access_key_id);
  EXPECT_EQ(result.identity->instance_id, kInstance);
  EXPECT_EQ(result.identity->credential_serial, 0);

  EXPECT_EQ(refusal_of(request("Signature|" + admin.access_key_id + "|" + kOtherInstance, password,
                               client)),
            Refusal::not_authorized);
  EXPECT_EQ(refusal_of(request("Signature|" + admin.access_key_id + "|" + kInstance, password + "x",
                               client)),
            Refusal::bad_credentials);
  EXPECT_EQ(refusal_of(request("Signature|AKUNKNOWN|" + std::string(kInstance), password, client)),
            Refusal::bad_credentials);
  // A device key is not an admin key.
  EXPECT_EQ(refusal_of(request("Signature|" + credential_.access_key_id + "|" + kInstance,
                               DeviceCredentialAuthenticator::expected_password(
                                   credential_.access_key_secret, kClient))),
            Refusal::bad_credentials);
}

TEST_F(AuthenticatorTest, RefusesRevokedCredentials) {
  const auto refreshed = *service_.refresh_device(kInstance, kClient);
  EXPECT_EQ(refusal_of(device_request(credential_)), Refusal::bad_credentials);
  const auto result = authenticator_.authenticate_now(device_request(refreshed));
  ASSERT_TRUE(result.accepted());
  EXPECT_EQ(result.identity->credential_serial, refreshed.serial);
  EXPECT_NE(refreshed.serial, credential_.serial);

  const auto reissued = service_.register_device(kInstance, kClient);
  EXPECT_EQ(refusal_of(device_request(refreshed)), Refusal::bad_credentials);
  ASSERT_TRUE(authenticator_.authenticate_now(device_request(reissued)).accepted());

  ASSERT_TRUE(service_.unregister_device(kInstance, kClient));
  EXPECT_EQ(refusal_of(device_request(reissued)), Refusal::bad_credentials);
}

TEST_F(AuthenticatorTest, ThrottlesRepeatedFailuresWithoutALookup) {
  DeviceCredentialAuthenticator throttled(store_, hub_, io_.get_executor(), limits(3));
  auto bad = device_request(credential_);
  bad.password = "wrong";
  for (int i = 0; i < 3; ++i) EXPECT_EQ(refusal_of(throttled, bad), Refusal::bad_credentials);
  const int lookups = store_.lookups;
  // Now even the right password is refused, cheaply.
  EXPECT_EQ(refusal_of(throttled, device_request(credential_)), Refusal::bad_credentials);
  EXPECT_EQ(store_.lookups, lookups);
  // Other client ids are unaffected.
  const auto other = service_.register_device(kInstance, "GID_test@@@device-002");
  EXPECT_TRUE(throttled.authenticate_now(device_request(other)).accepted());
}

TEST_F(AuthenticatorTest, SuccessResetsTheClientIdsFailures) {
  DeviceCredentialAuthenticator throttled(store_, hub_, io_.get_executor(), limits(3));
  auto bad = device_request(credential_);
  bad.password = "wrong";
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(refusal_of(throttled, bad), Refusal::bad_credentials);
    EXPECT_EQ(refusal_of(throttled, bad), Refusal::bad_credentials);
    ASSERT_TRUE(throttled.authenticate_now(device_request(credential_)).accepted());
  }
}

TEST_F(AuthenticatorTest, RecordFailureFeedsTheThrottle) {
  DeviceCredentialAuthenticator throttled(store_, hub_, io_.get_executor(), limits(3));
  for (int i = 0; i < 3; ++i) throttled.record_failure(device_request(credential_));
  EXPECT_EQ(refusal_of(throttled, device_request(credential_)), Refusal::bad_credentials);
}

TEST_F(AuthenticatorTest, StoreFailuresDoNotFeedTheThrottle) {
  DeviceCredentialAuthenticator throttled(store_, hub_, io_.get_executor(), limits(3));
  store_.fail = true;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(refusal_of(throttled, device_request(credential_)), Refusal::server_unavailable);
  }
  store_.fail = false;
  EXPECT_TRUE(throttled.authenticate_now(device_request(credential_)).accepted());
}

TEST_F(AuthenticatorTest, ReportsStoreFailuresAsServerUnavailable) {
  store_.fail = true;
  EXPECT_EQ(refusal_of(device_request(credential_)), Refusal::server_unavailable);
  const auto admin_request = request("Signature|AKX|" + std::string(kInstance), "p");
  EXPECT_EQ(refusal_of(admin_request), Refusal::server_unavailable);
  store_.fail = false;
  ASSERT_TRUE(authenticator_.authenticate_now(device_request(credential_)).accepted());
}

// Fail closed while writes fail: a valid credential is refused as "server unavailable"
// without a lookup (a revocation could not be recorded), and that is not a failure to count.
TEST_F(AuthenticatorTest, RefusesEveryConnectWhileTheStoreCannotWrite) {
  DeviceCredentialAuthenticator throttled(store_, hub_, io_.get_executor(), limits(3));
  store_.unwritable = true;
  const int lookups_before = store_.lookups;
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(refusal_of(throttled, device_request(credential_)), Refusal::server_unavailable);
  }
  EXPECT_EQ(
      refusal_of(throttled, request("DeviceCredential|DC.nope|" + std::string(kInstance), "wrong")),
      Refusal::server_unavailable);
  EXPECT_EQ(store_.lookups, lookups_before);
  store_.unwritable = false;
  EXPECT_TRUE(throttled.authenticate_now(device_request(credential_)).accepted());
}

// What the broker asks at start about each saved session's credential serial.
TEST_F(AuthenticatorTest, CredentialCurrentOnlyForTheLiveIssuance) {
  const auto first = credential_.serial;
  EXPECT_TRUE(authenticator_.credential_current(kInstance, kClient, first));
  EXPECT_FALSE(authenticator_.credential_current(kOtherInstance, kClient, first));
  EXPECT_FALSE(authenticator_.credential_current(kInstance, "GID_test@@@other", first));
  EXPECT_FALSE(authenticator_.credential_current(kInstance, kClient, 0));

  const auto refreshed = service_.refresh_device(kInstance, kClient);
  ASSERT_TRUE(refreshed);
  EXPECT_FALSE(authenticator_.credential_current(kInstance, kClient, first));
  EXPECT_TRUE(authenticator_.credential_current(kInstance, kClient, refreshed->serial));

  const auto reissued = service_.register_device(kInstance, kClient);
  EXPECT_FALSE(authenticator_.credential_current(kInstance, kClient, refreshed->serial));
  EXPECT_TRUE(authenticator_.credential_current(kInstance, kClient, reissued.serial));

  ASSERT_TRUE(service_.unregister_device(kInstance, kClient));
  EXPECT_FALSE(authenticator_.credential_current(kInstance, kClient, reissued.serial));

  store_.fail = true;
  EXPECT_THROW(authenticator_.credential_current(kInstance, kClient, reissued.serial),
               storage::StorageError);
}

TEST_F(AuthenticatorTest, AuthenticateRunsOnTheBlockingExecutor) {
  std::optional<AuthResult> outcome;
  int calls = 0;
  authenticator_.authenticate(device_request(credential_), [&](AuthResult result) {
    ++calls;
    outcome = std::move(result);
  });
  EXPECT_EQ(calls, 0);  // never inline on the caller's thread
  io_.run();
  EXPECT_EQ(calls, 1);
  ASSERT_TRUE(outcome);
  EXPECT_TRUE(outcome->accepted());

  io_.restart();
  store_.fail = true;
  authenticator_.authenticate(device_request(credential_), [&](AuthResult result) {
    ++calls;
    outcome = std::move(result);
  });
  io_.run();
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(outcome->accepted());
  EXPECT_EQ(outcome->refusal, Refusal::server_unavailable);
}

// With the real store (its credential index answers), a DeviceCredential CONNECT is decided
// at once on the calling thread, with the same outcomes as authenticate_now.
TEST_F(AuthenticatorTest, DecidesDeviceCredentialsFromTheIndexWithoutThePool) {
  DeviceCredentialAuthenticator direct(*real_store_, hub_, io_.get_executor(), limits());
  auto decide = [&](const ConnectRequest& connect) {
    std::optional<AuthResult> outcome;
    direct.authenticate(connect, [&](AuthResult result) { outcome = std::move(result); });
    EXPECT_TRUE(outcome) << "not decided inline";
    return outcome.value_or(AuthResult{});
  };
  const auto epoch = hub_.epoch();
  auto accepted = decide(device_request(credential_));
  expect_device_identity(accepted, epoch);

  auto wrong = device_request(credential_);
  wrong.password = "TdyH2E2stRxzQGZgijzPcfDrEmk=";
  EXPECT_EQ(decide(wrong).refusal, Refusal::bad_credentials);
  EXPECT_EQ(decide(request(device_username(credential_, kOtherInstance),
                           *device_request(credential_).password))
                .refusal,
            Refusal::not_authorized);
  EXPECT_EQ(decide(request("DeviceCredential|DC.unknown|" + std::string(kInstance), "x")).refusal,
            Refusal::bad_credentials);

  // Refresh: the old password is refused at once, the new one accepted with the new serial
  // and the epoch after the revocation.
  const auto old_request = device_request(credential_);
  const auto refreshed = *service_.refresh_device(kInstance, kClient);
  EXPECT_EQ(decide(old_request).refusal, Refusal::bad_credentials);
  accepted = decide(device_request(refreshed));
  ASSERT_TRUE(accepted.accepted());
  EXPECT_EQ(accepted.identity->credential_serial, refreshed.serial);
  EXPECT_EQ(accepted.identity->revocation_epoch, hub_.epoch());
  // Unregister: refused (unknown key id) from the moment the call returned.
  ASSERT_TRUE(service_.unregister_device(kInstance, kClient));
  EXPECT_EQ(decide(device_request(refreshed)).refusal, Refusal::bad_credentials);
  EXPECT_EQ(io_.poll(), 0u);  // nothing was posted to the blocking executor
}

// mqtt-auth.md Revocation item 7 with the credential index: logins decided from memory while
// another thread refreshes the credential (each refresh revokes the previous issuance) are
// either refused, refused at bind, or bound and then revoked; none stays bound to a revoked
// issuance without having been told.
TEST_F(AuthenticatorTest, InMemoryLoginsRacingRevocationsNeverOutliveThem) {
  DeviceCredentialAuthenticator direct(*real_store_, hub_, io_.get_executor(), limits());
  struct Session : RevocableSession {
    std::atomic<bool> revoked{false};
    void revoke() override { revoked = true; }
  };
  std::mutex mutex;
  storage::DeviceCredential latest = credential_;
  std::atomic<bool> done{false};
  std::thread refresher([&] {
    for (int i = 0; i < 100; ++i) {
      auto next = *service_.refresh_device(kInstance, kClient);
      std::lock_guard lock(mutex);
      latest = std::move(next);
    }
    done = true;
  });
  std::vector<std::pair<std::shared_ptr<Session>, std::int64_t>> bound;
  int refused_at_bind = 0;
  while (!done) {
    storage::DeviceCredential credential;
    {
      std::lock_guard lock(mutex);
      credential = latest;
    }
    const auto result = direct.authenticate_in_memory(device_request(credential));
    ASSERT_TRUE(result);
    if (!result->accepted()) continue;  // revoked before the lookup
    auto session = std::make_shared<Session>();
    const auto serial = result->identity->credential_serial;
    switch (hub_.bind(serial, result->identity->revocation_epoch, session)) {
      case RevocationHub::BindResult::bound:
        bound.emplace_back(session, serial);
        break;
      case RevocationHub::BindResult::revoked:
        ++refused_at_bind;
        break;
      case RevocationHub::BindResult::unknown:
        FAIL() << "revocation log overflow";
    }
  }
  refresher.join();
  const auto current = real_store_->credential_serial(kInstance, kClient);
  ASSERT_TRUE(current);
  EXPECT_FALSE(bound.empty());
  for (const auto& [session, serial] : bound) {
    if (serial != *current) {
      EXPECT_TRUE(session->revoked) << "serial " << serial;
    }
  }
  std::cout << bound.size() << " bound, " << refused_at_bind << " refused at bind\n";
}

TEST_F(AuthenticatorTest, ConcurrentAuthenticationsAgree) {
  std::vector<storage::DeviceCredential> devices;
  for (int i = 0; i < 8; ++i) {
    devices.push_back(service_.register_device(kInstance, "GID_test@@@c" + std::to_string(i)));
  }
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (const auto& device : devices) {
    threads.emplace_back([&, device] {
      for (int i = 0; i < 20; ++i) {
        if (authenticator_.authenticate_now(device_request(device)).accepted()) ++accepted;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(accepted, 8 * 20);
}

}  // namespace
}  // namespace credmq::auth
