// CounterLedger (totals stay monotonic as workers come and go) and the renderings
// of a MetricsSnapshot.
#include "master/metrics.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace preforkd {
namespace {

ipc::Counters counters(std::uint64_t accepted, std::uint64_t active, std::uint64_t requests) {
  return ipc::Counters{accepted, active, requests};
}

TEST(CounterLedger, TotalsKeepRetiredWorkersSoTheyNeverGoBackwards) {
  CounterLedger ledger;
  ledger.update(10, 1, counters(5, 2, 7));
  ledger.update(11, 1, counters(3, 1, 4));
  EXPECT_EQ(ledger.total(), counters(8, 3, 11));
  ledger.retire(10);
  // accepted and requests stay; active was a gauge of a live process.
  EXPECT_EQ(ledger.total(), counters(8, 1, 11));
  EXPECT_EQ(ledger.counters_of(10), counters(0, 0, 0));
  ledger.update(12, 2, counters(1, 1, 1));
  EXPECT_EQ(ledger.total(), counters(9, 2, 12));
  EXPECT_EQ(ledger.generation_total(1), counters(8, 1, 11));
  EXPECT_EQ(ledger.generation_total(2), counters(1, 1, 1));
  ledger.retire(11);
  ledger.forget_generation(1);
  EXPECT_EQ(ledger.generation_total(1), counters(0, 0, 0));
  EXPECT_EQ(ledger.total(), counters(9, 1, 12)) << "the global sum outlives its generations";
  ledger.retire(999);  // unknown: no effect
  EXPECT_EQ(ledger.total(), counters(9, 1, 12));
}

// Protocol counters are summed by name; a gone worker's counters stay in the
// total, its gauges (a level it no longer has) do not.
TEST(CounterLedger, ProtocolCountersStayAndGaugesGoWithTheirWorker) {
  auto with = [](std::vector<ipc::ProtocolCounter> protocol) {
    ipc::Counters c = counters(1, 1, 1);
    c.protocol = std::move(protocol);
    return c;
  };
  CounterLedger ledger;
  ledger.update(10, 1, with({{"kv_commands", false, 5}, {"kv_keys", true, 3}}));
  ledger.update(11, 1, with({{"kv_commands", false, 7}, {"kv_keys", true, 4}, {"x_y", false, 1}}));
  std::vector<ipc::ProtocolCounter> expected = {{"kv_commands", false, 12}, {"kv_keys", true, 7}, {"x_y", false, 1}};
  EXPECT_EQ(ledger.total().protocol, expected);
  ledger.retire(10);
  expected = {{"kv_commands", false, 12}, {"kv_keys", true, 4}, {"x_y", false, 1}};
  EXPECT_EQ(ledger.total().protocol, expected);
  ledger.retire(11);
  expected = {{"kv_commands", false, 12}, {"x_y", false, 1}};
  EXPECT_EQ(ledger.total().protocol, expected) << "counters never go backwards";
}

TEST(MetricsRendering, ProtocolCountersAreFamiliesOfTheirOwn) {
  MetricsSnapshot s;
  s.version = "0.1.0";
  s.protocol_metrics = {{"kv_commands", false, "Commands answered.", 12}, {"kv_keys", true, "Keys stored.", 4}};
  std::string text = render_prometheus(s);
  EXPECT_NE(text.find("# HELP preforkd_kv_commands_total Commands answered.\n# TYPE preforkd_kv_commands_total counter\n"
                      "preforkd_kv_commands_total 12\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# HELP preforkd_kv_keys Keys stored.\n# TYPE preforkd_kv_keys gauge\npreforkd_kv_keys 4\n"),
            std::string::npos)
      << text;
}

TEST(CounterLedger, AWorkerThatNeverReportedCountsNothing) {
  CounterLedger ledger;
  ledger.retire(5);
  EXPECT_EQ(ledger.total(), counters(0, 0, 0));
}

MetricsSnapshot sample() {
  MetricsSnapshot s;
  s.master_pid = 42;
  s.version = "1.2.3";
  s.phase = "running";
  s.start_time_unix_s = 1700000000.5;
  s.uptime_s = 12.25;
  s.serving_generation = 2;
  s.reloads_ok = 1;
  s.reloads_failed = 3;
  s.worker_crashes = 4;
  s.crash_loops = 1;
  s.last_reload = ReloadResult{true, false, 2, 1700000010.0};
  s.total = counters(100, 2, 300);
  s.workers = {WorkerSnapshot{0, 101, 1, "draining", 5, counters(10, 1, 20), 0},
               WorkerSnapshot{0, 102, 2, "ready", 1, counters(3, 1, 4), 2}};
  s.generations = {GenerationSnapshot{1, "retiring", 1, counters(50, 1, 60)},
                   GenerationSnapshot{2, "serving", 1, counters(3, 1, 4)}};
  return s;
}

TEST(RenderPrometheus, FamiliesHaveHelpAndTypeAndSamplesTheirLabels) {
  std::string text = render_prometheus(sample());
  for (const char* line : {
           "# TYPE preforkd_build_info gauge\npreforkd_build_info{version=\"1.2.3\"} 1\n",
           "preforkd_master_start_time_seconds 1700000000.500\n",
           "# TYPE preforkd_reloads_total counter\n",
           "preforkd_reloads_total{result=\"ok\"} 1\npreforkd_reloads_total{result=\"failed\"} 3\n",
           "preforkd_worker_restarts_total 4\n",
           "preforkd_crash_loops_total 1\n",
           "preforkd_requests_total 300\n",
           "preforkd_accepted_connections_total 100\n",
           "preforkd_active_connections 2\n",
           "preforkd_generation_state{generation=\"1\",state=\"retiring\"} 1\n",
           "preforkd_generation_state{generation=\"2\",state=\"retiring\"} 0\n",
           "preforkd_generation_workers{generation=\"2\"} 1\n",
           "preforkd_worker_requests_total{slot=\"0\",generation=\"1\",pid=\"101\"} 20\n",
           "preforkd_worker_active_connections{slot=\"0\",generation=\"2\",pid=\"102\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n---\n" << text;
  }
  // Every family declared once, with HELP just before TYPE.
  std::size_t helps = 0, types = 0;
  for (std::size_t pos = text.find("# HELP "); pos != std::string::npos; pos = text.find("# HELP ", pos + 1)) ++helps;
  for (std::size_t pos = text.find("# TYPE "); pos != std::string::npos; pos = text.find("# TYPE ", pos + 1)) ++types;
  EXPECT_EQ(helps, types);
  EXPECT_EQ(text.back(), '\n');
}

TEST(RenderPrometheus, LabelValuesAreEscaped) {
  MetricsSnapshot s = sample();
  s.version = "a\"b\\c\nd";
  EXPECT_NE(render_prometheus(s).find("preforkd_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos);
}

TEST(RenderStatusJson, CarriesMasterReloadAndWorkers) {
  auto doc = nlohmann::json::parse(render_status_json(sample()));
  EXPECT_EQ(doc["master_pid"], 42);
  EXPECT_EQ(doc["version"], "1.2.3");
  EXPECT_EQ(doc["serving_generation"], 2);
  EXPECT_EQ(doc["last_reload"]["result"], "failed");
  EXPECT_EQ(doc["last_reload"]["generation"], 2);
  ASSERT_EQ(doc["workers"].size(), 2u);
  EXPECT_EQ(doc["workers"][0]["state"], "draining");
  EXPECT_EQ(doc["workers"][1]["pid"], 102);
  EXPECT_EQ(doc["workers"][1]["restarts"], 2);
  EXPECT_EQ(doc["workers"][0]["requests"], 20);
  MetricsSnapshot none = sample();
  none.last_reload = {};
  EXPECT_TRUE(nlohmann::json::parse(render_status_json(none))["last_reload"].is_null());
}

// An [exec] program has no counters: absent from /status and from the
// per-worker families (not 0), present in preforkd_worker_info with its kind.
TEST(RenderMetrics, ExecWorkersShowWithoutCounters) {
  MetricsSnapshot s = sample();
  WorkerSnapshot program{1, 103, 2, "ready", 3, {}, 0};
  program.exec = true;
  program.status = "serving on fd 3";
  s.workers.push_back(program);
  auto doc = nlohmann::json::parse(render_status_json(s));
  ASSERT_EQ(doc["workers"].size(), 3u);
  const auto& w = doc["workers"][2];
  EXPECT_EQ(w["kind"], "exec");
  EXPECT_EQ(w["status"], "serving on fd 3");
  EXPECT_EQ(w["pid"], 103);
  for (const char* key : {"accepted", "active", "requests"}) EXPECT_FALSE(w.contains(key)) << key;
  EXPECT_EQ(doc["workers"][0]["kind"], "builtin");
  EXPECT_FALSE(doc["workers"][0].contains("status"));
  std::string text = render_prometheus(s);
  EXPECT_NE(text.find("preforkd_worker_info{slot=\"1\",generation=\"2\",pid=\"103\",kind=\"exec\",state=\"ready\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("preforkd_worker_info{slot=\"0\",generation=\"1\",pid=\"101\",kind=\"builtin\",state=\"draining\"} 1\n"),
            std::string::npos);
  EXPECT_EQ(text.find("pid=\"103\"} "), std::string::npos) << "no counter sample for the program";
}

}  // namespace
}  // namespace preforkd
