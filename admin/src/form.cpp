#include "form.hpp"

#include <boost/url/encoding_opts.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>

namespace credmq::admin {

bool parse_form_into(std::string_view encoded, Params& out) {
  if (encoded.empty()) return true;
  if (!boost::urls::parse_query(encoded)) return false;  // validate without throwing
  boost::urls::encoding_opts options;
  options.space_as_plus = true;
  for (const boost::urls::param& entry : boost::urls::params_view(encoded, options)) {
    if (entry.key.empty()) continue;
    out.insert_or_assign(entry.key, entry.value);
  }
  return true;
}

}  // namespace credmq::admin
