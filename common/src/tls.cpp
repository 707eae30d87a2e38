#include "credmq/common/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdexcept>

namespace credmq::tls {

namespace ssl = boost::asio::ssl;

namespace {

// The OpenSSL reason of the last error (file names and parse errors, never key bytes).
std::string openssl_reason(const boost::system::error_code& ec) {
  std::string text = ec.message();
  ERR_clear_error();
  return text;
}

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path,
                       const boost::system::error_code& ec) {
  throw std::runtime_error(what + " " + path.string() + ": " + openssl_reason(ec));
}

}  // namespace

std::shared_ptr<ssl::context> make_server_context(const ServerFiles& files) {
  if (files.certificate.empty()) throw std::runtime_error("no TLS certificate file given");
  if (files.private_key.empty()) throw std::runtime_error("no TLS private key file given");
  if (files.require_client_certificate && files.ca.empty()) {
    throw std::runtime_error("requiring client certificates needs a CA file");
  }
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = context->native_handle();
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
    throw std::runtime_error("cannot set the minimum TLS version");
  }
  context->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Session tickets are encrypted with a per-context key: after a reload old tickets simply
  // fail to resume and a full handshake runs.
  boost::system::error_code ec;
  context->use_certificate_chain_file(files.certificate.string(), ec);
  if (ec) fail("cannot load TLS certificate", files.certificate, ec);
  context->use_private_key_file(files.private_key.string(), ssl::context::pem, ec);
  if (ec) fail("cannot load TLS private key", files.private_key, ec);
  if (SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TLS private key " + files.private_key.string() +
                             " does not match certificate " + files.certificate.string());
  }
  if (!files.ca.empty()) {
    context->load_verify_file(files.ca.string(), ec);
    if (ec) fail("cannot load TLS CA file", files.ca, ec);
    // Offer the CA names to clients, so they pick a matching certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str())) {
      SSL_CTX_set_client_CA_list(native, names);
    }
    ERR_clear_error();
    auto mode = ssl::verify_peer;
    if (files.require_client_certificate) mode |= ssl::verify_fail_if_no_peer_cert;
    context->set_verify_mode(mode);
    // A session id context is required for session resumption when verifying peers.
    static const unsigned char kSessionContext[] = "credmq";
    SSL_CTX_set_session_id_context(native, kSessionContext, sizeof(kSessionContext) - 1);
  } else {
    context->set_verify_mode(ssl::verify_none);
  }
  return context;
}

ContextProvider::ContextProvider(ServerFiles files)
    : files_(std::move(files)), context_(make_server_context(files_)) {}

std::shared_ptr<ssl::context> ContextProvider::current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

std::string ContextProvider::reload() {
  std::shared_ptr<ssl::context> fresh;
  try {
    fresh = make_server_context(files_);
  } catch (const std::exception& e) {
    return e.what();
  }
  std::lock_guard lock(mutex_);
  context_.swap(fresh);
  // The old context is released here or by the last connection that still uses it.
  return {};
}

}  // namespace credmq::tls
