#include "credmq/auth/credential_service.hpp"

#include "credmq/common/log.hpp"

namespace credmq::auth {

void CredentialService::revoke(const storage::CredentialChange& change) {
  if (!change.revoked_serial) return;
  const std::size_t closed = hub_.revoke(*change.revoked_serial);
  if (closed > 0) log::info("revocation closed ", closed, " live session(s)");
}

storage::DeviceCredential CredentialService::register_device(std::string_view instance_id,
                                                             std::string_view client_id) {
  auto change = store_.register_credential(instance_id, client_id);
  revoke(change);
  return std::move(*change.current);
}

std::optional<storage::DeviceCredential> CredentialService::refresh_device(
    std::string_view instance_id, std::string_view client_id) {
  auto change = store_.refresh_credential(instance_id, client_id);
  if (!change) return std::nullopt;
  revoke(*change);
  return std::move(change->current);
}

bool CredentialService::unregister_device(std::string_view instance_id,
                                          std::string_view client_id) {
  auto change = store_.unregister_credential(instance_id, client_id);
  if (!change) return false;
  revoke(*change);
  return true;
}

}  // namespace credmq::auth
