// HTTP dates (RFC 9110 IMF-fixdate) for Date, Last-Modified and If-Modified-Since.
#pragma once

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace preforkd {

// "Sun, 06 Nov 1994 08:49:37 GMT"
std::string format_http_date(std::time_t t);

// Accepts IMF-fixdate, and the obsolete RFC 850 and asctime forms RFC 9110 says
// recipients must accept. nullopt if none matches.
std::optional<std::time_t> parse_http_date(std::string_view text);

}  // namespace preforkd
