#!/usr/bin/env python3
"""preforkd and its peers side by side, in one run. Started by bench/run (which installs
the tools, builds build-bench/ and raises the descriptor limit); standard library only.

Scenarios (each server gets the same worker count; interleaved rounds, ROUNDS of them):
  1 keep-alive throughput, latency and CPU per request: 100 B, 64 KiB and 10 MiB files,
    preforkd, nginx, h2o, lighttpd and the fork+epoll floor (bench/tools/http_floor)
  2 connection churn (Connection: close), 100 B, the same servers
  3 load distribution over 4 workers (reuseport vs one shared socket, churn and keep-alive)
  4 reload storm (SIGHUP every 0.4 s during a Connection: close load), preforkd and nginx
  5 memory: RSS idle and with 10,000 idle keep-alive connections, preforkd and nginx
  6 UDP echo, datagrams/s and CPU per datagram: preforkd and the blocking
    recvfrom/sendto floor (bench/tools/udp_floor)

CPU per request = user + system time of all the server's processes (and threads), from
/proc/PID/stat of the server and its descendants (bench/procfs.py), over the load run,
divided by the requests (datagrams) the client counted. Writes bench/results/RESULTS.md,
raw.json and PNG plots (gnuplot). Every process it starts is tracked and stopped on exit,
also on failure or a signal. The modules next to this file: settings (parameters),
servers (the peers, their configs, the process registry), procfs, figures, report.
"""

import datetime
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

from figures import fmt, median, percentile, share_stats
from procfs import MachineWatch, kernel_socket_slabs, loadavg, proc_memory, sockstat, children_of
from report import write_report, machine_info
from servers import PROCS, Server, http_get_status, make_work_dir, parse_server_name
from settings import (DIST_WORKERS, HTTP_SERVERS, HUGE, IDLE_CONNS, LARGE, PREFORKD_SRC, ROUNDS, SCENARIOS,
                      SECONDS, SMALL, STARTED, STORM_HUPS, STORM_INTERVAL, TOOLS_DIR, UDP_SOCKETS, UDP_WINDOW,
                      WORKER_COUNTS, WRK_CONNS, WRK_THREADS, BenchError, log, RESULTS_DIR)


def on_signal(signum, _frame):
    # Unwinds through every finally: servers and clients are stopped on the way out.
    log(f"{signal.Signals(signum).name} received: stopping everything this run started")
    raise SystemExit(128 + signum)


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


# --------------------------------------------------------------------- bench ---
class Bench:
    def __init__(self):
        self.work, self.www = make_work_dir("preforkd-bench.")
        self.serial = 0
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
        self.configs = {}  # kind (or KIND+cpu) -> the first config (or command line) of that kind, for RESULTS.md

    def note_config(self, server, text):
        key = f"{server.key} ({server.protocol})" if server.kind == "preforkd" else server.key
        if key not in self.configs:
            self.configs[key] = (text.replace(server.dir, "$DIR").replace(self.work, "$WORK")
                                 .replace(str(server.port), "$PORT"))

    def record(self, **run):
        self.raw["runs"].append(run)
        return run

    # ----------------------------------------------------- scenarios 1 and 2 ---
    TESTS = [("keepalive-small", "keep-alive, 100 B", SMALL, False),
             ("keepalive-large", "keep-alive, 64 KiB", LARGE, False),
             ("keepalive-huge", "keep-alive, 10 MiB", HUGE, False),
             ("churn-small", "churn (Connection: close), 100 B", SMALL, True)]

    def measured_wrk(self, server, path, close):
        """One wrk run with the server's CPU time around it."""
        cpu_before = server.cpu_seconds()
        r = run_wrk(server.port, path, SECONDS, close)
        cpu = server.cpu_seconds() - cpu_before
        r["cpu_seconds"] = cpu
        r["cpu_us_per_request"] = cpu * 1e6 / r["requests"] if r.get("requests") else None
        return r

    def scenario_throughput(self):
        tests = [t for t in self.TESTS if (1 in SCENARIOS) or t[0].startswith("churn")]
        tests = [t for t in tests if (2 in SCENARIOS) or not t[0].startswith("churn")]
        for workers in WORKER_COUNTS:
            # All servers run at once (an idle one costs nothing), so every round runs each
            # test on every server back to back; the order of the servers rotates from
            # round to round, so none is always the one right after another.
            servers = []
            try:
                for name in HTTP_SERVERS:
                    kind, pinned = parse_server_name(name)
                    servers.append(Server(self, kind, workers, pinned=pinned,
                                          label=f"{name.replace('+', '-')}-w{workers}").start())
                for s in servers:
                    for _, _, path, close in tests:
                        run_wrk(s.port, path, 1, close)  # warm-up: caches, page cache, connections
                for rnd in range(1, ROUNDS + 1):
                    shift = (rnd - 1) % len(servers)
                    order = servers[shift:] + servers[:shift]
                    for key, label, path, close in tests:
                        for s in order:
                            r = self.measured_wrk(s, path, close)
                            s.check_alive(key)
                            log(f"{key} w{workers} round {rnd} {s.key}: {r['rps']:,.0f} req/s, "
                                f"p50 {fmt(r['p50_ms'], 2)} ms, p99 {fmt(r['p99_ms'], 2)} ms, "
                                f"{fmt(r['cpu_us_per_request'], 1)} us CPU/request, "
                                f"errors {r['socket_errors']}, non-2xx {r['non2xx']}")
                            self.record(scenario=2 if close else 1, test=key, workers=workers, round=rnd,
                                        server=s.key, **r)
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
        # preforkd's pre-spawned spares (prespawn, on by default) are children too:
        # idle processes waiting for the next reload, reported apart from the workers.
        workers, spares = [], []
        for pid in children_of(server.proc.pid):
            w_rss, w_pss = proc_memory(pid)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    spare = f.read().startswith(b"preforkd: spare")
            except OSError:
                spare = False
            (spares if spare else workers).append({"pid": pid, "rss": w_rss, "pss": w_pss})
        if len(workers) != server.workers:
            raise BenchError(f"{server.name}: {len(workers)} worker processes, expected {server.workers}")
        return {"master": {"pid": server.proc.pid, "rss": rss, "pss": pss}, "workers": workers, "spares": spares}

    # ------------------------------------------------------------ scenario 6 ---
    UDP_SERVERS = ("preforkd", "udp-floor")

    def scenario_udp(self):
        tool = os.path.join(TOOLS_DIR, "udp_load")
        for workers in WORKER_COUNTS:
            for rnd in range(1, ROUNDS + 1):
                kinds = self.UDP_SERVERS if rnd % 2 else tuple(reversed(self.UDP_SERVERS))
                for kind in kinds:
                    s = Server(self, kind, workers, protocol="udp-echo", label=f"udp-{kind}-w{workers}")
                    argv = [tool, "127.0.0.1", str(s.port), str(SECONDS), str(UDP_SOCKETS), str(UDP_WINDOW), "64"]
                    try:
                        s.start()
                        cpu_before = s.cpu_seconds()
                        rc, out, err = PROCS.run("udp_load", argv, timeout=SECONDS + 30)
                        cpu = s.cpu_seconds() - cpu_before
                        if rc != 0:
                            raise BenchError(f"udp_load failed ({rc}): {err}")
                        s.check_alive("udp load")
                    finally:
                        s.stop(graceful=True)
                    fields = dict(kv.split("=") for kv in out.split())
                    echoed = int(fields["echoed"])
                    counts = preforkd_worker_counts(s) if kind == "preforkd" else None
                    req = share_stats([c["requests"] for c in counts]) if counts else None
                    self.record(scenario=6, workers=workers, round=rnd, server=kind,
                                rate=float(fields["rate"]), sent=int(fields["sent"]), echoed=echoed,
                                lost=int(fields["lost"]), late=int(fields["late"]),
                                send_errors=int(fields["send_errors"]), cpu_seconds=cpu,
                                cpu_us_per_datagram=cpu * 1e6 / echoed if echoed else None,
                                per_worker=counts, requests=req, command=" ".join(argv))
                    log(f"udp w{workers} round {rnd} {kind}: {float(fields['rate']):,.0f} datagrams/s, "
                        f"{fmt(cpu * 1e6 / echoed if echoed else None, 2)} us CPU/datagram, lost {fields['lost']}"
                        + (", shares " + " ".join(f"{x * 100:.1f}%" for x in req["shares"]) if req else ""))

    # ---------------------------------------------------------------- running ---
    def run(self):
        steps = [(1, self.scenario_throughput), (3, self.scenario_distribution), (4, self.scenario_storm),
                 (5, self.scenario_memory), (6, self.scenario_udp)]
        for number, step in steps:
            if number in SCENARIOS or (number == 1 and 2 in SCENARIOS):
                log(f"--- scenario {number if number != 1 else '1+2'}")
                step()


def own_cpu_seconds():
    """CPU this run used: bench.py itself and every child it has reaped (servers with
    their reaped workers, clients)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    for tool in ("idle_conns", "udp_load", "http_floor", "udp_floor"):
        if not os.access(os.path.join(TOOLS_DIR, tool), os.X_OK):
            raise BenchError(f"missing {TOOLS_DIR}/{tool}: run bench/run (it builds them)")
    if not os.access(PREFORKD_SRC, os.X_OK):
        raise BenchError(f"no preforkd binary at {PREFORKD_SRC}")
    bench = None
    ok = False
    try:
        bench = Bench()
        bench.load_start = loadavg()
        bench.watch = MachineWatch()
        bench.watch.start()
        started_utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        log(f"work dir {bench.work}; results to {RESULTS_DIR}")
        bench.run()
        PROCS.stop_all()  # nothing should be left; reaped, so its CPU is in own_cpu_seconds()
        bench.load_end = loadavg()
        bench.machine_load = bench.watch.report(own_cpu_seconds())
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
