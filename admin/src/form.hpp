// application/x-www-form-urlencoded parsing (query strings and POST bodies).
#pragma once

#include <string_view>

#include "signature.hpp"

namespace credmq::admin {

// Decodes `name=value&...` ('+' is space, %XX bytes) into `out`. A later duplicate name
// replaces an earlier one ("last wins", across query and body alike); empty names are
// skipped; a name without '=' has an empty value. Returns false (leaving `out` partially
// filled) if the text is not a valid query (bad %-escape, forbidden character).
bool parse_form_into(std::string_view encoded, Params& out);

}  // namespace credmq::admin
