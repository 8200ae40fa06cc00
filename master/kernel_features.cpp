// Reads the kernel's reuseport-related settings so operators know which guarantees
// they run with. preforkd does not depend on them: slot sockets are handed across
// generations and never closed on reload, and a retiring slot is steered away from
// with a reuseport BPF program, so zero loss holds with tcp_migrate_req=0. The
// sysctl could not help a removed listener anyway: its whole group closes, and
// the last socket's queue has nowhere to migrate (tests/unit/listen_socket_test).
#include "master/kernel_features.hpp"

#include <sys/utsname.h>

#include <fstream>
#include <string>

#include "common/log.hpp"

namespace preforkd {

void log_kernel_features() {
  utsname u{};
  uname(&u);
  std::ifstream migrate("/proc/sys/net/ipv4/tcp_migrate_req");
  std::string value;
  if (!(migrate >> value)) value = "unavailable (Linux < 5.14)";
  PF_LOG_NOTICE("kernel %s: SO_REUSEPORT per worker slot; net.ipv4.tcp_migrate_req=%s%s", u.release, value.c_str(),
                value == "1" ? " (queues of closing listeners also migrate)"
                             : " (not needed: sockets are handed across generations, retiring slots are steered "
                               "away with reuseport BPF)");
}

}  // namespace preforkd
