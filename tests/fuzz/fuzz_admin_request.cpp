// libFuzzer target: the admin API request path, from the raw query string and body to the
// JSON reply, over an in-memory store.
// Input: up to 8 requests separated by NUL bytes (a raw NUL is never valid in a query or form
// body), run in order against one fresh store and handler (so Register, then Get, List...
// can be found). Each request: one flags byte, then the query string, a '\n', then the body.
//   bit 0: POST (else GET)          bit 1: the body is a form (Content-Type form-urlencoded)
//   bit 2: an Authorization header  bit 3: sign the request as a client would: the decoded
//          parameters get the known AccessKeyId, a fresh nonce (bit 6: the previous one), the
//          current Timestamp (unless bit 4) and a valid Signature, so the fuzzer reaches the
//          actions past the signature
//   bit 5: rate limit at 1 call per second (set on the first request)
// Checked: parse_form_into() never throws, and its result survives re-encoding (percent_encode)
// and parsing again; handle() never throws, answers a known status with a JSON object holding
// RequestId (and Code/Message/HostId on errors), and a signed valid request is not refused for
// its signature or a missing common parameter.
// Everything lives for one input only: state kept across inputs would make libFuzzer's leak
// check (malloc/free imbalance) scan the heap after every input.
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "admin_test_support.hpp"
#include "api.hpp"
#include "credmq/auth/credential_service.hpp"
#include "credmq/auth/revocation_hub.hpp"
#include "credmq/common/crypto.hpp"
#include "credmq/common/log.hpp"
#include "credmq/storage/store.hpp"
#include "form.hpp"
#include "fuzz_input.hpp"
#include "signature.hpp"

namespace {

using namespace credmq;
using admin::Params;
using admin::test_support::form_encode;

constexpr char kInstance[] = "mqtt-cn-fuzz0001";
constexpr char kKeyId[] = "LTAIfuzz";
constexpr char kSecret[] = "fuzzsecret";

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz_admin_request: check failed: %s\n", what);
    std::abort();
  }
}

// Just enough of a Store for the admin API: one instance, one admin key, credentials in a map.
class MemoryStore : public storage::Store {
 public:
  void ensure_instance(std::string_view) override {}
  bool instance_exists(std::string_view instance_id) override { return instance_id == kInstance; }
  std::vector<std::string> instances() override { return {kInstance}; }
  storage::AdminKey create_admin_key(const std::vector<std::string>&) override { return key(); }
  void grant_admin_key(std::string_view, const std::vector<std::string>&) override {}
  std::optional<storage::AdminKey> find_admin_key(std::string_view access_key_id) override {
    if (access_key_id != kKeyId) return std::nullopt;
    return key();
  }
  storage::CredentialChange register_credential(std::string_view instance_id,
                                                std::string_view client_id) override {
    if (credentials_.size() > 256) credentials_.clear();
    storage::CredentialChange change;
    auto& slot = credentials_[std::string(client_id)];
    if (slot.serial) change.revoked_serial = slot.serial;
    slot = {
        std::string(instance_id), std::string(client_id), "DC.id", "DC.secret", 1, 1, ++serial_};
    change.current = slot;
    return change;
  }
  std::optional<storage::CredentialChange> refresh_credential(std::string_view,
                                                              std::string_view client_id) override {
    auto it = credentials_.find(client_id);
    if (it == credentials_.end()) return std::nullopt;
    storage::CredentialChange change;
    change.revoked_serial = it->second.serial;
    it->second.serial = ++serial_;
    change.current = it->second;
    return change;
  }
  std::optional<storage::CredentialChange> unregister_credential(
      std::string_view, std::string_view client_id) override {
    auto it = credentials_.find(client_id);
    if (it == credentials_.end()) return std::nullopt;
    storage::CredentialChange change;
    change.revoked_serial = it->second.serial;
    credentials_.erase(it);
    return change;
  }
  std::optional<storage::DeviceCredential> get_credential(std::string_view,
                                                          std::string_view client_id) override {
    auto it = credentials_.find(client_id);
    if (it == credentials_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<storage::DeviceCredential> find_credential_by_key_id(std::string_view) override {
    return std::nullopt;
  }
  std::optional<std::int64_t> credential_serial(std::string_view instance_id,
                                                std::string_view client_id) override {
    auto credential = get_credential(instance_id, client_id);
    return credential ? std::optional(credential->serial) : std::nullopt;
  }
  storage::ClientIdPage list_client_ids(std::string_view, std::string_view group_id, int page_no,
                                        int page_size, std::string_view next_token) override {
    // Same contract as the SQLite store: opaque tokens, InvalidArgument for bad ones.
    if (page_no < 1 || page_size < 1) throw storage::InvalidArgument("page");
    std::string after;
    if (!next_token.empty() && !crypto::base64url_decode(next_token, after)) {
      throw storage::InvalidArgument("next_token");
    }
    storage::ClientIdPage page;
    page.page_no = page_no;
    const std::string prefix = std::string(group_id) + "@@@";
    std::int64_t skip = next_token.empty() ? std::int64_t{page_no - 1} * page_size : 0;
    for (const auto& [client_id, _] : credentials_) {
      if (!client_id.starts_with(prefix)) continue;
      ++page.total;
      if (!next_token.empty() && client_id <= after) continue;
      if (skip > 0) {
        --skip;
        continue;
      }
      if (static_cast<int>(page.client_ids.size()) < page_size) {
        page.client_ids.push_back(client_id);
      } else if (page.next_token.empty()) {
        page.next_token = crypto::base64url_encode(page.client_ids.back());
      }
    }
    return page;
  }
  std::vector<storage::StoredInstanceState> load_broker_state() override { return {}; }
  void save_broker_state(const std::vector<storage::StoredInstanceState>&) override {}
  void clear_broker_state() override {}

 private:
  static storage::AdminKey key() { return {kKeyId, kSecret, {kInstance}}; }
  std::map<std::string, storage::DeviceCredential, std::less<>> credentials_;
  std::int64_t serial_ = 0;
};

struct World {
  MemoryStore store;
  auth::RevocationHub hub{64};
  auth::CredentialService credentials{store, hub};
  std::unique_ptr<admin::ApiHandler> handler;
  std::uint64_t nonce = 0;
};

const std::set<unsigned> kStatuses = {200, 400, 403, 404, 500};

void run_request(World& w, std::string_view record) {
  const std::uint8_t flags = static_cast<std::uint8_t>(record[0]);
  const std::string_view rest = record.substr(1);
  const std::size_t newline = rest.find('\n');
  const std::string_view query = rest.substr(0, newline);
  const std::string_view body =
      newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);

  // Form parsing: whatever parses survives a round trip through our own encoder.
  Params parsed;
  const bool query_ok = admin::parse_form_into(query, parsed);
  if (query_ok) {
    Params again;
    require(admin::parse_form_into(form_encode(parsed), again), "re-encoded form does not parse");
    require(again == parsed, "form round trip changed the parameters");
    for (const auto& [name, value] : parsed) require(!name.empty(), "empty parameter name kept");
  }

  if (!w.handler) {
    admin::ApiConfig config;
    config.calls_per_second_per_account = (flags & 0x20) ? 1 : 0;
    w.handler = std::make_unique<admin::ApiHandler>(config, w.credentials);
  }

  admin::ApiRequest request;
  request.method = flags & 0x01 ? "POST" : "GET";
  request.body_is_form = flags & 0x02;
  request.has_authorization_header = flags & 0x04;
  request.host_id = "fuzz.host";
  request.query = query;
  request.body = body;
  bool signed_request = false;
  if (flags & 0x08) {
    Params params = parsed;  // the query, then the body (last duplicate wins)
    if (query_ok && (!request.body_is_form || admin::parse_form_into(body, params))) {
      params["AccessKeyId"] = kKeyId;
      params["SignatureMethod"] = "HMAC-SHA1";
      params["SignatureVersion"] = "1.0";
      params["Version"] = std::string(admin::kApiVersion);
      if (!(flags & 0x40)) ++w.nonce;
      params["SignatureNonce"] = "fuzz-" + std::to_string(w.nonce);
      if (!(flags & 0x10) || !params.contains("Timestamp")) {
        params["Timestamp"] = admin::test_support::utc_timestamp();
      }
      params.erase("Format");
      params.erase("Signature");
      params["Signature"] = admin::sign(kSecret, admin::string_to_sign(request.method, params));
      request.query = form_encode(params);
      request.body.clear();
      request.body_is_form = false;
      signed_request = !(flags & 0x10);
    }
  }

  const admin::ApiResponse response = w.handler->handle(request);
  require(kStatuses.contains(response.status), "unexpected HTTP status");
  boost::system::error_code ec;
  const boost::json::value reply = boost::json::parse(response.body, ec);
  require(!ec && reply.is_object(), "reply is not a JSON object");
  const boost::json::object& object = reply.as_object();
  require(object.contains("RequestId"), "reply without RequestId");
  if (response.status != 200) {
    require(object.contains("Code") && object.contains("Message") && object.contains("HostId"),
            "error reply without Code/Message/HostId");
    require(!response.code.empty(), "error response without code");
  }
  if (signed_request) {
    require(response.code != "SignatureDoesNotMatch", "a correctly signed request was refused");
    require(response.code.rfind("MissingParameter.", 0) != 0 ||
                response.code == "MissingParameter.Action" ||
                response.code == "MissingParameter.InstanceId" ||
                response.code == "MissingParameter.ClientId" ||
                response.code == "MissingParameter.GroupId",
            "a signed request misses a common parameter");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  log::set_level(log::Level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  World world;
  for (const std::string_view record : fuzz::split_at_nul(input, 8)) {
    if (!record.empty()) run_request(world, record);
  }
  return 0;
}
