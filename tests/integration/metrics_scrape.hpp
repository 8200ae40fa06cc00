// Reading GET /metrics of the admin endpoint in tests: the samples of one scrape,
// and a bounded wait for a condition on them.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "tests/integration/harness.hpp"

namespace itest {

// Samples of one scrape: the full series text (name and labels, as served) -> value.
struct Metrics {
  std::string text;
  std::map<std::string, double> samples;

  // The value of an unlabelled series, or of the one whose labels contain `labels`.
  double value(const std::string& name, const std::string& labels = "") const {
    for (const auto& [series, v] : samples)
      if (name_of(series) == name && series.find(labels) != std::string::npos) return v;
    return -1;
  }
  double sum(const std::string& name) const {
    double total = 0;
    for (const auto& [series, v] : samples)
      if (name_of(series) == name) total += v;
    return total;
  }
  std::size_t count(const std::string& name, const std::string& labels = "") const {
    std::size_t n = 0;
    for (const auto& [series, v] : samples) n += name_of(series) == name && series.find(labels) != std::string::npos;
    return n;
  }
  static std::string name_of(const std::string& series) { return series.substr(0, series.find('{')); }
};

std::optional<Metrics> scrape(int admin_port);

// Polls /metrics (bounded) until `ok` holds; the last scrape is in *last.
bool wait_metrics(int admin_port, Millis timeout, const std::function<bool(const Metrics&)>& ok, Metrics* last);

}  // namespace itest
