#include "form.hpp"

#include <boost/url/encoding_opts.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse_query.hpp>
#include <string>

namespace credmq::admin {

bool parse_form_into(std::string_view encoded, Params& out) {
  if (encoded.empty()) return true;
  // Boost.URL 1.81's parse_query() and params_view re-measure their input with strlen()
  // (boostorg/url#757): on a view that is not NUL-terminated they read past its
  // end, and on a string with a NUL in it they see only what comes before. So they get a
  // NUL-terminated copy, and a NUL (never valid in a query) is refused here.
  if (encoded.find('\0') != std::string_view::npos) return false;
  const std::string text(encoded);
  if (!boost::urls::parse_query(text)) return false;  // validate without throwing
  boost::urls::encoding_opts options;
  options.space_as_plus = true;
  for (const boost::urls::param& entry : boost::urls::params_view(text, options)) {
    if (entry.key.empty()) continue;
    out.insert_or_assign(entry.key, entry.value);
  }
  return true;
}

}  // namespace credmq::admin
