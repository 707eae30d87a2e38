// TLS server contexts built from PEM files, reloadable while connections use the old one.
// Shared by the MQTT TLS listener and the admin HTTPS listener.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

namespace credmq::tls {

struct ServerFiles {
  std::filesystem::path certificate;        // PEM chain, leaf first
  std::filesystem::path private_key;        // PEM, unencrypted
  std::filesystem::path ca;                 // PEM CA bundle for client certificates; may be empty
  bool require_client_certificate = false;  // needs `ca`
};

// Builds a server context: TLS 1.2 minimum, no compression or renegotiation, the key checked
// against the certificate, with the CA (when set) used to verify client certificates (and
// required when require_client_certificate). Throws std::runtime_error naming the file that
// failed; the message never contains key material.
std::shared_ptr<boost::asio::ssl::context> make_server_context(const ServerFiles& files);

// Holds the current context. A connection takes current() at accept and keeps it for its
// life (an SSL object also references its SSL_CTX), so reload() never disturbs connections
// that exist; new handshakes use the new context. Thread-safe.
class ContextProvider {
 public:
  explicit ContextProvider(ServerFiles files);  // throws as make_server_context
  std::shared_ptr<boost::asio::ssl::context> current() const;
  // Rebuilds the context from the same paths. On failure the old context stays and the
  // reason is returned (empty on success).
  std::string reload();
  const ServerFiles& files() const { return files_; }

 private:
  const ServerFiles files_;
  mutable std::mutex mutex_;
  std::shared_ptr<boost::asio::ssl::context> context_;
};

}  // namespace credmq::tls
