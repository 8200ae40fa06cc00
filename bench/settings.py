"""bench/run's parameters, from the environment, and the fixed facts of the setup.
Defaults are the real benchmark; a smoke test shortens them, e.g. BENCH_SECONDS=2
ROUNDS=1. Every one of them is written into RESULTS.md."""

import os
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
BUILD = os.path.join(REPO, "build-bench")


def env_int(name, default):
    value = os.environ.get(name, "")
    return int(value) if value else default


def env_float(name, default):
    value = os.environ.get(name, "")
    return float(value) if value else default


def env_list(name, default):
    return [x for x in os.environ.get(name, default).split(",") if x]


SECONDS = env_int("BENCH_SECONDS", 5)             # one wrk / udp_load run
ROUNDS = env_int("ROUNDS", 3)                     # interleaved rounds in scenarios 1, 2 and 6
WORKER_COUNTS = [int(w) for w in env_list("BENCH_WORKERS", "2,4")]
SCENARIOS = [int(s) for s in env_list("BENCH_SCENARIOS", "1,2,3,4,5,6")]
# The HTTP servers of scenarios 1 and 2, in this order in tables and plots; "+cpu":
# the same server with each worker pinned to its own CPU (bench/servers.py).
HTTP_SERVERS = env_list("BENCH_SERVERS", "preforkd,preforkd+cpu,nginx,nginx+cpu,h2o,lighttpd,floor,floor+cpu")
WRK_THREADS = env_int("WRK_THREADS", 2)
WRK_CONNS = env_int("WRK_CONNS", 64)
DIST_WORKERS = env_int("DIST_WORKERS", 4)
STORM_HUPS = env_int("STORM_HUPS", 50)
STORM_INTERVAL = env_float("STORM_INTERVAL", 0.4)
IDLE_CONNS = env_int("IDLE_CONNS", 10000)
UDP_SOCKETS = env_int("UDP_SOCKETS", 32)
UDP_WINDOW = env_int("UDP_WINDOW", 4)
RESULTS_DIR = os.environ.get("BENCH_RESULTS_DIR", os.path.join(BENCH_DIR, "results"))
PREFORKD_SRC = os.environ.get("PREFORKD", os.path.join(BUILD, "preforkd"))
TOOLS_DIR = os.path.join(BUILD, "bench")
ENV_KEYS = ["BENCH_SECONDS", "ROUNDS", "BENCH_WORKERS", "BENCH_SCENARIOS", "BENCH_SERVERS", "WRK_THREADS",
            "WRK_CONNS", "DIST_WORKERS", "STORM_HUPS", "STORM_INTERVAL", "IDLE_CONNS", "UDP_SOCKETS", "UDP_WINDOW",
            "BENCH_RESULTS_DIR", "PREFORKD", "KEEP_WORK"]

SMALL = "/small.txt"    # 100-byte static file
LARGE = "/large.bin"    # 64 KiB static file
HUGE = "/huge.bin"      # 10 MiB static file
FILES = {SMALL: 100, LARGE: 64 * 1024, HUGE: 10 * 1024 * 1024}
BACKLOG = 511           # nginx's default listen backlog on Linux, set explicitly everywhere

# "KIND+cpu": worker i pinned to the i-th CPU, in the server's own way. preforkd:
# worker_cpu_affinity = "auto" (and connections steered to the worker on the CPU
# their SYN came in on); nginx: worker_cpu_affinity auto (pinning only); the floor:
# FLOOR_CPU_STEERING=1 (both, like preforkd). h2o 2.2 and lighttpd 1.4 have no such
# setting.
PINNED_KINDS = ("preforkd", "nginx", "floor")
KNOWN_SERVERS = ("preforkd", "nginx", "h2o", "lighttpd", "floor") + tuple(k + "+cpu" for k in PINNED_KINDS)
for _kind in HTTP_SERVERS:
    if _kind not in KNOWN_SERVERS:
        sys.exit(f"bench: BENCH_SERVERS: unknown server {_kind!r} (known: {', '.join(KNOWN_SERVERS)})")

STARTED = time.monotonic()


def log(msg):
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass
