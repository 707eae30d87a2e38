// Validation order (admin-api.md is silent on it; first failing check wins):
//   0. parameters decode (query, then the form body: last duplicate wins)
//        -> 400 ParameterCheckFailed; no V1 Signature but an Authorization header (V3)
//        -> 400 MissingParameter.Signature
//   1. presence: Action, AccessKeyId, Signature, SignatureMethod, SignatureVersion,
//      SignatureNonce, Timestamp, Version -> 400 MissingParameter.<Name> (empty = absent)
//   2. static syntax, before touching the store: Format JSON/json (InvalidParameter.Format),
//      Version (InvalidVersion), SignatureMethod HMAC-SHA1 any case and SignatureVersion 1.0
//      (InvalidParameter.<Name>), SignatureNonce at most 128 characters
//      (InvalidParameter.SignatureNonce), Timestamp syntax (InvalidParameter.Timestamp)
//   3. AccessKeyId known -> 404 InvalidAccessKeyId.NotFound
//   4. signature -> 400 SignatureDoesNotMatch (echoes the server's StringToSign)
//   5. Timestamp within the window -> 400 InvalidTimeStamp.Expired
//   6. nonce unused (recorded only now, after the signature verified) -> SignatureNonceUsed
//   7. per-account rate -> 400 Throttling.User
//   8. Action known -> 404 ApiNotSupport (after the signature, as Alibaba does: an
//      unauthenticated caller learns nothing)
//   9. InstanceId present, instance exists (InstanceNotFound), key allowed on it
//      (InstancePermissionCheckFailed)
//  10. action parameters (MissingParameter / InvalidParameter.<Name>), then the action;
//      a NextToken the store cannot decode -> InvalidParameter.NextToken.
#include "api.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <exception>
#include <optional>
#include <utility>

#include "credmq/common/crypto.hpp"
#include "credmq/common/log.hpp"
#include "form.hpp"
#include "rules.hpp"

namespace credmq::admin {
namespace {

constexpr std::string_view kParameterCheckFailedMessage =
    "An error occurred while validating the parameters. The parameters may be missing or "
    "invalid.";
constexpr std::string_view kInvalidParameterMessage =
    "An error occurred while validating the parameter. The parameter may be missing or invalid.";
constexpr std::string_view kInstancePermissionMessage =
    "An error occurred while validating the permissions of the instance. Please verify the "
    "account that created the instance and its permissions settings.";
constexpr std::string_view kDeviceCredentialNotFoundMessage =
    "Device Credential Not Found. Check if the device certificate is registered.";
constexpr std::string_view kApiNotSupportMessage = "The specified API is not supported.";
constexpr std::string_view kInternalErrorMessage =
    "An error occurred while processing your request. Try again later.";
constexpr std::string_view kSystemOverFlowMessage =
    "An error occurred while processing your request. Please try again.";
constexpr std::string_view kThrottlingMessage = "Request was denied due to user flow control.";

// SDK nonces are UUIDs or hex digests (32-36 characters).
constexpr std::size_t kMaxNonceLength = 128;
constexpr int kDefaultPageNo = 1;
constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 100;
// Keeps page_no * page_size well inside an int for the store's offset arithmetic.
constexpr int kMaxPageNo = 1'000'000;

// A refusal: thrown by the checks, turned into an error response by handle().
struct Refusal {
  unsigned status;
  std::string code;
  std::string message;
};

Refusal missing(std::string_view name) {
  return {400, "MissingParameter." + std::string(name),
          "The input parameter \"" + std::string(name) +
              "\" that is mandatory for processing this request is not supplied."};
}

Refusal invalid(std::string_view name) {
  return {400, "InvalidParameter." + std::string(name), std::string(kInvalidParameterMessage)};
}

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    return lower(x) == lower(y);
  });
}

// Request-derived text for the log: printable ASCII only, bounded length.
std::string loggable(std::string_view text) {
  constexpr std::size_t kMax = 80;
  std::string out;
  for (char c : text.substr(0, std::min(text.size(), kMax))) {
    out.push_back(c > 0x20 && c < 0x7F ? c : '?');
  }
  if (text.size() > kMax) out += "...";
  return out.empty() ? "-" : out;
}

boost::json::object credential_json(const storage::DeviceCredential& credential) {
  boost::json::object object;
  object["ClientId"] = credential.client_id;
  object["InstanceId"] = credential.instance_id;
  object["DeviceAccessKeyId"] = credential.access_key_id;
  object["DeviceAccessKeySecret"] = credential.access_key_secret;
  object["CreateTime"] = credential.create_time_ms;
  object["UpdateTime"] = credential.update_time_ms;
  return object;
}

enum class Action { register_device, get_device, refresh_device, unregister_device, list };

std::optional<Action> parse_action(std::string_view name) {
  if (name == "RegisterDeviceCredential") return Action::register_device;
  if (name == "GetDeviceCredential") return Action::get_device;
  if (name == "RefreshDeviceCredential") return Action::refresh_device;
  if (name == "UnRegisterDeviceCredential") return Action::unregister_device;
  if (name == "ListDeviceCredentialClientId") return Action::list;
  return std::nullopt;
}

}  // namespace

ApiResponse make_error_response(unsigned status, std::string_view code, std::string_view message,
                                std::string_view host_id, std::string request_id) {
  ApiResponse response;
  response.status = status;
  response.request_id = request_id.empty() ? crypto::uuid_v4_upper() : std::move(request_id);
  response.code = code;
  boost::json::object body;
  body["RequestId"] = response.request_id;
  body["HostId"] = host_id;
  body["Code"] = code;
  body["Message"] = message;
  response.body = boost::json::serialize(body);
  return response;
}

// State of one request while it goes through the checks.
struct ApiHandler::Call {
  const ApiRequest& request;
  Params params;
  std::optional<storage::AdminKey> key;
  std::chrono::system_clock::time_point timestamp;
  ApiResponse response;

  // The value of a required parameter; an empty value counts as absent.
  const std::string& required(std::string_view name) const {
    auto it = params.find(name);
    if (it == params.end() || it->second.empty()) throw missing(name);
    return it->second;
  }
  const std::string* optional(std::string_view name) const {
    auto it = params.find(name);
    return it == params.end() || it->second.empty() ? nullptr : &it->second;
  }
};

ApiHandler::ApiHandler(const ApiConfig& config, auth::CredentialService& credentials)
    : config_(config),
      credentials_(credentials),
      nonces_(config.max_remembered_nonces),
      rate_limiter_(config.calls_per_second_per_account) {}

ApiResponse ApiHandler::handle(const ApiRequest& request) {
  const auto started = std::chrono::steady_clock::now();
  Call call{request, {}, {}, {}, {}};
  call.response.request_id = crypto::uuid_v4_upper();
  auto fail = [&](unsigned status, std::string_view code, std::string_view message) {
    ApiResponse error =
        make_error_response(status, code, message, request.host_id, call.response.request_id);
    call.response.status = error.status;
    call.response.body = std::move(error.body);
    call.response.code = std::move(error.code);
  };
  try {
    authenticate(call);
    run_action(call);
  } catch (const Refusal& refusal) {
    fail(refusal.status, refusal.code, refusal.message);
  } catch (const storage::StorageError& e) {
    log::error("admin: storage failure in ", loggable(call.response.action), ": ", e.what());
    fail(500, "InternalError", kInternalErrorMessage);
  } catch (const std::exception& e) {
    log::error("admin: unexpected failure in ", loggable(call.response.action), ": ", e.what());
    fail(500, "InternalError", kInternalErrorMessage);
  } catch (...) {
    log::error("admin: unknown failure in ", loggable(call.response.action));
    fail(500, "InternalError", kInternalErrorMessage);
  }
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count();
  log::info("admin ", request.method, " ", loggable(call.response.action),
            " ak=", loggable(call.response.access_key_id),
            " client=", loggable(call.response.client_id), " -> ", call.response.status, " ",
            call.response.code.empty() ? "OK" : call.response.code, " ", micros,
            "us id=", call.response.request_id);
  return std::move(call.response);
}

void ApiHandler::authenticate(Call& call) {
  const ApiRequest& request = call.request;
  if (!parse_form_into(request.query, call.params) ||
      (request.body_is_form && !parse_form_into(request.body, call.params))) {
    throw Refusal{400, "ParameterCheckFailed", std::string(kParameterCheckFailedMessage)};
  }
  if (auto it = call.params.find("Action"); it != call.params.end()) {
    call.response.action = it->second;
  }
  if (auto it = call.params.find("AccessKeyId"); it != call.params.end()) {
    call.response.access_key_id = it->second;
  }
  if (auto it = call.params.find("ClientId"); it != call.params.end()) {
    call.response.client_id = it->second;
  }
  if (request.has_authorization_header && !call.optional("Signature")) {
    throw Refusal{400, "MissingParameter.Signature",
                  "Only signature V1 (HMAC-SHA1, Signature parameter) is supported; the "
                  "Authorization header (ACS3) is not."};
  }

  call.required("Action");
  const std::string& access_key_id = call.required("AccessKeyId");
  const std::string& signature = call.required("Signature");
  const std::string& method = call.required("SignatureMethod");
  const std::string& signature_version = call.required("SignatureVersion");
  const std::string& nonce = call.required("SignatureNonce");
  const std::string& timestamp = call.required("Timestamp");
  const std::string& version = call.required("Version");

  if (const std::string* format = call.optional("Format"); format && !iequals(*format, "JSON")) {
    throw invalid("Format");
  }
  if (version != kApiVersion) {
    throw Refusal{400, "InvalidVersion", "Specified parameter Version is not valid."};
  }
  if (!iequals(method, "HMAC-SHA1")) throw invalid("SignatureMethod");
  if (signature_version != "1.0") throw invalid("SignatureVersion");
  // Nonces are remembered for the whole window: bound what one request can make us store.
  if (nonce.size() > kMaxNonceLength) throw invalid("SignatureNonce");
  const auto parsed_timestamp = parse_timestamp(timestamp);
  if (!parsed_timestamp) throw invalid("Timestamp");
  call.timestamp = *parsed_timestamp;

  call.key = credentials_.find_admin_key(access_key_id);
  if (!call.key) {
    throw Refusal{404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."};
  }
  const std::string server_string_to_sign = string_to_sign(request.method, call.params);
  const std::string expected = sign(call.key->access_key_secret, server_string_to_sign);
  if (!crypto::constant_time_equal(expected, signature)) {
    throw Refusal{400, "SignatureDoesNotMatch",
                  "Specified signature is not matched with our calculation. server string to "
                  "sign is:" +
                      server_string_to_sign};
  }

  const auto now = std::chrono::system_clock::now();
  const auto skew = call.timestamp > now ? call.timestamp - now : now - call.timestamp;
  if (skew > config_.timestamp_window) {
    throw Refusal{400, "InvalidTimeStamp.Expired",
                  "Specified time stamp or date value is expired."};
  }
  // Past timestamp + window the timestamp check refuses a replay by itself.
  switch (nonces_.remember(access_key_id, nonce, call.timestamp + config_.timestamp_window, now)) {
    case ReplayCache::Result::fresh:
      break;
    case ReplayCache::Result::replayed:
      throw Refusal{400, "SignatureNonceUsed", "Specified signature nonce was used already."};
    case ReplayCache::Result::full:
      log::warn("admin: nonce cache full, shedding load");
      throw Refusal{500, "SystemOverFlow", std::string(kSystemOverFlowMessage)};
  }
  if (config_.calls_per_second_per_account > 0 &&
      !rate_limiter_.try_acquire(access_key_id, std::chrono::steady_clock::now())) {
    throw Refusal{400, "Throttling.User", std::string(kThrottlingMessage)};
  }
}

void ApiHandler::run_action(Call& call) {
  const auto action = parse_action(call.required("Action"));
  if (!action) throw Refusal{404, "ApiNotSupport", std::string(kApiNotSupportMessage)};

  const std::string& instance_id = call.required("InstanceId");
  if (!credentials_.instance_exists(instance_id)) {
    throw Refusal{400, "InstanceNotFound", "The specified instance does not exist."};
  }
  const auto& allowed = call.key->instances;
  if (std::find(allowed.begin(), allowed.end(), instance_id) == allowed.end()) {
    throw Refusal{400, "InstancePermissionCheckFailed", std::string(kInstancePermissionMessage)};
  }

  boost::json::object body;
  body["RequestId"] = call.response.request_id;
  if (*action == Action::list) {
    const std::string& group_id = call.required("GroupId");
    if (!is_valid_group_id(group_id)) throw invalid("GroupId");
    int page_no = kDefaultPageNo;
    int page_size = kDefaultPageSize;
    if (const std::string* text = call.optional("PageNo")) {
      const auto parsed = parse_bounded_int(*text, 1, kMaxPageNo);
      if (!parsed) throw invalid("PageNo");
      page_no = *parsed;
    }
    if (const std::string* text = call.optional("PageSize")) {
      const auto parsed = parse_bounded_int(*text, 1, kMaxPageSize);
      if (!parsed) throw invalid("PageSize");
      page_size = *parsed;
    }
    const std::string* next_token = call.optional("NextToken");
    storage::ClientIdPage page;
    try {
      page = credentials_.list_client_ids(instance_id, group_id, page_no, page_size,
                                          next_token ? *next_token : std::string());
    } catch (const storage::InvalidArgument&) {
      throw invalid("NextToken");  // PageNo and PageSize were checked above
    }
    boost::json::array client_ids;
    for (const auto& client_id : page.client_ids) client_ids.emplace_back(client_id);
    boost::json::object list;
    list["ClientIdList"] = std::move(client_ids);
    list["NextToken"] = page.next_token;
    list["PageNo"] = std::to_string(page.page_no);  // with a NextToken, the token's page
    list["PageSize"] = std::to_string(page_size);
    list["Total"] = std::to_string(page.total);
    body["DeviceCredentialClientIdList"] = std::move(list);
    call.response.body = boost::json::serialize(body);
    return;
  }

  const std::string& client_id = call.required("ClientId");
  if (!is_valid_client_id(client_id)) throw invalid("ClientId");
  const Refusal not_found{400, "DeviceCredentialNotFound",
                          std::string(kDeviceCredentialNotFoundMessage)};
  switch (*action) {
    case Action::register_device:
      body["DeviceCredential"] =
          credential_json(credentials_.register_device(instance_id, client_id));
      break;
    case Action::get_device: {
      auto credential = credentials_.get_device(instance_id, client_id);
      if (!credential) throw not_found;
      body["DeviceCredential"] = credential_json(*credential);
      break;
    }
    case Action::refresh_device: {
      auto credential = credentials_.refresh_device(instance_id, client_id);
      if (!credential) throw not_found;
      body["DeviceCredential"] = credential_json(*credential);
      break;
    }
    case Action::unregister_device:
      if (!credentials_.unregister_device(instance_id, client_id)) throw not_found;
      break;
    case Action::list:
      break;  // handled above
  }
  call.response.body = boost::json::serialize(body);
}

}  // namespace credmq::admin
