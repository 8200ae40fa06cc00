// Content-Type from a file name's extension, as nginx's mime.types does for the common ones.
#pragma once

#include <string_view>

namespace preforkd {

// Case-insensitive on the extension; "application/octet-stream" when unknown.
std::string_view mime_type_for(std::string_view path);

}  // namespace preforkd
