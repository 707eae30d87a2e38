#include "credmq/auth/device_credential_authenticator.hpp"

#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <exception>

#include "credmq/common/crypto.hpp"
#include "credmq/common/log.hpp"

namespace credmq::auth {
namespace {

constexpr std::string_view kDeviceCredentialMode = "DeviceCredential";
constexpr std::string_view kSignatureMode = "Signature";
constexpr std::string_view kAnonymousMode = "Anonymous";

struct Username {
  std::string_view mode;
  std::string_view key_id;
  std::string_view instance_id;
};

// "<Mode>|<KeyId>|<InstanceId>": exactly three non-empty fields.
std::optional<Username> parse_username(std::string_view text) {
  std::array<std::string_view, 3> fields;
  std::size_t start = 0;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    const std::size_t bar = text.find('|', start);
    const bool last = i + 1 == fields.size();
    if (last != (bar == std::string_view::npos)) return std::nullopt;
    fields[i] = text.substr(start, last ? std::string_view::npos : bar - start);
    if (fields[i].empty()) return std::nullopt;
    start = bar + 1;
  }
  return Username{fields[0], fields[1], fields[2]};
}

const char* refusal_name(Refusal refusal) {
  switch (refusal) {
    case Refusal::bad_credentials:
      return "bad credentials";
    case Refusal::not_authorized:
      return "not authorized";
    case Refusal::server_unavailable:
      return "server unavailable";
  }
  return "?";
}

}  // namespace

DeviceCredentialAuthenticator::DeviceCredentialAuthenticator(
    storage::Store& store, RevocationHub& hub, boost::asio::any_io_executor blocking_executor,
    ThrottleLimits limits)
    : store_(store),
      hub_(hub),
      blocking_executor_(std::move(blocking_executor)),
      throttle_(limits) {}

std::string DeviceCredentialAuthenticator::expected_password(std::string_view secret,
                                                             std::string_view client_id) {
  return crypto::hmac_sha1_base64(secret, client_id);
}

void DeviceCredentialAuthenticator::authenticate(ConnectRequest request,
                                                 std::function<void(AuthResult)> done) {
  // A DeviceCredential login is decided at once from the store's in-memory credential index
  // (a hash lookup and one HMAC-SHA1, a few microseconds): no disk, no thread hop.
  std::optional<AuthResult> decided;
  try {
    decided = authenticate_in_memory(request);
  } catch (const std::exception& error) {
    log::error("auth: unexpected failure for client ", request.client_id, ": ", error.what());
    decided = AuthResult{std::nullopt, Refusal::server_unavailable};
  }
  if (decided) {
    done(std::move(*decided));
    return;
  }
  // Anything else (other modes, anonymous clients, a store that cannot answer from memory)
  // runs on the blocking pool so an I/O thread never waits on disk.
  boost::asio::post(
      blocking_executor_, [this, request = std::move(request), done = std::move(done)]() mutable {
        AuthResult result;
        try {
          result = authenticate_now(request);
        } catch (const std::exception& error) {
          log::error("auth: unexpected failure for client ", request.client_id, ": ", error.what());
          result = AuthResult{std::nullopt, Refusal::server_unavailable};
        }
        done(std::move(result));
      });
}

void DeviceCredentialAuthenticator::record_failure(const ConnectRequest& request) {
  throttle_.record_failure(request.client_id, request.remote_address);
}

bool DeviceCredentialAuthenticator::credential_current(std::string_view instance_id,
                                                       std::string_view client_id,
                                                       std::int64_t serial) {
  return serial != 0 && store_.credential_serial(instance_id, client_id) == serial;
}

std::optional<AuthResult> DeviceCredentialAuthenticator::authenticate_in_memory(
    const ConnectRequest& request) {
  if (!request.username || !request.password) return std::nullopt;
  const auto username = parse_username(*request.username);
  if (!username || username->mode != kDeviceCredentialMode) return std::nullopt;
  // As authenticate_now: cheap refusal of repeat offenders first, not counted again.
  if (throttle_.blocked(request.client_id, request.remote_address)) {
    if (log::level() <= log::Level::debug) {
      log::debug("auth: throttled client ", log::clip(request.client_id), " from ",
                 request.remote_address);
    }
    return AuthResult{std::nullopt, Refusal::bad_credentials};
  }
  // Read before the lookup, as in authenticate_now (RevocationHub::bind). The index is
  // updated after the commit and before the hub hears of a revocation, like the table.
  const std::uint64_t epoch = hub_.epoch();
  std::shared_ptr<const storage::IndexedCredential> credential;
  switch (store_.find_credential_in_memory(username->key_id, credential)) {
    case storage::Store::MemoryLookup::ask_the_store:
      return std::nullopt;
    case storage::Store::MemoryLookup::absent:
      return refuse(request, username->key_id, Refusal::bad_credentials, "unknown key id");
    case storage::Store::MemoryLookup::found:
      break;
  }
  return check_device_credential(request, username->key_id, username->instance_id,
                                 credential->instance_id, credential->client_id,
                                 credential->access_key_secret, credential->serial, epoch);
}

AuthResult DeviceCredentialAuthenticator::refuse(const ConnectRequest& request,
                                                 std::string_view key_id, Refusal refusal,
                                                 std::string_view why) {
  if (refusal == Refusal::bad_credentials) {
    throttle_.record_failure(request.client_id, request.remote_address);
  }
  // At info, as Mosquitto logs refused logins by default; throttled repeats stay at debug.
  if (log::level() <= log::Level::info) {
    log::info("auth: refused client ", log::clip(request.client_id), " key ",
              key_id.empty() ? std::string("(none)") : log::clip(key_id), " from ",
              request.remote_address, ": ", refusal_name(refusal), " (", why, ")");
  }
  return AuthResult{std::nullopt, refusal};
}

AuthResult DeviceCredentialAuthenticator::accept(const ConnectRequest& request, Identity identity) {
  throttle_.record_success(request.client_id);
  if (log::level() <= log::Level::debug) {
    log::debug("auth: accepted client ", log::clip(request.client_id), " key ", identity.key_id,
               " mode ", identity.mode, " on ", identity.instance_id);
  }
  return AuthResult{std::move(identity), Refusal::bad_credentials};
}

AuthResult DeviceCredentialAuthenticator::check_device_credential(
    const ConnectRequest& request, std::string_view key_id, std::string_view username_instance,
    std::string_view instance_id, std::string_view client_id, std::string_view secret,
    std::int64_t serial, std::uint64_t epoch) {
  // A real key presented for another device or instance: refused as not authorized
  // (the credential row implies its instance exists).
  if (instance_id != username_instance || client_id != request.client_id) {
    return refuse(request, key_id, Refusal::not_authorized,
                  "key belongs to another client or instance");
  }
  if (!crypto::constant_time_equal(*request.password,
                                   expected_password(secret, request.client_id))) {
    return refuse(request, key_id, Refusal::bad_credentials, "wrong password");
  }
  return accept(request, Identity{std::string(instance_id), std::string(kDeviceCredentialMode),
                                  std::string(key_id), serial, epoch});
}

AuthResult DeviceCredentialAuthenticator::authenticate_now(const ConnectRequest& request) {
  std::string_view key_id;
  auto refuse = [&](Refusal refusal, std::string_view why) {
    return this->refuse(request, key_id, refusal, why);
  };
  auto accept = [&](Identity identity) { return this->accept(request, std::move(identity)); };

  // Cheap refusal of repeat offenders, before any store lookup. Not counted again.
  if (throttle_.blocked(request.client_id, request.remote_address)) {
    log::debug("auth: throttled client ", log::clip(request.client_id), " from ",
               request.remote_address);
    return AuthResult{std::nullopt, Refusal::bad_credentials};
  }

  try {
    // Fail closed while the store cannot write: no new login while a revocation could not
    // be recorded. Existing sessions are not affected.
    if (!store_.available()) return refuse(Refusal::server_unavailable, "storage not writable");
    if (!request.username) {
      if (!request.anonymous_instance) return refuse(Refusal::not_authorized, "anonymous");
      const std::uint64_t epoch = hub_.epoch();
      if (!store_.instance_exists(*request.anonymous_instance)) {
        return refuse(Refusal::not_authorized, "anonymous instance does not exist");
      }
      return accept(
          Identity{*request.anonymous_instance, std::string(kAnonymousMode), "", 0, epoch});
    }

    const auto username = parse_username(*request.username);
    if (!username) return refuse(Refusal::bad_credentials, "malformed username");
    key_id = username->key_id;
    if (username->mode != kDeviceCredentialMode && username->mode != kSignatureMode) {
      return refuse(Refusal::bad_credentials, "unsupported mode");
    }
    if (!request.password) return refuse(Refusal::bad_credentials, "no password");
    const std::string_view password = *request.password;

    // Read before the lookup: RevocationHub::bind() uses it to spot a revocation that
    // committed while this lookup was in flight.
    const std::uint64_t epoch = hub_.epoch();

    if (username->mode == kDeviceCredentialMode) {
      const auto credential = store_.find_credential_by_key_id(username->key_id);
      if (!credential) return refuse(Refusal::bad_credentials, "unknown key id");
      return check_device_credential(request, credential->access_key_id, username->instance_id,
                                     credential->instance_id, credential->client_id,
                                     credential->access_key_secret, credential->serial, epoch);
    }

    const auto admin_key = store_.find_admin_key(username->key_id);
    if (!admin_key) return refuse(Refusal::bad_credentials, "unknown key id");
    if (!crypto::constant_time_equal(
            password, expected_password(admin_key->access_key_secret, request.client_id))) {
      return refuse(Refusal::bad_credentials, "wrong password");
    }
    const auto& allowed = admin_key->instances;
    if (std::find(allowed.begin(), allowed.end(), username->instance_id) == allowed.end() ||
        !store_.instance_exists(username->instance_id)) {
      return refuse(Refusal::not_authorized, "key not allowed on instance");
    }
    return accept(Identity{std::string(username->instance_id), std::string(kSignatureMode),
                           admin_key->access_key_id, 0, epoch});
  } catch (const storage::StorageError& error) {
    // The message names tables and key ids only, never secrets.
    log::error("auth: credential store failed for client ", request.client_id, ": ", error.what());
    return refuse(Refusal::server_unavailable, "store failure");
  } catch (const crypto::CryptoError& error) {
    log::error("auth: crypto failure for client ", request.client_id, ": ", error.what());
    return refuse(Refusal::server_unavailable, "crypto failure");
  }
}

}  // namespace credmq::auth
