// PREFORKD_API marks what libpreforkd.so exports. The library is built with
// -fvisibility=hidden, so everything not marked here stays internal: the ABI of
// libpreforkd.so.N is exactly the declarations under include/preforkd/.
#pragma once

#define PREFORKD_API __attribute__((visibility("default")))
