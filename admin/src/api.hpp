// The admin API's request handling, independent of HTTP plumbing: decoded parameters in, a
// status and a JSON body out. Blocking (it calls the store): run it on the worker pool.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "credmq/auth/credential_service.hpp"
#include "guards.hpp"
#include "signature.hpp"

namespace credmq::admin {

inline constexpr std::string_view kApiVersion = "2020-04-20";
inline constexpr std::string_view kJsonContentType = "application/json;charset=utf-8";

struct ApiConfig {
  double calls_per_second_per_account = 500;  // <= 0 disables Throttling.User
  std::chrono::seconds timestamp_window{15 * 60};
  std::size_t max_remembered_nonces = 1'000'000;
};

struct ApiRequest {
  std::string method;  // "GET" or "POST"
  std::string query;   // the raw query string, without '?'
  std::string body;    // the raw body; parsed only if body_is_form
  bool body_is_form = false;
  std::string host_id;  // echoed as HostId in errors
  bool has_authorization_header = false;
};

struct ApiResponse {
  unsigned status = 200;
  std::string body;  // JSON
  std::string request_id;
  // For the access log only: never a signature or a secret.
  std::string action;
  std::string access_key_id;
  std::string client_id;
  std::string code;  // empty on success
};

// Builds an error response {"RequestId","HostId","Code","Message"}; a fresh RequestId unless
// one is given.
ApiResponse make_error_response(unsigned status, std::string_view code, std::string_view message,
                                std::string_view host_id, std::string request_id = {});

class ApiHandler {
 public:
  ApiHandler(const ApiConfig& config, auth::CredentialService& credentials);

  // Never throws: store failures and anything unexpected become 500 InternalError.
  ApiResponse handle(const ApiRequest& request);

 private:
  struct Call;
  void authenticate(Call& call);
  void run_action(Call& call);

  ApiConfig config_;
  auth::CredentialService& credentials_;
  ReplayCache nonces_;
  AccountRateLimiter rate_limiter_;
};

}  // namespace credmq::admin
