// Syntax rules for admin API parameters (admin-api.md, mqtt-auth.md "Client ids").
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace credmq::admin {

// GroupId: starts with "GID_" or "GID-", 7-64 characters of letters, digits, '-', '_'.
bool is_valid_group_id(std::string_view group_id);

// ClientId: <GroupId>@@@<DeviceId>, at most 64 characters overall. DeviceId is non-empty and
// uses the characters ApsaraMQ documents for client ids: letters, digits, '-', '_' (no '/',
// ':', '%', '@'... which break MQTT clients or the "@@@" split).
bool is_valid_client_id(std::string_view client_id);

// Timestamp "YYYY-MM-DDThh:mm:ssZ" (UTC). Fractional seconds before the 'Z' are tolerated
// and dropped. nullopt if malformed or not a real calendar date/time.
std::optional<std::chrono::system_clock::time_point> parse_timestamp(std::string_view text);

// Strict positive decimal integer within [min, max]; nullopt otherwise.
std::optional<int> parse_bounded_int(std::string_view text, int min, int max);

}  // namespace credmq::admin
