#!/usr/bin/env python3
"""cpu_per_request.py SERVERS [WORKERS=1] [SECONDS=5] [ROUNDS=5]

Servers (bench/run's configs, bench/servers.py) side by side under `wrk -t1 -c64 -dSECONDS`
keep-alive on the 100 B file, rounds interleaved; per round req/s and CPU µs per request
(user + system of all the server's processes, /proc). SERVERS is a comma list of
preforkd, nginx, h2o, lighttpd, floor, plus:
  preforkd+log        preforkd with its access log on
  KIND+cpu            preforkd, nginx or the floor with each worker pinned to its own CPU
                      (bench/settings.py, PINNED_KINDS): preforkd's worker_cpu_affinity = "auto"
                      (connections also steered to the worker on their CPU), nginx's
                      worker_cpu_affinity auto, the floor's FLOOR_CPU_STEERING=1
  NAME=/path/preforkd preforkd from another build (an experiment), labelled NAME
WRK_THREADS=N runs wrk with N threads (default 1; bench/run uses 2).
SYSCALLS=1 also counts system calls per request with perf tracepoints (which slow the
server: its CPU figures are then not comparable)."""

import os
import re
import subprocess
import sys
import time

from profile_common import FakeBench, count_syscalls, print_medians, servers, start_servers, stop_servers

SYSCALLS = ["read", "recvfrom", "write", "writev", "sendto", "sendmsg", "sendfile64", "pread64", "openat", "close",
            "newfstatat", "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4"]


def main():
    kinds = sys.argv[1].split(",")
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    bench = FakeBench()
    original_config = servers.preforkd_config
    with_log = set()

    def config(b, s):
        text = original_config(b, s)
        if s in with_log:
            text = text.replace('error_log = "stderr"\n', f'error_log = "stderr"\naccess_log = "{s.dir}/access.log"\n')
        return text
    servers.preforkd_config = config

    def configure(server, name):
        if name.endswith("+log"):
            with_log.add(server)
    started = start_servers(bench, kinds, workers, configure=configure)
    threads = f"-t{os.environ.get('WRK_THREADS', '1')}"
    try:
        for s in started:
            subprocess.run(["wrk", threads, "-c64", "-d1s", f"http://127.0.0.1:{s.port}/small.txt"], capture_output=True)
        results = {s.label_name: [] for s in started}
        for rnd in range(rounds):
            for s in started:
                cpu0 = s.cpu_seconds()
                wrk = subprocess.Popen(["wrk", threads, "-c64", f"-d{seconds}s", f"http://127.0.0.1:{s.port}/small.txt"],
                                       stdout=subprocess.PIPE, text=True)
                counts = {}
                if os.environ.get("SYSCALLS") == "1":
                    time.sleep(0.5)
                    counts = count_syscalls(s, SYSCALLS, seconds - 1)
                out = wrk.communicate()[0]
                cpu = s.cpu_seconds() - cpu0
                requests = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                results[s.label_name].append((cpu * 1e6 / requests, rps))
                line = f"round {rnd + 1} {s.label_name:14s} {rps:9.0f} req/s {cpu * 1e6 / requests:6.2f} µs CPU/request"
                if counts:
                    # perf counted during (seconds - 1) s of the run: per request by wrk's rate.
                    base = rps * (seconds - 1)
                    line += "  syscalls/request: " + " ".join(f"{k}={v / base:.2f}" for k, v in counts.items() if v)
                print(line, flush=True)
        print_medians(results, "request", "req/s")
    finally:
        stop_servers(started)


if __name__ == "__main__":
    main()
