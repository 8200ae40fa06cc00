// Rewriting the command line in place: see process_title.hpp.
#include "worker/process_title.hpp"

#include <cstring>

namespace preforkd {
namespace {

char* g_area = nullptr;
std::size_t g_size = 0;

}  // namespace

void keep_process_args(int argc, char** argv) {
  g_area = nullptr;
  g_size = 0;
  if (argc <= 0 || argv == nullptr || argv[0] == nullptr) return;
  // The kernel lays the arguments out back to back; only a contiguous run counts.
  char* end = argv[0] + std::strlen(argv[0]) + 1;
  for (int i = 1; i < argc && argv[i] == end; ++i) end = argv[i] + std::strlen(argv[i]) + 1;
  g_area = argv[0];
  g_size = static_cast<std::size_t>(end - argv[0]);
}

void set_process_args(const std::vector<std::string>& args) {
  if (g_area == nullptr || g_size == 0) return;
  std::string title;
  for (const std::string& arg : args) title.append(arg).push_back('\0');
  // The last byte stays NUL: /proc/PID/cmdline then ends where the area ends.
  std::size_t n = title.size() < g_size - 1 ? title.size() : g_size - 1;
  std::memcpy(g_area, title.data(), n);
  std::memset(g_area + n, 0, g_size - n);
}

}  // namespace preforkd
