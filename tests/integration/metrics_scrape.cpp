// GET /metrics, parsed into samples (the exposition itself is checked by the
// reference parser in admin_test.cpp).
#include "tests/integration/metrics_scrape.hpp"

#include <cstdlib>
#include <sstream>
#include <thread>

namespace itest {

std::optional<Metrics> scrape(int admin_port) {
  auto r = http_get(admin_port, "/metrics");
  if (!r || r->status != 200) return std::nullopt;
  Metrics m;
  m.text = r->body;
  std::istringstream in(r->body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    m.samples[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
  }
  return m;
}

bool wait_metrics(int admin_port, Millis timeout, const std::function<bool(const Metrics&)>& ok, Metrics* last) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    if (auto m = scrape(admin_port)) {
      *last = *m;
      if (ok(*m)) return true;
    }
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

}  // namespace itest
