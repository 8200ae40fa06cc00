"""What the profile scripts share: a stand-in for bench.py's Bench (so every server
runs with exactly bench/run's config from bench/servers.py), starting servers from a
command-line list, counting system calls with perf tracepoints, and the summary."""

import atexit
import os
import shutil
import statistics
import subprocess
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

import servers  # noqa: E402  (bench/servers.py)
from procfs import descendants  # noqa: E402
from settings import BUILD  # noqa: E402


class FakeBench:
    """The part of bench.py's Bench that bench/servers.py needs."""

    def __init__(self, preforkd=None):
        self.work, self.www = servers.make_work_dir("preforkd-profile.")
        atexit.register(shutil.rmtree, self.work, True)
        self.serial = 0
        self.preforkd = preforkd or os.path.join(BUILD, "preforkd")
        self.nofile = int(os.popen("sh -c 'ulimit -n'").read().strip())
        self.max_connections_line = "max_connections = 20000\n"
        self.user_line = 'user = "nobody"\n' if os.geteuid() == 0 else ""

    def note_config(self, server, text):
        pass


def start_servers(bench, specs, workers, protocol="http", configure=None):
    """Starts one server per spec: a kind (bench/servers.py), or NAME=/path/preforkd for
    preforkd from another build. Each gets .label_name; configure(server, name) may
    adjust it before it starts. Returns the started servers (stop them when done)."""
    default_binary = bench.preforkd
    started = []
    try:
        for spec in specs:
            name, _, binary = spec.partition("=")
            kind, pinned = servers.parse_server_name(name)
            kind = "preforkd" if binary else kind
            bench.preforkd = binary or default_binary
            s = servers.Server(bench, kind, workers, protocol=protocol, label=name.replace("+", "-"), pinned=pinned)
            s.label_name = name
            if configure:
                configure(s, name)
            started.append(s.start())
    except BaseException:
        stop_servers(started)
        raise
    return started


def stop_servers(started):
    for s in started:
        s.stop(graceful=False)


def count_syscalls(server, names, seconds):
    """{name: count} of the server's system calls over `seconds` (perf tracepoints on
    all its processes)."""
    pids = ",".join(str(p) for p in descendants(server.proc.pid))
    events = ",".join(f"syscalls:sys_enter_{n}" for n in names)
    perf = subprocess.run(["perf", "stat", "-x,", "-e", events, "-p", pids, "--", "sleep", str(seconds)],
                          capture_output=True, text=True).stderr
    counts = {}
    for line in perf.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[0].strip().isdigit():
            counts[f[2].split("sys_enter_")[-1]] = int(f[0])
    return counts


def print_medians(results, unit, rate_unit):
    """results: {name: [(cpu_us_per_unit, rate), ...]} over the rounds."""
    for name, rounds in results.items():
        cpu = [x[0] for x in rounds]
        print(f"{name:14s} CPU µs/{unit} median {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}), "
              f"{rate_unit} median {statistics.median([x[1] for x in rounds]):,.0f}")
