// The broker_* tables (schema v2, created by its migration in sqlite_store.cpp): reading and
// replacing the saved broker state. Each runs inside the caller's transaction.
#pragma once

#include <vector>

#include "credmq/storage/broker_state.hpp"
#include "sqlite_connection.hpp"

namespace credmq::storage {

std::vector<StoredInstanceState> read_broker_state(Connection& connection);
// Deletes what each listed instance had, then inserts its new state.
void replace_broker_state(Connection& connection,
                          const std::vector<StoredInstanceState>& instances);
void delete_all_broker_state(Connection& connection);

}  // namespace credmq::storage
