// broker::StatePersistence over the SQLite store: maps the broker's snapshot to the store's
// rows, encoding MQTT 5 properties with the codec's own property-block encoding.
#pragma once

#include "credmq/broker/persistence.hpp"
#include "credmq/storage/store.hpp"

namespace credmq {

class StorePersistence final : public broker::StatePersistence {
 public:
  explicit StorePersistence(storage::Store& store) : store_(store) {}

  std::vector<broker::PersistedInstance> load() override;
  void save(const std::vector<broker::PersistedInstance>& instances) override;

  // The mapping alone, for tests.
  static std::vector<storage::StoredInstanceState> to_rows(
      const std::vector<broker::PersistedInstance>& instances);
  static std::vector<broker::PersistedInstance> from_rows(
      std::vector<storage::StoredInstanceState> rows);

 private:
  storage::Store& store_;
};

}  // namespace credmq
