#!/usr/bin/env python3
"""preforkd vs nginx, side by side, in one run. Started by bench/run (which installs
the tools, builds build-bench/ and raises the descriptor limit); standard library only.

Scenarios (each server gets the same worker count; A B A B alternation, ROUNDS rounds):
  1 keep-alive throughput and latency, 100-byte and 64 KiB static files
  2 connection churn (Connection: close)
  3 load distribution over 4 workers (reuseport vs one shared socket, churn and keep-alive)
  4 reload storm (SIGHUP every 0.4 s during a Connection: close load)
  5 memory: RSS idle and with 10,000 idle keep-alive connections
  6 UDP echo (preforkd only: nginx has no UDP echo)

Writes bench/results/RESULTS.md, raw.json and PNG plots (gnuplot). Every process it
starts is tracked and stopped on exit, also on failure or a signal.
"""

import datetime
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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


# The parameters. Defaults are the real benchmark; a smoke test shortens them, e.g.
# BENCH_SECONDS=2 ROUNDS=1. Every one of them is written into RESULTS.md.
SECONDS = env_int("BENCH_SECONDS", 10)            # one wrk / udp_load run
ROUNDS = env_int("ROUNDS", 3)                     # A B rounds in scenarios 1, 2 and 6
WORKER_COUNTS = [int(w) for w in os.environ.get("BENCH_WORKERS", "2,4").split(",")]
SCENARIOS = [int(s) for s in os.environ.get("BENCH_SCENARIOS", "1,2,3,4,5,6").split(",")]
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
ENV_KEYS = ["BENCH_SECONDS", "ROUNDS", "BENCH_WORKERS", "BENCH_SCENARIOS", "WRK_THREADS", "WRK_CONNS",
            "DIST_WORKERS", "STORM_HUPS", "STORM_INTERVAL", "IDLE_CONNS", "UDP_SOCKETS", "UDP_WINDOW",
            "BENCH_RESULTS_DIR", "PREFORKD", "KEEP_WORK"]

SMALL = "/small.txt"    # ~100-byte static file
LARGE = "/large.bin"    # 64 KiB static file
BACKLOG = 511           # nginx's default listen backlog on Linux, set explicitly on both

STARTED = time.monotonic()


def log(msg):
    print(f"[bench {time.monotonic() - STARTED:7.1f}s] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ------------------------------------------------------------------ processes ---
class Processes:
    """Every process the benchmark starts, by pid. Each gets its own process group
    (start_new_session), so a server's workers can be stopped with it even if its
    master is gone; only groups we created are ever signalled."""

    def __init__(self):
        self.live = {}  # pid -> (Popen, name)

    def start(self, name, argv, **kwargs):
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self.live[proc.pid] = (proc, name)
        return proc

    def reaped(self, proc):
        self.live.pop(proc.pid, None)

    def stop(self, proc, sig=signal.SIGTERM, timeout=10.0):
        """sig to the process, then up to `timeout` s for it to exit, then KILL its group."""
        if proc.pid not in self.live:
            return proc.returncode
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.live[proc.pid][1]} (pid {proc.pid}) ignored {signal.Signals(sig).name} for "
                    f"{timeout:.0f} s: killing its process group")
        self.kill_group(proc)
        self.reaped(proc)
        return proc.returncode

    def kill_group(self, proc):
        # The group id is the pid of the process we started; its leftovers (workers of a
        # dead master) are still in it. ESRCH just means the group is already empty.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} survived SIGKILL for 5 s")

    def stop_all(self):
        for proc, name in list(self.live.values()):
            log(f"cleanup: stopping {name} (pid {proc.pid})")
            self.stop(proc, signal.SIGTERM, timeout=3)

    def run(self, name, argv, timeout, **kwargs):
        """Runs a client to completion (bounded by timeout); returns (rc, stdout, stderr)."""
        proc = self.start(name, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc, signal.SIGKILL, timeout=1)
            raise BenchError(f"{name} did not finish within {timeout} s: {' '.join(argv)}")
        self.reaped(proc)
        return proc.returncode, out, err


PROCS = Processes()


def on_signal(signum, _frame):
    # Unwinds through every finally: servers and clients are stopped on the way out.
    log(f"{signal.Signals(signum).name} received: stopping everything this run started")
    raise SystemExit(128 + signum)


# ----------------------------------------------------------------- utilities ---
USED_PORTS = set()


def free_port():
    """A free port below the ephemeral range (32768+), so that client sockets can never
    take it; checked for TCP and UDP, and never handed out twice in one run."""
    import random
    for _ in range(200):
        port = random.randint(20000, 32000)
        if port in USED_PORTS:
            continue
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
        if ok:
            USED_PORTS.add(port)
            return port
    raise BenchError("no free port found in 200 tries")


def http_get_status(port, path, timeout=1.0, close=True):
    """Status code of one GET over a new connection, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            hdr = "Connection: close\r\n" if close else ""
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{hdr}\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            if close:  # read to EOF so the server is done with it
                while s.recv(65536):
                    pass
            return int(m.group(1)) if m else None
    except OSError:
        return None


def udp_echo_ok(port, timeout=0.5):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(b"ping", ("127.0.0.1", port))
            data, _ = s.recvfrom(64)
            return data == b"ping"
        except OSError:
            return False


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return sorted(kids)


def proc_memory(pid):
    """(VmRSS, Pss) in bytes; Pss from smaps_rollup (None where unavailable)."""
    rss = pss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def sockstat():
    """/proc/net/sockstat's TCP line as a dict (mem is in pages)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()[1:]
                return {parts[i]: int(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    return {}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def kernel_socket_slabs():
    """Bytes in the TCP and sock_inode_cache slabs (active objects x object size): the
    kernel's per-socket structures, which neither RSS nor sockstat's `mem` include.
    None where /proc/slabinfo is not readable."""
    total = 0
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in ("TCP", "sock_inode_cache"):
                    total += int(parts[1]) * int(parts[3])
    except OSError:
        return None
    return total


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100)."""
    values = sorted(values)
    if not values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return values[rank - 1]


def fmt(value, digits=0, unit=""):
    if value is None:
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:,.{digits}f}{unit}"


def met(ok):
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**missed**"


# ----------------------------------------------------------------------- wrk ---
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise BenchError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(out):
    result = {"errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}, "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise BenchError(f"no Requests/sec in wrk output:\n{out}")
    result["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    result["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        result["errors"] = dict(zip(["connect", "read", "write", "timeout"], map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        result["non2xx"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)\s*$", out, re.M)
        result[f"p{pct}_ms"] = to_ms(m.group(1)) if m else None
    result["socket_errors"] = sum(result["errors"].values())
    return result


def wrk_argv(port, path, seconds, close):
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNS}", f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    return argv + [f"http://127.0.0.1:{port}{path}"]


def run_wrk(port, path, seconds, close):
    argv = wrk_argv(port, path, seconds, close)
    rc, out, err = PROCS.run("wrk", argv, timeout=seconds + 60)
    if rc != 0:
        raise BenchError(f"wrk failed ({rc}): {err or out}")
    result = parse_wrk(out)
    result["command"] = " ".join(a if " " not in a else f"'{a}'" for a in argv)
    return result


# ------------------------------------------------------------------- servers ---
class Server:
    """One preforkd or nginx master (our child) with its own directory and port."""

    def __init__(self, bench, kind, workers, reuseport=True, access_log=False, protocol="http", label=None):
        self.bench = bench
        self.kind = kind
        self.workers = workers
        self.reuseport = reuseport
        self.access_log = access_log
        self.protocol = protocol
        self.port = free_port()
        bench.serial += 1
        self.dir = os.path.join(bench.work, f"{bench.serial:03d}-{label or kind}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.worker_pids = []

    @property
    def name(self):
        return f"{self.kind} ({self.workers} workers, port {self.port})"

    def write_config(self):
        if self.kind == "preforkd":
            text = self.bench.preforkd_config(self)
            self.config = os.path.join(self.dir, "preforkd.toml")
        else:
            text = self.bench.nginx_config(self)
            self.config = os.path.join(self.dir, "nginx.conf")
        with open(self.config, "w") as f:
            f.write(text)

    def start(self):
        self.write_config()
        log_file = open(self.log_path, "w")
        if self.kind == "preforkd":
            argv = [self.bench.preforkd, "-c", self.config]
        else:
            os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
            # daemon off: the master is our child, so signals and cleanup target a pid we own.
            argv = ["nginx", "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
                    "-c", self.config, "-g", "daemon off;"]
        try:
            self.proc = PROCS.start(self.name, argv, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        finally:
            log_file.close()
        self.wait_ready()
        return self

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} at start-up:\n{self.tail()}")
            ok = udp_echo_ok(self.port) if self.protocol == "udp-echo" else http_get_status(self.port, SMALL) == 200
            if ok and len(children_of(self.proc.pid)) >= self.workers:
                self.worker_pids = children_of(self.proc.pid)
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not serving within {timeout:.0f} s:\n{self.tail()}")

    def check_alive(self, what):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.name} died during {what} (exit {self.proc.returncode}):\n{self.tail()}")

    def tail(self, lines=15):
        text = ""
        for path in (self.log_path, os.path.join(self.dir, "error.log")):
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    text += "".join(f.readlines()[-lines:])
        return text

    def stop(self, graceful=True):
        """QUIT (graceful: workers finish and log their counters) or TERM."""
        if self.proc is None:
            return
        rc = PROCS.stop(self.proc, signal.SIGQUIT if graceful else signal.SIGTERM, timeout=20)
        if graceful and rc not in (0, None):
            log(f"{self.name} exited with {rc} on QUIT")

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def server_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


EXIT_LINE = re.compile(r"(\d+) worker slot=(\d+) gen=(\d+): exiting: accepted=(\d+) requests=(\d+)")
READY_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z .*generation (\d+): all (\d+) workers ready; "
                        r"retiring generation (\d+) \(serving (\d+) ms after the reload began\)", re.M)


def preforkd_worker_counts(server):
    """Per-worker (accepted, requests) from the exit lines of the first generation, by slot."""
    rows = {}
    for m in EXIT_LINE.finditer(server.server_log()):
        pid, slot, gen, accepted, requests = map(int, m.groups())
        if gen == 1:
            rows[slot] = {"pid": pid, "slot": slot, "connections": accepted, "requests": requests}
    if len(rows) != server.workers:
        raise BenchError(f"{server.name}: {len(rows)} worker exit lines, expected {server.workers}:\n{server.tail()}")
    return [rows[s] for s in sorted(rows)]


def nginx_worker_counts(server):
    """Per-worker requests (lines) and connections (distinct $connection) from the access log."""
    per_pid = {pid: [0, set()] for pid in server.worker_pids}
    with open(os.path.join(server.dir, "access.log")) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 2:
                continue
            entry = per_pid.setdefault(int(parts[0]), [0, set()])
            entry[0] += 1
            entry[1].add(parts[1])
    return [{"pid": pid, "slot": i, "connections": len(v[1]), "requests": v[0]}
            for i, (pid, v) in enumerate(sorted(per_pid.items()))]


def share_stats(counts):
    total = sum(counts)
    n = len(counts)
    if total == 0:
        return {"shares": [0.0] * n, "max_min": None, "cv": None, "max_dev": None, "total": 0}
    shares = [c / total for c in counts]
    mean = total / n
    return {
        "shares": shares,
        "total": total,
        "max_min": (max(counts) / min(counts)) if min(counts) > 0 else float("inf"),
        "cv": statistics.pstdev(counts) / mean,
        "max_dev": max(abs(s * n - 1) for s in shares),  # relative to the fair share 1/n
    }


# --------------------------------------------------------------------- bench ---
class Bench:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="preforkd-bench.")
        # nginx workers run as an unprivileged user: they must reach the document root.
        os.chmod(self.work, 0o755)
        self.serial = 0
        self.www = os.path.join(self.work, "www")
        os.makedirs(self.www)
        os.chmod(self.www, 0o755)
        line = b"preforkd bench: a small static file for the keep-alive and churn scenarios.\n"
        with open(os.path.join(self.www, SMALL[1:]), "wb") as f:
            f.write(line.ljust(99, b".") + b"\n")  # exactly 100 bytes
        with open(os.path.join(self.www, LARGE[1:]), "wb") as f:
            f.write(os.urandom(64 * 1024))
        for name in os.listdir(self.www):
            os.chmod(os.path.join(self.www, name), 0o644)
        # Snapshot the binary: the master execs its own path for every worker, and
        # build-bench may be rebuilt while the benchmark runs.
        self.preforkd = os.path.join(self.work, "preforkd")
        shutil.copy2(PREFORKD_SRC, self.preforkd)
        self.nofile = int(subprocess.run(["sh", "-c", "ulimit -n"], capture_output=True, text=True).stdout.strip())
        # Above the 10,000 idle connections of scenario 5 even if one worker got them all.
        self.max_connections_line = "max_connections = 20000\n"
        # Like nginx's www-data workers: a root master runs its workers unprivileged
        # (and refuses to start as root without `user`).
        self.user_line = 'user = "nobody"\n' if os.geteuid() == 0 else ""
        self.raw = {"runs": []}
        self.results = {}

    # ---------------------------------------------------------------- configs ---
    def preforkd_config(self, s):
        listen = [f'name = "bench"', f'address = "127.0.0.1:{s.port}"', f'protocol = "{s.protocol}"']
        if s.protocol == "http":
            listen += [f'root = "{self.www}"', f"backlog = {BACKLOG}"]
        listen.append(f"reuseport = {'true' if s.reuseport else 'false'}")
        return (f"workers = {s.workers}\n"
                f'pid_file = "{s.dir}/preforkd.pid"\n'
                f"graceful_timeout = 10\n"
                f"{self.max_connections_line}"
                f"{self.user_line}"
                f"\n[log]\n"
                f'level = "info"   # the exit lines (per-worker counters) and reload lines\n'
                f'error_log = "stderr"\n'
                f"\n[[listen]]\n" + "\n".join(listen) + "\n")

    def nginx_config(self, s):
        d = s.dir
        if s.access_log:
            access = (f"log_format dist '$pid $connection';\n"
                      f"  access_log {d}/access.log dist buffer=64k;")
        else:
            access = "access_log off;"
        return f"""# nginx as a fair peer of preforkd: same worker count, same files, no pinning.
worker_processes {s.workers};
# worker_cpu_affinity is not set: workers float over all cores, like preforkd's.
worker_rlimit_nofile {self.nofile};
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{
  worker_connections {max(20000, min(self.nofile, 30000))};
}}
http {{
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  {access}
  open_file_cache max=1000 inactive=60s;
  open_file_cache_valid 60s;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  types {{ text/plain txt; application/octet-stream bin; }}
  default_type application/octet-stream;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  server {{
    listen 127.0.0.1:{s.port}{' reuseport' if s.reuseport else ''} backlog={BACKLOG};
    root {self.www};
  }}
}}
"""

    def record(self, **run):
        self.raw["runs"].append(run)
        return run

    # ----------------------------------------------------- scenarios 1 and 2 ---
    TESTS = [("keepalive-small", "keep-alive, 100 B", SMALL, False),
             ("keepalive-large", "keep-alive, 64 KiB", LARGE, False),
             ("churn-small", "churn (Connection: close), 100 B", SMALL, True)]

    def scenario_throughput(self):
        tests = [t for t in self.TESTS if (1 in SCENARIOS) or t[0].startswith("churn")]
        tests = [t for t in tests if (2 in SCENARIOS) or not t[0].startswith("churn")]
        for workers in WORKER_COUNTS:
            # Both servers run at once (an idle one costs nothing), so every round is
            # preforkd then nginx on the same test, back to back.
            servers = []
            try:
                for kind in ("preforkd", "nginx"):
                    servers.append(Server(self, kind, workers, label=f"{kind}-w{workers}").start())
                for s in servers:
                    for _, _, path, close in tests:
                        run_wrk(s.port, path, 1, close)  # warm-up: caches, page cache, connections
                for rnd in range(1, ROUNDS + 1):
                    for key, label, path, close in tests:
                        for s in servers:
                            r = run_wrk(s.port, path, SECONDS, close)
                            s.check_alive(key)
                            log(f"{key} w{workers} round {rnd} {s.kind}: {r['rps']:,.0f} req/s, "
                                f"p50 {fmt(r['p50_ms'], 2)} ms, p99 {fmt(r['p99_ms'], 2)} ms, "
                                f"errors {r['socket_errors']}, non-2xx {r['non2xx']}")
                            self.record(scenario=2 if close else 1, test=key, workers=workers, round=rnd,
                                        server=s.kind, **r)
            finally:
                for s in servers:
                    s.stop(graceful=False)

    # ------------------------------------------------------------ scenario 3 ---
    DIST_CONFIGS = [("preforkd", True, "preforkd reuseport"), ("preforkd", False, "preforkd shared socket"),
                    ("nginx", True, "nginx reuseport"), ("nginx", False, "nginx shared socket")]

    def scenario_distribution(self):
        rows = []
        for kind, reuseport, label in self.DIST_CONFIGS:
            for load, close in (("churn", True), ("keep-alive", False)):
                s = Server(self, kind, DIST_WORKERS, reuseport=reuseport, access_log=(kind == "nginx"),
                           label=f"dist-{kind}-{'rp' if reuseport else 'shared'}-{load}")
                try:
                    s.start()
                    r = run_wrk(s.port, SMALL, SECONDS, close)
                    s.check_alive("distribution")
                finally:
                    s.stop(graceful=True)  # QUIT: preforkd workers log their counters, nginx flushes its log
                counts = preforkd_worker_counts(s) if kind == "preforkd" else nginx_worker_counts(s)
                conn = share_stats([c["connections"] for c in counts])
                req = share_stats([c["requests"] for c in counts])
                row = self.record(scenario=3, config=label, load=load, workers=DIST_WORKERS, per_worker=counts,
                                  connections=conn, requests=req, rps=r["rps"], socket_errors=r["socket_errors"],
                                  command=r["command"])
                rows.append(row)
                log(f"distribution {label} {load}: request shares "
                    + " ".join(f"{x * 100:.1f}%" for x in req["shares"]) + f", cv {fmt(req['cv'], 3)}")
        self.results["distribution"] = rows

    # ------------------------------------------------------------ scenario 4 ---
    def scenario_storm(self):
        rows = []
        storm_seconds = math.ceil(STORM_HUPS * STORM_INTERVAL) + 2
        for kind in ("preforkd", "nginx"):
            s = Server(self, kind, 2, label=f"storm-{kind}")
            try:
                s.start()
                steady = run_wrk(s.port, SMALL, SECONDS, True)
                s.check_alive("steady load")
                sends_us = []
                argv = wrk_argv(s.port, SMALL, storm_seconds, True)
                wrk = PROCS.start("wrk (storm)", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    # HUP i is due at 1 s + i * interval after wrk starts, on an absolute
                    # schedule, so a slow iteration does not shift the ones after it.
                    t0 = time.monotonic() + 1.0
                    for i in range(STORM_HUPS):
                        delay = t0 + i * STORM_INTERVAL - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        s.check_alive("reload storm")
                        sends_us.append(time.time_ns() // 1000)
                        s.hup()
                    out, _ = wrk.communicate(timeout=storm_seconds + 60)
                finally:
                    PROCS.stop(wrk, signal.SIGTERM, timeout=5)
                if wrk.returncode != 0:
                    raise BenchError(f"wrk failed during the storm: {out}")
                storm = parse_wrk(out)
                storm["command"] = " ".join(a if " " not in a else f"'{a}'" for a in argv)
                time.sleep(1.0)  # let the last reload complete before counting
                s.check_alive("reload storm")
                if kind == "preforkd":
                    reloads = self.preforkd_reload_times(s, sends_us)
                else:
                    with open(os.path.join(s.dir, "error.log"), errors="replace") as f:
                        started = f.read().count("start worker processes")
                    reloads = {"completed": max(0, started - 1)}
            finally:
                s.stop(graceful=False)
            reloads["sent"] = len(sends_us)
            row = self.record(scenario=4, server=kind, workers=2, steady=steady, storm=storm, reloads=reloads,
                              hup_sends_us=sends_us, storm_seconds=storm_seconds)
            rows.append(row)
            log(f"storm {kind}: steady {steady['rps']:,.0f} req/s p99 {fmt(steady['p99_ms'], 2)} ms; storm "
                f"{storm['rps']:,.0f} req/s p99 {fmt(storm['p99_ms'], 2)} ms, errors {storm['socket_errors']}, "
                f"reloads {reloads.get('completed')}/{len(sends_us)}")
        self.results["storm"] = rows

    def preforkd_reload_times(self, server, sends_us):
        """SIGHUP -> new generation serving: for each HUP, the first generation whose
        reload began after it was sent; latency = that line's time - the send time.
        Log times have millisecond resolution (truncated), hence 2 ms of slack."""
        gens = []
        for m in READY_LINE.finditer(server.server_log()):
            stamp = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc)
            t_us = int(stamp.timestamp() * 1_000_000)
            gens.append({"generation": int(m.group(2)), "log_us": t_us, "serving_ms": int(m.group(5))})
        latencies, unmatched = [], 0
        for sent in sends_us:
            match = next((g for g in gens if g["log_us"] - g["serving_ms"] * 1000 >= sent - 2000), None)
            if match is None:
                unmatched += 1
            else:
                latencies.append((match["log_us"] - sent) / 1000.0)
        return {
            "completed": len(gens),
            "generations": gens,
            "hup_to_serving_ms": latencies,
            "unmatched_hups": unmatched,
            "median_ms": median(latencies),
            "p90_ms": percentile(latencies, 90),
            "master_serving_median_ms": median([g["serving_ms"] for g in gens]),
        }

    # ------------------------------------------------------------ scenario 5 ---
    def scenario_memory(self):
        rows = []
        tool = os.path.join(TOOLS_DIR, "idle_conns")
        for kind in ("preforkd", "nginx"):
            s = Server(self, kind, 2, label=f"memory-{kind}")
            client = None
            try:
                s.start()
                for _ in range(100):  # warm-up, a new connection each, so both workers serve some
                    if http_get_status(s.port, SMALL) != 200:
                        raise BenchError(f"{s.name}: warm-up request failed")
                time.sleep(0.5)
                idle = self.memory_snapshot(s)
                sock_idle = sockstat()
                slab_idle = kernel_socket_slabs()
                client = PROCS.start("idle_conns", [tool, "127.0.0.1", str(s.port), SMALL, str(IDLE_CONNS)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                ready = self.wait_line(client, "ready", timeout=180)
                time.sleep(1.0)  # let the workers settle after the burst
                s.check_alive("idle connections")
                loaded = self.memory_snapshot(s)
                sock_loaded = sockstat()
                slab_loaded = kernel_socket_slabs()
                client.stdin.close()
                client.wait(timeout=30)
                _, client_err = client.stdout.read(), client.stderr.read()
                closed_note = client_err.strip() if client.returncode == 3 else ""
                if client.returncode not in (0, 3):
                    raise BenchError(f"idle_conns failed ({client.returncode}): {client_err}")
                PROCS.reaped(client)
            finally:
                if client is not None and client.pid in PROCS.live:
                    PROCS.stop(client, signal.SIGTERM, timeout=5)
                s.stop(graceful=False)
            workers_idle = sum(w["rss"] for w in idle["workers"])
            workers_loaded = sum(w["rss"] for w in loaded["workers"])
            row = self.record(
                scenario=5, server=kind, workers=2, idle=idle, loaded=loaded, connections=IDLE_CONNS,
                client_ready=ready.strip(), server_closed=closed_note,
                per_connection_bytes=(workers_loaded - workers_idle) / IDLE_CONNS,
                sockstat_idle=sock_idle, sockstat_loaded=sock_loaded,
                kernel_tcp_bytes_per_connection=(sock_loaded.get("mem", 0) - sock_idle.get("mem", 0))
                * os.sysconf("SC_PAGE_SIZE") / IDLE_CONNS,
                kernel_slab_bytes_per_connection=(slab_loaded - slab_idle) / IDLE_CONNS
                if None not in (slab_idle, slab_loaded) else None)
            rows.append(row)
            log(f"memory {kind}: worker RSS idle {workers_idle / 1024:,.0f} KiB, with {IDLE_CONNS} conns "
                f"{workers_loaded / 1024:,.0f} KiB, {row['per_connection_bytes']:,.0f} B/conn")
        self.results["memory"] = rows

    @staticmethod
    def wait_line(proc, prefix, timeout):
        import select
        deadline = time.monotonic() + timeout
        buf = ""
        while time.monotonic() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 0.5)
            if r:
                line = proc.stdout.readline()
                if not line:
                    raise BenchError(f"idle_conns exited ({proc.wait()}): {proc.stderr.read()}")
                buf += line
                if line.startswith(prefix):
                    return line
            elif proc.poll() is not None:
                raise BenchError(f"idle_conns exited ({proc.returncode}): {proc.stderr.read()}")
        raise BenchError(f"idle_conns not ready within {timeout} s: {buf}")

    @staticmethod
    def memory_snapshot(server):
        rss, pss = proc_memory(server.proc.pid)
        workers = []
        for pid in children_of(server.proc.pid):
            w_rss, w_pss = proc_memory(pid)
            workers.append({"pid": pid, "rss": w_rss, "pss": w_pss})
        if len(workers) != server.workers:
            raise BenchError(f"{server.name}: {len(workers)} worker processes, expected {server.workers}")
        return {"master": {"pid": server.proc.pid, "rss": rss, "pss": pss}, "workers": workers}

    # ------------------------------------------------------------ scenario 6 ---
    def scenario_udp(self):
        tool = os.path.join(TOOLS_DIR, "udp_load")
        for workers in WORKER_COUNTS:
            for rnd in range(1, ROUNDS + 1):
                s = Server(self, "preforkd", workers, protocol="udp-echo", label=f"udp-w{workers}")
                argv = [tool, "127.0.0.1", str(s.port), str(SECONDS), str(UDP_SOCKETS), str(UDP_WINDOW), "64"]
                try:
                    s.start()
                    rc, out, err = PROCS.run("udp_load", argv, timeout=SECONDS + 30)
                    if rc != 0:
                        raise BenchError(f"udp_load failed ({rc}): {err}")
                    s.check_alive("udp load")
                finally:
                    s.stop(graceful=True)
                fields = dict(kv.split("=") for kv in out.split())
                counts = preforkd_worker_counts(s)
                req = share_stats([c["requests"] for c in counts])
                self.record(scenario=6, workers=workers, round=rnd, server="preforkd",
                            rate=float(fields["rate"]), sent=int(fields["sent"]), echoed=int(fields["echoed"]),
                            lost=int(fields["lost"]), late=int(fields["late"]), send_errors=int(fields["send_errors"]),
                            per_worker=counts, requests=req, command=" ".join(argv))
                log(f"udp w{workers} round {rnd}: {float(fields['rate']):,.0f} datagrams/s, lost {fields['lost']}, "
                    "shares " + " ".join(f"{x * 100:.1f}%" for x in req["shares"]))

    # ---------------------------------------------------------------- running ---
    def run(self):
        steps = [(1, self.scenario_throughput), (3, self.scenario_distribution), (4, self.scenario_storm),
                 (5, self.scenario_memory), (6, self.scenario_udp)]
        for number, step in steps:
            if number in SCENARIOS or (number == 1 and 2 in SCENARIOS):
                log(f"--- scenario {number if number != 1 else '1+2'}")
                step()


# ------------------------------------------------------------------- report ---
def machine_info(bench):
    def cmd(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip()
        except (OSError, subprocess.TimeoutExpired):
            return "n/a"

    cpu = "n/a"
    for line in cmd(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    with open("/proc/meminfo") as f:
        mem_kb = int(next(l for l in f if l.startswith("MemTotal:")).split()[1])

    def sysctl(name):
        try:
            with open("/proc/sys/" + name.replace(".", "/")) as f:
                return f.read().strip()
        except OSError:
            return "n/a"

    commit = cmd(["git", "-C", REPO, "rev-parse", "HEAD"])
    dirty = cmd(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "mem_gib": mem_kb / 1024 / 1024,
        "kernel": os.uname().release,
        "nginx": cmd(["nginx", "-v"]),
        "wrk": cmd(["wrk", "--version"]).splitlines()[0].split(" [")[0],
        "gnuplot": cmd(["gnuplot", "--version"]),
        "preforkd_commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "preforkd_version": cmd([bench.preforkd, "--version"]).splitlines()[0],
        "nofile": bench.nofile,
        "somaxconn": sysctl("net.core.somaxconn"),
        "tcp_migrate_req": sysctl("net.ipv4.tcp_migrate_req"),
        "max_connections": bench.max_connections_line.strip() or "not set (this binary does not accept the key)",
    }


def command_line():
    env = " ".join(f"{k}={os.environ[k]}" for k in ENV_KEYS if os.environ.get(k))
    return (env + " " if env else "") + "bench/run" + ("".join(" " + a for a in sys.argv[1:]))


def summarize_throughput(runs):
    """Per (test, workers): medians per server, per-round ratios and their median."""
    out = []
    for key, label, _, _ in Bench.TESTS:
        for workers in WORKER_COUNTS:
            sel = [r for r in runs if r.get("test") == key and r["workers"] == workers]
            if not sel:
                continue
            by = {k: [r for r in sel if r["server"] == k] for k in ("preforkd", "nginx")}
            rounds = sorted({r["round"] for r in sel})
            ratios = []
            for rnd in rounds:
                p = next((r for r in by["preforkd"] if r["round"] == rnd), None)
                n = next((r for r in by["nginx"] if r["round"] == rnd), None)
                if p and n and n["rps"] > 0:
                    ratios.append(p["rps"] / n["rps"])
            row = {"test": key, "label": label, "workers": workers, "ratios": ratios,
                   "ratio_median": median(ratios)}
            for k in ("preforkd", "nginx"):
                row[k] = {
                    "rps": [r["rps"] for r in by[k]],
                    "rps_median": median([r["rps"] for r in by[k]]),
                    "p50_median": median([r["p50_ms"] for r in by[k]]),
                    "p99_median": median([r["p99_ms"] for r in by[k]]),
                    "socket_errors": sum(r["socket_errors"] for r in by[k]),
                    "non2xx": sum(r["non2xx"] for r in by[k]),
                }
            out.append(row)
    return out


def gnuplot(script, path):
    with open(path, "w") as f:
        f.write(script)
    p = subprocess.run(["gnuplot", path], capture_output=True, text=True, cwd=os.path.dirname(path))
    if p.returncode != 0:
        raise BenchError(f"gnuplot {path}: {p.stderr}")


def plot_bars(summary, field, ylabel, title, out_png, plot_dir, digits):
    """Clustered bars, preforkd vs nginx, one cluster per test and worker count."""
    if not summary:
        return None
    dat = os.path.join(plot_dir, os.path.basename(out_png) + ".dat")
    with open(dat, "w") as f:
        for i, row in enumerate(summary):
            f.write(f"{i} {row['preforkd'][field] or 0} {row['nginx'][field] or 0}\n")
    short = {"keepalive-small": "keep-alive\\n100 B", "keepalive-large": "keep-alive\\n64 KiB",
             "churn-small": "churn (Connection: close)\\n100 B"}
    xtics = ", ".join(f'"{short[row["test"]]}\\n{row["workers"]} workers" {i}' for i, row in enumerate(summary))
    script = f"""set terminal pngcairo size 1200,660 font "sans,11"
set output '{out_png}'
set title "{title}"
set ylabel "{ylabel}"
set xlabel "test and worker count (both servers always have the same number of workers)" offset 0,-2
set bmargin 8
set xrange [-0.6:{len(summary) - 0.4}]
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right box opaque
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set xtics ({xtics}) font ",10"
plot '{dat}' using 2 title 'preforkd' lc rgb '#1f77b4', \\
     '' using 3 title 'nginx' lc rgb '#ff7f0e', \\
     '' using ($1-0.15):2:(sprintf("%.{digits}f",$2)) with labels offset 0,0.7 font ",9" notitle, \\
     '' using ($1+0.15):3:(sprintf("%.{digits}f",$3)) with labels offset 0,0.7 font ",9" notitle
"""
    gnuplot(script, os.path.join(plot_dir, os.path.basename(out_png) + ".gp"))
    return out_png


def plot_distribution(rows, out_png, plot_dir):
    if not rows:
        return None
    n = max(len(r["per_worker"]) for r in rows)
    dats = {}
    for metric in ("connections", "requests"):
        dat = os.path.join(plot_dir, f"distribution-{metric}.dat")
        with open(dat, "w") as f:
            for i, r in enumerate(rows):
                shares = r[metric]["shares"] + [0.0] * (n - len(r[metric]["shares"]))
                f.write(f"{i} " + " ".join(f"{s * 100:.3f}" for s in shares) + "\n")
        dats[metric] = dat
    # Three short lines per cluster ("preforkd", "shared socket", "churn") so the labels do not overlap.
    names = [r["config"].replace(" ", "\\n", 1) + "\\n" + r["load"] for r in rows]
    xtics = ", ".join(f'"{name}" {i}' for i, name in enumerate(names))
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]

    def panel(metric, title):
        cols = ", ".join(
            (f"'{dats[metric]}'" if w == 0 else "''") + f" using {w + 2} title 'worker {w}' lc rgb '{colors[w % 8]}'"
            for w in range(n))
        return f"""set title "{title}"
set xtics ({xtics}) font ",9"
plot {cols}
"""

    fair = 100.0 / n
    script = f"""set terminal pngcairo size 1400,1000 font "sans,11"
set output '{out_png}'
set multiplot layout 2,1 title "Load distribution over {n} workers (wrk -t{WRK_THREADS} -c{WRK_CONNS}, {SECONDS} s per bar group); dashed line = fair share {fair:.0f}%"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set bmargin 5
set xrange [-0.6:{len(rows) - 0.4}]
set key outside right top
set grid ytics
set ylabel "share (%)"
set yrange [0:*]
set arrow 1 from graph 0, first {fair} to graph 1, first {fair} nohead dt 2 lw 2 lc rgb 'black' front
{panel("connections", "share of accepted connections per worker")}
{panel("requests", "share of requests per worker")}
unset multiplot
"""
    gnuplot(script, os.path.join(plot_dir, "distribution.gp"))
    return out_png


def write_report(bench, info, started_utc, elapsed):
    runs = bench.raw["runs"]
    summary = summarize_throughput(runs)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    plot_dir = os.path.join(bench.work, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    plots = []
    plots.append(plot_bars(summary, "rps_median", "requests/s (median of rounds)",
                           f"Throughput, preforkd vs nginx (wrk -t{WRK_THREADS} -c{WRK_CONNS} -d{SECONDS}s; "
                           f"median of {ROUNDS} rounds; higher is better)",
                           os.path.join(RESULTS_DIR, "throughput.png"), plot_dir, 0))
    plots.append(plot_bars(summary, "p99_median", "p99 latency (ms, median of rounds)",
                           f"p99 latency, preforkd vs nginx (wrk --latency; median of {ROUNDS} rounds; lower is better)",
                           os.path.join(RESULTS_DIR, "latency.png"), plot_dir, 2))
    plots.append(plot_distribution(bench.results.get("distribution", []),
                                   os.path.join(RESULTS_DIR, "distribution.png"), plot_dir))

    targets = []  # (target, figure, ok)
    L = []
    L.append("# preforkd vs nginx: benchmark results\n")
    L.append("Produced by `bench/run` (bench/bench.py). Each figure below is followed by its target and whether "
             "it was met; the raw per-run data is in `raw.json`.\n")
    L.append("## Setup\n")
    L.append(f"- command: `{command_line()}` (from the repository root)")
    L.append(f"- parameters: BENCH_SECONDS={SECONDS} ROUNDS={ROUNDS} BENCH_WORKERS={','.join(map(str, WORKER_COUNTS))} "
             f"BENCH_SCENARIOS={','.join(map(str, SCENARIOS))} WRK_THREADS={WRK_THREADS} WRK_CONNS={WRK_CONNS} "
             f"DIST_WORKERS={DIST_WORKERS} STORM_HUPS={STORM_HUPS} STORM_INTERVAL={STORM_INTERVAL} "
             f"IDLE_CONNS={IDLE_CONNS} UDP_SOCKETS={UDP_SOCKETS} UDP_WINDOW={UDP_WINDOW}")
    L.append(f"- date: {started_utc}; run time {elapsed / 60:.1f} min")
    L.append(f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['mem_gib']:.1f} GiB RAM, kernel {info['kernel']}; "
             f"load average at start {bench.load_start}, at end {loadavg()}")
    L.append(f"- {info['nginx']} (Debian); {info['wrk']}; {info['gnuplot']}")
    L.append(f"- preforkd: {info['preforkd_version']}, commit {info['preforkd_commit']}, built in build-bench "
             "(RelWithDebInfo, -DBUILD_TESTING=OFF)")
    L.append(f"- open-file limit (ulimit -n) {info['nofile']}; net.core.somaxconn {info['somaxconn']}; "
             f"net.ipv4.tcp_migrate_req {info['tcp_migrate_req']}; preforkd max_connections: {info['max_connections']}")
    L.append("- **wrk (and the other load clients) share the machine's cores with the servers**: with "
             f"{info['nproc']} cores, req/s measures the whole box (client + server) and p99 includes scheduling delay. "
             "Compare the two servers with each other, not with other machines.")
    L.append("- Pinning: **neither server is CPU-pinned** (both are \"pinned the same way\": not at all); nginx has "
             "no `worker_cpu_affinity`, and all workers of both float over the same cores together with wrk.")
    L.append(f"- Both servers: the same worker count, the same files (100 B `{SMALL}`, 64 KiB `{LARGE}`) from the "
             f"same directory, listen backlog {BACKLOG}, loopback (127.0.0.1) only. nginx as a fair peer: "
             "`sendfile on; tcp_nopush on; tcp_nodelay on; access_log off; open_file_cache max=1000 inactive=60s; "
             "open_file_cache_valid 60s; keepalive_requests 1000000; keepalive_timeout 75s; listen ... reuseport`, "
             "worker_connections ≥ 20000, worker_rlimit_nofile = the open-file limit.")
    L.append("- Alternation: both servers run side by side (an idle one costs nothing); in every round each test "
             "runs on preforkd, then at once on nginx (A B A B). Ratios are per round (preforkd / nginx); "
             "the tables give medians over rounds. A 1 s warm-up per server and test precedes the rounds.")
    L.append("")

    # Scenarios 1 and 2.
    if summary:
        L.append("## 1 + 2. Throughput and latency (keep-alive, and churn with `Connection: close`)\n")
        L.append(f"`wrk -t{WRK_THREADS} -c{WRK_CONNS} -d{SECONDS}s --latency [-H 'Connection: close'] URL`. "
                 "Targets: throughput ≥ 1.2× nginx (median of the per-round ratios), p99 ≤ nginx's.\n")
        L.append("| test | workers | preforkd req/s | nginx req/s | ratio per round | ratio (median) | ≥ 1.2× | "
                 "p50 preforkd / nginx (ms) | p99 preforkd / nginx (ms) | p99 ≤ nginx | socket errors P / N | "
                 "non-2xx P / N |")
        L.append("|---|---:|---:|---:|---|---:|---|---|---|---|---|---|")
        for row in summary:
            p, n = row["preforkd"], row["nginx"]
            ratio_ok = row["ratio_median"] >= 1.2 if row["ratio_median"] is not None else None
            p99_ok = (p["p99_median"] <= n["p99_median"]) if None not in (p["p99_median"], n["p99_median"]) else None
            targets.append((f"throughput ≥ 1.2× nginx: {row['label']}, {row['workers']} workers",
                            f"{fmt(row['ratio_median'], 2)}×", ratio_ok))
            targets.append((f"p99 ≤ nginx: {row['label']}, {row['workers']} workers",
                            f"{fmt(p['p99_median'], 2)} vs {fmt(n['p99_median'], 2)} ms", p99_ok))
            L.append(f"| {row['label']} | {row['workers']} | {fmt(p['rps_median'])} | {fmt(n['rps_median'])} | "
                     f"{', '.join(f'{x:.2f}' for x in row['ratios'])} | {fmt(row['ratio_median'], 2)}× | "
                     f"{met(ratio_ok)} | {fmt(p['p50_median'], 2)} / {fmt(n['p50_median'], 2)} | "
                     f"{fmt(p['p99_median'], 2)} / {fmt(n['p99_median'], 2)} | {met(p99_ok)} | "
                     f"{p['socket_errors']} / {n['socket_errors']} | {p['non2xx']} / {n['non2xx']} |")
        L.append("\nPer-round req/s (preforkd | nginx):\n")
        for row in summary:
            L.append(f"- {row['label']}, {row['workers']} workers: "
                     f"{', '.join(fmt(x) for x in row['preforkd']['rps'])} | "
                     f"{', '.join(fmt(x) for x in row['nginx']['rps'])}")
        L.append("\n![throughput](throughput.png)\n\n![p99 latency](latency.png)\n")

    # Scenario 3.
    dist = bench.results.get("distribution", [])
    if dist:
        n = DIST_WORKERS
        L.append(f"## 3. Load distribution over {n} workers\n")
        L.append(f"wrk -t{WRK_THREADS} -c{WRK_CONNS} -d{SECONDS}s on the 100 B file, churn (`Connection: close`) and "
                 "keep-alive, one fresh server per row. preforkd: counters from each worker's exit line after QUIT "
                 "(`accepted=`, `requests=`); nginx: an access log enabled only here (`log_format dist '$pid "
                 "$connection'`; requests = lines per pid, connections = distinct `$connection` per pid). "
                 "The readiness probe (1 request) is included in the counts. Fair share = "
                 f"{100 / n:.0f}%; target: under churn with reuseport, every worker's share within ±10% of fair "
                 f"(i.e. {100 / n * 0.9:.1f}–{100 / n * 1.1:.1f}%). With keep-alive only {WRK_CONNS} connections exist, "
                 "so the connection shares are a hash of 64 connections.\n")
        L.append("| config | load | req/s | connection shares | max/min | CV | request shares | max/min | CV | "
                 "±10% of fair |")
        L.append("|---|---|---:|---|---:|---:|---|---:|---:|---|")
        for r in dist:
            c, q = r["connections"], r["requests"]
            ok = None
            if r["load"] == "churn" and "reuseport" in r["config"]:
                ok = c["max_dev"] is not None and c["max_dev"] <= 0.10 and q["max_dev"] <= 0.10
                if r["config"].startswith("preforkd"):
                    targets.append((f"per-worker share within ±10% of fair, churn, {r['config']}",
                                    f"max deviation {fmt(max(c['max_dev'], q['max_dev']) * 100, 1)}%", ok))
            L.append(f"| {r['config']} | {r['load']} | {fmt(r['rps'])} | "
                     f"{' '.join(f'{s * 100:.1f}%' for s in c['shares'])} | {fmt(c['max_min'], 2)} | "
                     f"{fmt(c['cv'], 3)} | {' '.join(f'{s * 100:.1f}%' for s in q['shares'])} | "
                     f"{fmt(q['max_min'], 2)} | {fmt(q['cv'], 3)} | {met(ok) if ok is not None else '—'} |")
        L.append("\n![distribution](distribution.png)\n")

    # Scenario 4.
    storm = bench.results.get("storm", [])
    if storm:
        L.append("## 4. Reload storm\n")
        st = storm[0]["storm_seconds"]
        L.append(f"2 workers each, reuseport, `Connection: close` load (wrk -t{WRK_THREADS} -c{WRK_CONNS}). Steady: "
                 f"{SECONDS} s without reloads; storm: a {st} s wrk run during which the master gets {STORM_HUPS} "
                 f"SIGHUPs {STORM_INTERVAL} s apart (absolute schedule, the first 1 s after wrk starts), config "
                 "unchanged. Targets: storm p99 ≤ 2× steady p99; preforkd SIGHUP → new generation serving, "
                 "median < 50 ms.\n")
        L.append("| server | steady req/s | storm req/s | socket errors steady / storm (c/r/w/t) | non-2xx steady / "
                 "storm | p50 steady / storm (ms) | p99 steady / storm (ms) | p99 storm / steady | ≤ 2× | reloads "
                 "completed / HUPs sent |")
        L.append("|---|---:|---:|---|---|---|---|---:|---|---|")
        for r in storm:
            a, b = r["steady"], r["storm"]
            ratio = b["p99_ms"] / a["p99_ms"] if a.get("p99_ms") and b.get("p99_ms") else None
            ok = ratio <= 2.0 if ratio is not None else None
            if r["server"] == "preforkd":
                targets.append(("storm p99 ≤ 2× steady p99 (preforkd)", f"{fmt(ratio, 2)}×", ok))

            def errs(x):
                e = x["errors"]
                return f"{e['connect']}/{e['read']}/{e['write']}/{e['timeout']}"
            L.append(f"| {r['server']} | {fmt(a['rps'])} | {fmt(b['rps'])} | steady {errs(a)}; storm {errs(b)} | "
                     f"{a['non2xx']} / {b['non2xx']} | {fmt(a['p50_ms'], 2)} / {fmt(b['p50_ms'], 2)} | "
                     f"{fmt(a['p99_ms'], 2)} / {fmt(b['p99_ms'], 2)} | {fmt(ratio, 2)}× | {met(ok)} | "
                     f"{r['reloads'].get('completed')} / {r['reloads']['sent']} |")
        pf = next((r for r in storm if r["server"] == "preforkd"), None)
        if pf:
            rl = pf["reloads"]
            ok = rl["median_ms"] < 50 if rl["median_ms"] is not None else None
            targets.append(("SIGHUP → new generation serving, median < 50 ms", f"{fmt(rl['median_ms'], 1)} ms", ok))
            L.append(f"\npreforkd SIGHUP → new generation serving over {rl['sent']} SIGHUPs "
                     "(bench's send time in epoch µs vs the master's \"generation N: all K workers ready\" log "
                     "line, millisecond resolution; each HUP is matched with the first generation whose reload "
                     f"began after it): median **{fmt(rl['median_ms'], 1)} ms**, p90 {fmt(rl['p90_ms'], 1)} ms "
                     f"({met(ok)}); HUPs with no matching generation: {rl['unmatched_hups']}; "
                     f"generations completed: {rl['completed']}. The master's own \"serving X ms after the reload "
                     f"began\" figure: median {fmt(rl['master_serving_median_ms'], 0)} ms.\n")
        L.append("nginx's completed reloads are counted from its \"start worker processes\" notices.\n")

    # Scenario 5.
    mem = bench.results.get("memory", [])
    if mem:
        L.append("## 5. Memory\n")
        L.append(f"2 workers each. RSS = VmRSS from /proc/PID/status (PSS from smaps_rollup in brackets: RSS "
                 "counts shared pages, e.g. a forked nginx worker's pages shared with its master, in full). Idle = "
                 f"after 100 warm-up requests; loaded = with {IDLE_CONNS:,} idle keep-alive connections from "
                 "`bench/tools/idle_conns`, each having completed one GET of the 100 B file. Per connection = "
                 f"(sum of worker RSS loaded − idle) / {IDLE_CONNS:,}. **RSS does not include kernel socket "
                 "buffers**; the kernel's TCP memory from /proc/net/sockstat (`mem`, pages, both ends of each "
                 "loopback connection; idle sockets hold almost no buffer pages) and the growth of the TCP and "
                 "sock_inode_cache slabs from /proc/slabinfo (the socket structures themselves, both ends, so about "
                 "half of it is the server's) are given for context. Targets: preforkd worker idle RSS ≤ nginx worker RSS; "
                 "≤ 2 KiB per idle keep-alive connection.\n")
        L.append("| server | master RSS idle (KiB) | worker RSS idle (KiB) | worker RSS loaded (KiB) | per connection "
                 "(bytes) | ≤ 2 KiB | kernel: sockstat TCP mem per connection (bytes) | kernel: TCP + sock_inode_cache slab "
                 "per connection (bytes) |")
        L.append("|---|---:|---|---|---:|---|---:|---:|")

        def kib(x):
            return f"{x / 1024:,.0f}" if x is not None else "—"
        for r in mem:
            ok = r["per_connection_bytes"] <= 2048
            targets.append((f"≤ 2 KiB per idle keep-alive connection ({r['server']})",
                            f"{fmt(r['per_connection_bytes'])} B", ok if r["server"] == "preforkd" else None))
            workers_idle = ", ".join(f"{kib(w['rss'])} ({kib(w['pss'])})" for w in r["idle"]["workers"])
            workers_loaded = ", ".join(f"{kib(w['rss'])} ({kib(w['pss'])})" for w in r["loaded"]["workers"])
            L.append(f"| {r['server']} | {kib(r['idle']['master']['rss'])} ({kib(r['idle']['master']['pss'])}) | "
                     f"{workers_idle} | {workers_loaded} | {fmt(r['per_connection_bytes'])} | "
                     f"{met(ok) if r['server'] == 'preforkd' else '(reference)'} | "
                     f"{fmt(r['kernel_tcp_bytes_per_connection'])} | {fmt(r['kernel_slab_bytes_per_connection'])} |")
        p = next((r for r in mem if r["server"] == "preforkd"), None)
        n = next((r for r in mem if r["server"] == "nginx"), None)
        if p and n:
            p_idle = statistics.mean(w["rss"] for w in p["idle"]["workers"])
            n_idle = statistics.mean(w["rss"] for w in n["idle"]["workers"])
            targets.append(("worker idle RSS ≤ nginx worker RSS", f"{kib(p_idle)} vs {kib(n_idle)} KiB",
                            p_idle <= n_idle))
        for r in mem:
            if r["server_closed"]:
                L.append(f"\nNote ({r['server']}): {r['server_closed']} — the per-connection figure is taken "
                         "before that.")
        L.append("")
        for r in mem:
            L.append(f"- {r['server']}: idle_conns: `{r['client_ready']}`")
        L.append("")

    # Scenario 6.
    udp = [r for r in runs if r.get("scenario") == 6]
    if udp:
        L.append("## 6. UDP echo (preforkd only)\n")
        L.append(f"`bench/tools/udp_load 127.0.0.1 PORT {SECONDS} {UDP_SOCKETS} {UDP_WINDOW} 64`: {UDP_SOCKETS} "
                 f"client sockets (distinct source ports, so the reuseport hash spreads them), each keeping "
                 f"{UDP_WINDOW} 64-byte datagrams in flight for {SECONDS} s. Shares = datagrams echoed per worker "
                 "(exit lines). **nginx has no UDP echo** (its stream module can only proxy UDP to an upstream), so "
                 "there is no nginx column.\n")
        L.append("| workers | round | datagrams/s echoed | sent | lost | echoed late | per-worker share | CV |")
        L.append("|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in udp:
            L.append(f"| {r['workers']} | {r['round']} | {fmt(r['rate'])} | {fmt(r['sent'])} | {fmt(r['lost'])} | "
                     f"{fmt(r['late'])} | {' '.join(f'{s * 100:.1f}%' for s in r['requests']['shares'])} | "
                     f"{fmt(r['requests']['cv'], 3)} |")
        for w in WORKER_COUNTS:
            rates = [r["rate"] for r in udp if r["workers"] == w]
            if rates:
                L.append(f"\nMedian with {w} workers: {fmt(median(rates))} datagrams/s.")
        L.append("")

    summary_lines = ["## Targets\n", "| target | measured | result |", "|---|---|---|"]
    for target, figure, ok in targets:
        summary_lines.append(f"| {target} | {figure} | {met(ok) if ok is not None else '(reference only)'} |")
    summary_lines.append("")
    # The targets table goes right after the setup.
    at = L.index("") + 1 if "" in L else len(L)
    L[at:at] = summary_lines
    with open(os.path.join(RESULTS_DIR, "RESULTS.md"), "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(RESULTS_DIR, "raw.json"), "w") as f:
        json.dump({"command": command_line(), "date": started_utc, "machine": info, "runs": runs,
                   "throughput_summary": summary}, f, indent=1, default=str)
    return [p for p in plots if p]


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    for tool in ("idle_conns", "udp_load"):
        if not os.access(os.path.join(TOOLS_DIR, tool), os.X_OK):
            raise BenchError(f"missing {TOOLS_DIR}/{tool}: run bench/run (it builds them)")
    if not os.access(PREFORKD_SRC, os.X_OK):
        raise BenchError(f"no preforkd binary at {PREFORKD_SRC}")
    bench = None
    ok = False
    try:
        bench = Bench()
        bench.load_start = loadavg()
        started_utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        log(f"work dir {bench.work}; results to {RESULTS_DIR}")
        bench.run()
        info = machine_info(bench)
        plots = write_report(bench, info, started_utc, time.monotonic() - STARTED)
        log(f"wrote {RESULTS_DIR}/RESULTS.md, raw.json, " + ", ".join(os.path.basename(p) for p in plots))
        log(f"total run time {time.monotonic() - STARTED:.0f} s")
        ok = True
    finally:
        PROCS.stop_all()
        if bench is not None:
            if ok and not os.environ.get("KEEP_WORK"):
                shutil.rmtree(bench.work, ignore_errors=True)
            else:
                log(f"kept the work dir (configs, server logs) for inspection: {bench.work}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
