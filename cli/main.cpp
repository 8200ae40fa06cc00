// preforkd::main(), the command line of every preforkd binary (the preforkd
// executable's own main is cli/preforkd.cpp; an application's is the same one
// call): register the protocols, then run the master, test a config (-t), signal
// a running master (-s), show it (status), or — when the master spawns us with
// --worker — run as a worker.
#include <CLI/CLI.hpp>
#include <preforkd/main.hpp>
#include <preforkd/version.hpp>
#include <sys/prctl.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "cli/status_command.hpp"
#include "cli/wait_command.hpp"
#include "common/config.hpp"
#include "common/exec_launch.hpp"
#include "common/protocol_registry.hpp"
#include "common/version.hpp"
#include "master/control.hpp"
#include "master/master.hpp"
#include "master/upgrade_report.hpp"
#include "worker/builtin_protocols.hpp"
#include "worker/exec_trampoline.hpp"
#include "worker/process_title.hpp"
#include "worker/worker.hpp"
#include "worker/worker_signals.hpp"

namespace {

constexpr int kWorkerIpcFd = 3;  // where WorkerProcess puts the IPC pipe

int load(const std::string& path, preforkd::Config* config, std::string* text) {
  try {
    *text = preforkd::read_config_text(path);
    *config = preforkd::parse_config(*text, path);
    return 0;
  } catch (const preforkd::ConfigError& e) {
    std::fprintf(stderr, "preforkd: %s\n", e.what());
    preforkd::upgrade_report::failed(e.what());  // a master started by USR2: the old master hears why
    return 1;
  }
}

// Master and workers alike: the config is validated against these, and workers
// call their factories.
bool register_protocols(std::initializer_list<std::reference_wrapper<preforkd::Protocol>> protocols) {
  try {
    preforkd::ensure_builtin_protocols();
    for (preforkd::Protocol& p : protocols) preforkd::process_registry().add(p);
    return true;
  } catch (const preforkd::RegistrationError& e) {
    std::fprintf(stderr, "preforkd: cannot register %s\n", e.what());
    return false;
  }
}

}  // namespace

const char* preforkd::version() { return preforkd::kVersion; }

int preforkd::main(int argc, char** argv, std::initializer_list<std::reference_wrapper<Protocol>> protocols) {
  // [exec] mode: the master's way to become the operator's program; the program's
  // arguments follow, so nothing here may parse them (nor register protocols).
  if (argc > 1 && std::strcmp(argv[1], preforkd::kExecTrampolineFlag) == 0)
    return preforkd::run_exec_trampoline(argc, argv);
  // Before anything else: until a worker's handlers exist, a signal relayed by the
  // master (USR1 for a log rotation) must wait rather than kill it.
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--worker") == 0) preforkd::hold_worker_signals();
  if (!register_protocols(protocols)) return 1;
  CLI::App app{"preforkd: a pre-fork multi-process server with zero-downtime reloads"};
  app.set_version_flag("-v,--version", std::string("preforkd ") + preforkd::kVersion);
  std::string config_path = PREFORKD_DEFAULT_CONFIG;
  std::string action;
  bool test_only = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("-t,--test", test_only, "test the configuration and exit (0 if valid)");
  // Not validated here: send_control reports a bad action with its own exit code (2).
  app.add_option("-s,--signal", action, "send a signal to the running master: stop, quit, reload, reopen, upgrade");
  bool wait = false;
  std::string timeout;
  app.add_flag("--wait", wait,
               "with -s reload or -s upgrade: ask over the control socket and wait for the outcome (exit 0 done, "
               "1 failed, 3 timed out, 4 control socket off)");
  app.add_option("--timeout", timeout, "with --wait: how long, a duration (default 15s for reload, 30s for upgrade)");
  CLI::App* status = app.add_subcommand(
      "status", "show the running master and its workers (from the [admin] endpoint if on, else the control socket)");
  status->fallthrough();  // `preforkd status -c FILE` as well as `preforkd -c FILE status`

  // Internal: how the master starts workers. Hidden from --help.
  bool worker = false;
  bool spare = false;
  int slot = -1;
  unsigned generation = 0;
  int master_pid = 0;
  app.add_flag("--worker", worker)->group("");
  app.add_flag("--spare", spare)->group("");
  app.add_option("--slot", slot)->group("");
  app.add_option("--generation", generation)->group("");
  app.add_option("--master-pid", master_pid)->group("");
  std::string title_room;  // a spare's room for its worker title (common/spare_args.hpp)
  app.add_option("--title-room", title_room)->group("");
  int upgrade_from = 0;
  app.add_option("--upgrade-from", upgrade_from)->group("");
  CLI11_PARSE(app, argc, argv);

  if (worker) {
    // Exec'd as /proc/self/exe (see master/worker_process.cpp), which would make the
    // name top, pgrep and /proc/PID/comm show "exe".
    prctl(PR_SET_NAME, "preforkd");
    if (spare) preforkd::keep_process_args(argc, argv);
    return preforkd::run_worker(kWorkerIpcFd, master_pid, spare);
  }

  preforkd::Config config;
  std::string text;
  if (load(config_path, &config, &text) != 0) {
    if (test_only) std::fprintf(stderr, "preforkd: configuration file %s test failed\n", config_path.c_str());
    return 1;
  }
  if (test_only) {
    std::fprintf(stderr, "preforkd: the configuration file %s syntax is ok\n", config_path.c_str());
    std::fprintf(stderr, "preforkd: configuration file %s test is successful\n", config_path.c_str());
    return 0;
  }
  if (!timeout.empty() && !wait) {
    std::fprintf(stderr, "preforkd: --timeout needs --wait\n");
    return 2;
  }
  if (wait && action.empty()) {
    std::fprintf(stderr, "preforkd: --wait needs -s reload or -s upgrade\n");
    return 2;
  }
  if (!action.empty())
    return wait ? preforkd::wait_for_action(action, config, timeout) : preforkd::send_control(action, config.pid_file);
  if (status->parsed()) return preforkd::print_status(config);
  return preforkd::run_master(config, text, upgrade_from);
}
