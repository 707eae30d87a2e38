// Device-credential operations for the admin API: the store write, then revocation of the
// sessions bound to the old issuance. Blocking (disk): call from a worker pool.
#pragma once

#include <optional>
#include <string_view>

#include "credmq/auth/revocation_hub.hpp"
#include "credmq/storage/store.hpp"

namespace credmq::auth {

class CredentialService {
 public:
  CredentialService(storage::Store& store, RevocationHub& hub) : store_(store), hub_(hub) {}

  // Each of these commits first, then closes the sessions of the revoked issuance (if any),
  // and returns only after they are all marked dead: once the caller replies, nothing more
  // from those sessions is routed. Throw storage::StorageError on store failure.
  storage::DeviceCredential register_device(std::string_view instance_id,
                                            std::string_view client_id);
  std::optional<storage::DeviceCredential> refresh_device(std::string_view instance_id,
                                                          std::string_view client_id);
  bool unregister_device(std::string_view instance_id, std::string_view client_id);

  std::optional<storage::DeviceCredential> get_device(std::string_view instance_id,
                                                      std::string_view client_id) {
    return store_.get_credential(instance_id, client_id);
  }
  storage::ClientIdPage list_client_ids(std::string_view instance_id, std::string_view group_id,
                                        int page_no, int page_size, std::string_view next_token) {
    return store_.list_client_ids(instance_id, group_id, page_no, page_size, next_token);
  }
  bool instance_exists(std::string_view instance_id) { return store_.instance_exists(instance_id); }
  std::optional<storage::AdminKey> find_admin_key(std::string_view access_key_id) {
    return store_.find_admin_key(access_key_id);
  }

 private:
  void revoke(const storage::CredentialChange& change);

  storage::Store& store_;
  RevocationHub& hub_;
};

}  // namespace credmq::auth
