#!/usr/bin/env python3
"""Reloading the same gunicorn app four ways, side by side in one run (issue 11's
benchmark). Started by bench/exec_reload, which installs the tools and builds preforkd;
standard library only; reuses bench.py's wrk parsing, servers.py's process registry and
free ports, procfs.py's process tree and machine watch, report.py's load section.

Setups (2 serving processes each, gunicorn's sync worker, bench/exec_reload_app.py):
  preforkd            preforkd [exec] with 2 slots, each running `gunicorn --workers 1`
                      on its slot's SO_REUSEPORT socket (LISTEN_FDS); reload = HUP to preforkd
  gunicorn            `gunicorn --workers 2`, reload = HUP to gunicorn's master
  gunicorn-reuseport  the same with `--reuse-port`
  start_server        Server::Starter's `start_server --signal-on-hup=TERM` running
                      `gunicorn --workers 2 --bind fd://N` (N from SERVER_STARTER_PORT);
                      reload = HUP to start_server

In each of ROUNDS rounds every setup runs once (the order rotating from round to round,
so the shared machine's other load falls on all alike), on a fresh server: a steady
window (wrk, no reloads), then the storm: wrk runs while the master gets its share of
the RELOADS HUPs, one at a time. Before each HUP the app's
version file gets the next number; after it a poller (this process: one request per new
connection, back to back) times the first answer carrying the new version (signal -> new
code serving) while the process tree is watched until every pre-signal process has exited
and the tree has its steady size again (signal -> old code gone). The next HUP follows
SPACING s after both; every wait is bounded (RELOAD_TIMEOUT). wrk is stopped with SIGINT
(it prints its summary) SPACING s after the last reload. Failed requests: wrk's socket
errors (connect, read, write, timeout), non-2xx answers, 200 answers with a wrong body
(bench/exec_reload.lua checks every one), and the poller's failed requests.

Every process it starts is in a process group of its own and tracked by pid; after each
setup the processes seen in its tree are checked gone (and killed by pid if not).
"""

import datetime
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from bench import on_signal, own_cpu_seconds, parse_wrk
from figures import fmt, fmt_range, median
from procfs import MachineWatch, _stat_fields, descendants, loadavg, process_table, tree_cpu_seconds
from report import machine_load_lines
from servers import PROCS, free_port
from settings import BENCH_DIR, REPO, BenchError, env_float, env_int, log

SMOKE = "--smoke" in sys.argv[1:]
RELOADS = env_int("EXEC_RELOADS", 3 if SMOKE else 30)            # per setup, over all rounds
ROUNDS = env_int("EXEC_ROUNDS", 1 if SMOKE else 3)
STEADY_SECONDS = env_int("EXEC_STEADY_SECONDS", 3 if SMOKE else 5)   # per round
SPACING = env_float("EXEC_SPACING", 0.5)             # s after a reload completed, before the next HUP
RELOAD_TIMEOUT = env_float("EXEC_RELOAD_TIMEOUT", 30)  # bound on one reload (new code and old gone)
WRK_THREADS = env_int("EXEC_WRK_THREADS", 2)
WRK_CONNS = env_int("EXEC_WRK_CONNS", 16)
WRK_TIMEOUT = "2s"                                   # wrk's default, written out so it is in the command
SETUPS = [s for s in os.environ.get("EXEC_SETUPS", "preforkd,gunicorn,gunicorn-reuseport,start_server").split(",")
          if s]
PREFORKD_SRC = os.environ.get("PREFORKD", os.path.join(REPO, "build-bench", "preforkd"))
RESULTS_DIR = os.environ.get("EXEC_RESULTS_DIR", "" if SMOKE else os.path.join(BENCH_DIR, "results"))
ENV_KEYS = ["EXEC_RELOADS", "EXEC_ROUNDS", "EXEC_STEADY_SECONDS", "EXEC_SPACING", "EXEC_RELOAD_TIMEOUT",
            "EXEC_WRK_THREADS", "EXEC_WRK_CONNS", "EXEC_SETUPS", "EXEC_RESULTS_DIR", "PREFORKD", "KEEP_WORK"]

APP = "exec_reload_app:app"
LUA = os.path.join(BENCH_DIR, "exec_reload.lua")
BACKLOG = 511  # preforkd's default; given to gunicorn and start_server too (gunicorn re-listens with its own)
BODY = re.compile(rb"\r\n\r\nhello v(\d{6})\n\Z", re.S)
# The gunicorn options every setup shares: sync worker, the same backlog and graceful timeout.
GUNICORN_COMMON = ["--worker-class", "sync", "--backlog", str(BACKLOG), "--graceful-timeout", "10"]

KNOWN = {
    "preforkd": "preforkd [exec], 2 × `gunicorn --workers 1`",
    "gunicorn": "gunicorn `--workers 2`, HUP",
    "gunicorn-reuseport": "gunicorn `--workers 2 --reuse-port`, HUP",
    "start_server": "`start_server --signal-on-hup=TERM` + gunicorn `--workers 2`",
}
for _s in SETUPS:
    if _s not in KNOWN:
        sys.exit(f"exec_reload: EXEC_SETUPS: unknown setup {_s!r} (known: {', '.join(KNOWN)})")
if not 1 <= ROUNDS <= RELOADS:
    sys.exit(f"exec_reload: EXEC_ROUNDS={ROUNDS} must be between 1 and EXEC_RELOADS={RELOADS}")
if len(set(SETUPS)) != len(SETUPS):
    sys.exit(f"exec_reload: EXEC_SETUPS: a setup is listed twice: {','.join(SETUPS)}")


# -------------------------------------------------------------- process tree ---
def start_time(pid):
    """Field 22 of /proc/PID/stat (start time in ticks), None if gone or a zombie: with the
    pid it names one process, so a recycled pid is never taken for the one we saw."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def tree(root):
    """{pid: start time} of every live process below root (root excluded)."""
    out = {}
    for pid in descendants(root, process_table())[1:]:
        t = start_time(pid)
        if t is not None:
            out[pid] = t
    return out


def all_gone(seen):
    return all(start_time(pid) != t for pid, t in seen.items())


# -------------------------------------------------------------------- poller ---
def poll_once(port, timeout):
    """One GET / on a new connection: (version, None) or (None, what failed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except socket.timeout:
        return None, "timeout"
    except ConnectionRefusedError:
        return None, "refused"
    except ConnectionResetError:
        return None, "reset"
    except OSError as e:
        return None, type(e).__name__
    if not data.startswith(b"HTTP/1.1 200 "):
        return None, "status " + data[:12].decode(errors="replace") if data else "empty answer"
    m = BODY.search(data)
    if not m:
        return None, "bad body"
    return int(m.group(1)), None


# --------------------------------------------------------------------- setups ---
class Setup:
    """One supervisor with the app on its own port and directory. `expected` is the size
    of its process tree below the master when steady (the reload is complete when the
    tree is back to it and every pre-signal process has exited)."""

    def __init__(self, run, key, rnd):
        self.run = run
        self.key = key
        self.label = KNOWN[key]
        self.port = free_port()
        self.dir = os.path.join(run.work, f"{key}-r{rnd}")
        os.makedirs(self.dir)
        self.version_file = os.path.join(self.dir, "version")
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.seen = {}  # every process ever seen in the tree: checked gone at the end
        self.leftovers = None
        self.expected = {"preforkd": 4, "start_server": 3}.get(key, 2)
        self.argv = self.command()

    def gunicorn(self, workers, bind):
        return ["gunicorn", "--workers", str(workers)] + (["--bind", bind] if bind else []) + GUNICORN_COMMON

    def command(self):
        if self.key == "preforkd":
            config = os.path.join(self.dir, "preforkd.toml")
            with open(config, "w") as f:
                f.write(self.preforkd_config())
            return [self.run.preforkd, "-c", config]
        if self.key in ("gunicorn", "gunicorn-reuseport"):
            extra = ["--reuse-port"] if self.key == "gunicorn-reuseport" else []
            return self.gunicorn(2, f"127.0.0.1:{self.port}") + extra + [APP]
        # start_server passes the socket as SERVER_STARTER_PORT=127.0.0.1:PORT=FD; the shell
        # turns it into gunicorn's --bind fd://FD and execs gunicorn (so start_server's child
        # is gunicorn's master itself).
        return (["start_server", f"--port=127.0.0.1:{self.port}", "--signal-on-hup=TERM", "--signal-on-term=TERM",
                 f"--backlog={BACKLOG}", f"--pid-file={self.dir}/start_server.pid", "--",
                 "sh", "-c", 'exec gunicorn --bind "fd://${SERVER_STARTER_PORT##*=}" "$@"', "sh"]
                + self.gunicorn(2, None)[1:] + [APP])

    def preforkd_config(self):
        argv = ["gunicorn", "--workers", "1"] + GUNICORN_COMMON + [APP]
        user = f'user = "{pwd.getpwuid(os.geteuid()).pw_name}"\n' if os.geteuid() == 0 else ""
        return (f"# bench/exec_reload: 2 slots, each running gunicorn with one sync worker.\n"
                f"workers = 2\n"
                f'pid_file = "{self.dir}/preforkd.pid"\n'
                f'graceful_timeout = "10s"\n'
                f"# A root master needs `user`; the gunicorns of the other setups run as root too.\n"
                f"{user}"
                f"\n[log]\nlevel = \"info\"\nerror_log = \"stderr\"\n"
                f"\n[exec]\n"
                f"command = [{', '.join(json.dumps(a) for a in argv)}]\n"
                f'ready = "notify"      # gunicorn sends READY=1 itself\n'
                f'stop_signal = "TERM"  # gunicorn\'s graceful stop\n'
                f'directory = "{BENCH_DIR}"\n'
                f"\n[[listen]]\n"
                f'name = "http"\naddress = "127.0.0.1:{self.port}"\nprotocol = "tcp"\nbacklog = {BACKLOG}\n')

    def described(self):
        """The command line (and config) with the run's paths and port replaced."""
        text = " ".join(a if re.fullmatch(r"[\w./:=,+@%-]+", a) else "'" + a + "'" for a in self.argv)
        if self.key == "preforkd":
            with open(self.argv[2]) as f:
                text += "\n\n" + f.read()
        return (text.replace(self.dir, "$DIR").replace(self.run.work, "$WORK").replace(str(self.port), "$PORT")
                .replace(BENCH_DIR, "$BENCH"))

    def write_version(self, v):
        tmp = self.version_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{v}\n")
        os.replace(tmp, self.version_file)

    def start(self):
        self.write_version(1)
        env = dict(os.environ, EXEC_RELOAD_VERSION_FILE=self.version_file, PYTHONDONTWRITEBYTECODE="1")
        with open(self.log_path, "w") as log_file:
            self.proc = PROCS.start(self.key, self.argv, cwd=BENCH_DIR, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.check_alive("start-up")
            now = tree(self.proc.pid)
            self.seen.update(now)
            if len(now) == self.expected and poll_once(self.port, 1.0)[0] == 1:
                return
            time.sleep(0.1)
        raise BenchError(f"{self.key} not serving with {self.expected} processes within 30 s:\n{self.tail()}")

    def check_alive(self, what):
        if self.proc.poll() is not None:
            raise BenchError(f"{self.key} exited with {self.proc.returncode} during {what}:\n{self.tail()}")

    def cpu_seconds(self):
        """User + system CPU of the whole tree so far, reaped processes included: each
        supervisor reaps its gunicorns, and each gunicorn master its workers."""
        return tree_cpu_seconds(self.proc.pid)

    def tail(self, lines=20):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def reload(self, v):
        """One HUP; returns its timings (s after the signal) and the poller's counts."""
        self.write_version(v)
        old = tree(self.proc.pid)
        self.seen.update(old)
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGHUP)
        r = {"version": v, "new_code_s": None, "new_code_sent_s": None, "old_gone_s": None, "polls": 0,
             "poll_errors": {}, "old_answers": 0}
        deadline = t0 + RELOAD_TIMEOUT
        next_check = t0
        # Poll until the new code answers; between polls (and after), look at the tree
        # every 20 ms until the old processes are gone. Both bounded by the deadline.
        while time.monotonic() < deadline:
            if r["new_code_s"] is None:
                sent = time.monotonic()
                version, err = poll_once(self.port, max(0.01, min(2.0, deadline - sent)))
                r["polls"] += 1
                if err:
                    r["poll_errors"][err] = r["poll_errors"].get(err, 0) + 1
                    time.sleep(0.001)  # a refused connect returns at once: do not spin
                elif version == v:
                    r["new_code_s"], r["new_code_sent_s"] = time.monotonic() - t0, sent - t0
                else:
                    r["old_answers"] += 1
            elif r["old_gone_s"] is None:
                time.sleep(max(0.0, next_check - time.monotonic()))
            if r["old_gone_s"] is None and time.monotonic() >= next_check:
                current = tree(self.proc.pid)
                self.seen.update(current)
                if all_gone(old) and len(current) == self.expected:
                    r["old_gone_s"] = time.monotonic() - t0
                next_check = time.monotonic() + 0.02
            if r["new_code_s"] is not None and r["old_gone_s"] is not None:
                break
        return r

    def stop(self):
        """TERM (graceful for all four), then the group; then every process ever seen in
        the tree must be gone: a leftover (one that left the group) is killed by pid."""
        if self.proc is None:
            return
        self.seen.update(tree(self.proc.pid))
        PROCS.stop(self.proc, signal.SIGTERM, timeout=20)
        deadline = time.monotonic() + 5
        while not all_gone(self.seen) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.leftovers = 0
        for pid, t in self.seen.items():
            if start_time(pid) == t:
                self.leftovers += 1
                log(f"{self.key}: pid {pid} outlived its master: killing it")
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


# ------------------------------------------------------------------------ wrk ---
def wrk_argv(port, seconds):
    return ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}", "--latency",
            "-H", "Connection: close", "-s", LUA, f"http://127.0.0.1:{port}/"]


def parse(out, argv):
    r = parse_wrk(out)
    m = re.search(r"body check: good (\d+) bad (\d+)", out)
    if not m:
        raise BenchError(f"no body check line in wrk output (is {LUA} in use?):\n{out}")
    r["body_good"], r["body_bad"] = int(m.group(1)), int(m.group(2))
    m = re.search(r"requests in ([\d.]+)(\w+)", out)
    r["seconds"] = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)] if m else None
    r["command"] = " ".join(a if " " not in a else f"'{a}'" for a in argv).replace(BENCH_DIR, "bench")
    return r


# ------------------------------------------------------------------------ run ---
class Run:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="exec-reload.")
        os.chmod(self.work, 0o755)
        self.preforkd = None
        if "preforkd" in SETUPS:
            # A copy: the master execs its own image as the trampoline, and build-bench may be
            # rebuilt meanwhile.
            os.makedirs(os.path.join(self.work, "bin"))
            self.preforkd = os.path.join(self.work, "bin", "preforkd")
            subprocess.run(["cp", PREFORKD_SRC, self.preforkd], check=True)
        self.rows = []  # one per setup and round

    def run(self):
        """ROUNDS rounds; in each, every setup once (a fresh server: steady window, then its
        share of the reloads), the order rotating from round to round, so that the
        machine's other load (it is shared) falls on all setups alike."""
        for rnd in range(ROUNDS):
            count = RELOADS // ROUNDS + (1 if rnd < RELOADS % ROUNDS else 0)
            shift = rnd % len(SETUPS)
            for key in SETUPS[shift:] + SETUPS[:shift]:
                self.one(key, rnd + 1, count)

    def one(self, key, rnd, count):
        s = Setup(self, key, rnd)
        log(f"--- round {rnd}/{ROUNDS} {key}: {s.label}, port {s.port}, {count} reloads")
        try:
            s.start()
            argv = wrk_argv(s.port, STEADY_SECONDS)
            cpu_before = s.cpu_seconds()
            rc, out, err = PROCS.run("wrk (steady)", argv, timeout=STEADY_SECONDS + 60)
            if rc != 0:
                raise BenchError(f"wrk failed ({rc}): {err or out}")
            steady = parse(out, argv)
            steady["server_cpu_seconds"] = s.cpu_seconds() - cpu_before
            s.check_alive("the steady window")

            bound = int(count * (RELOAD_TIMEOUT + SPACING + 1) + 60)
            argv = wrk_argv(s.port, bound)
            cpu_before = s.cpu_seconds()
            wrk = PROCS.start("wrk (storm)", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            reloads = []
            try:
                time.sleep(1.0)  # wrk's connections are up and the queues are busy before the first HUP
                for i in range(count):
                    s.check_alive("the storm")
                    if wrk.poll() is not None:
                        raise BenchError(f"wrk exited during the storm ({wrk.returncode})")
                    r = s.reload(i + 2)
                    reloads.append(r)
                    if r["new_code_s"] is None or r["old_gone_s"] is None:
                        log(f"{key} reload {i + 1}: not complete within {RELOAD_TIMEOUT:.0f} s: {r}")
                    time.sleep(SPACING)
                wrk.send_signal(signal.SIGINT)  # wrk stops and prints its summary
                out, _ = wrk.communicate(timeout=30)
            finally:
                PROCS.stop(wrk, signal.SIGINT, timeout=10)
            if wrk.returncode != 0:
                raise BenchError(f"wrk failed during the storm ({wrk.returncode}): {out}")
            storm = parse(out, argv)
            storm["server_cpu_seconds"] = s.cpu_seconds() - cpu_before
            s.check_alive("the storm")
        finally:
            s.stop()
        row = {"setup": key, "round": rnd, "label": s.label, "port": s.port, "command": s.described(),
               "steady": steady, "storm": storm, "reloads": reloads, "processes_seen": len(s.seen),
               "leftovers": s.leftovers, "server_log_tail": s.tail(8)}
        self.rows.append(row)
        x = summarize([row])
        log(f"{key} round {rnd}: steady p99 {fmt(steady['p99_ms'], 1)} ms; storm {storm['requests']} requests, "
            f"p99 {fmt(storm['p99_ms'], 1)} ms, failed {x['failed']}, reloads complete {x['complete']}/{count}, "
            f"new code median {fmt(x['new_median_ms'])} ms, old gone median {fmt(x['gone_median_ms'])} ms")

    def setups(self):
        """[(key, label, rows of its rounds)] in SETUPS order."""
        return [(k, KNOWN[k], [r for r in self.rows if r["setup"] == k]) for k in SETUPS]


def summarize(rows):
    """One setup's figures over its rounds: counts summed, reload times pooled, the
    rounds' p99s kept apart (wrk's percentiles cannot be merged)."""
    reloads = [r for row in rows for r in row["reloads"]]
    new = [r["new_code_s"] * 1000 for r in reloads if r["new_code_s"] is not None]
    gone = [r["old_gone_s"] * 1000 for r in reloads if r["old_gone_s"] is not None]
    poll_failed = sum(sum(r["poll_errors"].values()) for r in reloads)
    polls = sum(r["polls"] for r in reloads)
    errors = {k: sum(row["storm"]["errors"][k] for row in rows) for k in ("connect", "read", "write", "timeout")}
    non2xx = sum(row["storm"]["non2xx"] for row in rows)
    body_bad = sum(row["storm"]["body_bad"] for row in rows)
    # CPU: the server's per request in each round's steady window; what each storm cost
    # beyond serving its requests (wrk's and the poller's) at that round's steady rate.
    steady_cpu = sum(row["steady"]["server_cpu_seconds"] for row in rows)
    steady_requests = sum(row["steady"]["requests"] for row in rows)
    storm_cpu = sum(row["storm"]["server_cpu_seconds"] for row in rows)
    storm_requests = sum(row["storm"]["requests"] for row in rows) + polls
    extra = 0.0
    for row in rows:
        rate = row["steady"]["server_cpu_seconds"] / row["steady"]["requests"] if row["steady"]["requests"] else 0
        served = row["storm"]["requests"] + sum(r["polls"] for r in row["reloads"])
        extra += row["storm"]["server_cpu_seconds"] - served * rate
    ratios = [row["storm"]["p99_ms"] / row["steady"]["p99_ms"] for row in rows
              if row["steady"].get("p99_ms") and row["storm"].get("p99_ms")]
    return {
        "reloads": len(reloads),
        "complete": sum(1 for r in reloads if r["new_code_s"] is not None and r["old_gone_s"] is not None),
        "requests": sum(row["storm"]["requests"] for row in rows),
        "errors": errors, "non2xx": non2xx, "body_bad": body_bad,
        "failed": sum(errors.values()) + non2xx + body_bad + poll_failed,
        "steady_failed": sum(row["steady"]["socket_errors"] + row["steady"]["non2xx"] + row["steady"]["body_bad"]
                             for row in rows),
        "poll_failed": poll_failed,
        "polls": polls,
        "steady_p99s": [row["steady"]["p99_ms"] for row in rows],
        "storm_p99s": [row["storm"]["p99_ms"] for row in rows],
        "p99_ratios": ratios,
        "steady_cpu_us": steady_cpu * 1e6 / steady_requests if steady_requests else None,
        "storm_cpu_us": storm_cpu * 1e6 / storm_requests if storm_requests else None,
        "cpu_per_reload_s": extra / len(reloads) if reloads else None,
        "new_median_ms": median(new), "new_max_ms": max(new) if new else None,
        "gone_median_ms": median(gone), "gone_max_ms": max(gone) if gone else None,
        "leftovers": sum(row["leftovers"] or 0 for row in rows),
        "processes_seen": sum(row["processes_seen"] for row in rows),
    }


# --------------------------------------------------------------------- report ---
def tool_version(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "n/a"


def command_line():
    env = " ".join(f"{k}={os.environ[k]}" for k in ENV_KEYS if os.environ.get(k))
    return (env + " " if env else "") + "bench/exec_reload" + "".join(" " + a for a in sys.argv[1:])


def table_lines(run):
    L = ["| setup | reloads complete | requests (storm) | failed: connect / read / write / timeout / non-2xx / "
         "bad body / poller | p99 steady | p99 storm | storm / steady | signal → new code serving, median (max) | "
         "signal → old processes gone, median (max) |",
         "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for _, label, rows in run.setups():
        x = summarize(rows)
        e = x["errors"]
        L.append(f"| {label} | {x['complete']}/{x['reloads']} | {x['requests']:,} | "
                 f"**{x['failed']}**: {e['connect']} / {e['read']} / {e['write']} / {e['timeout']} / "
                 f"{x['non2xx']} / {x['body_bad']} / {x['poll_failed']} | "
                 f"{fmt_range(x['steady_p99s'], 1)} ms | {fmt_range(x['storm_p99s'], 1)} ms | "
                 f"{fmt_range(x['p99_ratios'], 1)}× | "
                 f"{fmt(x['new_median_ms'])} ({fmt(x['new_max_ms'])}) ms | "
                 f"{fmt(x['gone_median_ms'])} ({fmt(x['gone_max_ms'])}) ms |")
    return L


def write_report(run, started_utc, elapsed, load_start, load_end, machine):
    share = machine["other_cpu_seconds"] / machine["capacity_seconds"] if machine["capacity_seconds"] else 0
    L = ["# Reloading gunicorn four ways: preforkd [exec], gunicorn's HUP, `--reuse-port`, start_server\n",
         "Produced by `bench/exec_reload` (bench/exec_reload.py); per-reload figures are in `exec-reload.json`.\n"]
    if share > 0.25:
        top = ", ".join(f"`{c}`" for c, _ in machine["other_by_command"][:3])
        L.append(f"> **The machine was busy with other work during this run**: other processes used {share * 100:.0f}% "
                 f"of its CPU (mostly {top}; see \"What else was running on the machine\"). Latencies and times are "
                 "noisy: compare the setups with each other (they ran one at a time, in rotating rounds), and "
                 "re-run on a quiet machine before quoting absolute numbers. The failure counts do not depend "
                 "on speed in the same way, but a slower machine widens every reload's window.\n")
    L.append("## Setup\n")
    L.append(f"- command: `{command_line()}` (from the repository root)")
    L.append(f"- parameters: EXEC_RELOADS={RELOADS} EXEC_ROUNDS={ROUNDS} EXEC_STEADY_SECONDS={STEADY_SECONDS} "
             f"EXEC_SPACING={SPACING} EXEC_RELOAD_TIMEOUT={RELOAD_TIMEOUT:g} EXEC_WRK_THREADS={WRK_THREADS} "
             f"EXEC_WRK_CONNS={WRK_CONNS} "
             f"EXEC_SETUPS={','.join(SETUPS)}")
    L.append(f"- date: {started_utc}; run time {elapsed / 60:.1f} min; kernel {os.uname().release}, "
             f"nproc {os.cpu_count()}; load average at start {load_start}, at end {load_end}")
    commit = tool_version(['git', '-C', REPO, 'rev-parse', '--short', 'HEAD'])
    if subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                      text=True).stdout.strip():
        commit += " (with uncommitted changes)"
    L.append(f"- {tool_version(['gunicorn', '--version'])} (Debian's, sync worker); Server::Starter "
             f"{tool_version(['start_server', '--version'])} (libserver-starter-perl); "
             f"{tool_version(['wrk', '--version']).split(' [')[0]}; {tool_version(['python3', '--version'])}"
             + (f"; {tool_version([run.preforkd, '--version'])}, commit "
                f"{commit}" if run.preforkd else ""))
    L.append(f"- the app: `bench/exec_reload_app.py`, a fixed 14-byte answer `hello vNNNNNN` whose number is read "
             "from a file when the module is imported (the benchmark writes the next number before each HUP), "
             "so an answer with the new number comes from code loaded after the signal; every setup runs 2 "
             "serving processes (gunicorn sync workers), listen backlog 511, graceful timeout 10 s, loopback")
    L.append(f"- load: `{run.rows[0]['storm']['command'].replace(str(run.rows[0]['port']), 'PORT')}` "
             f"(the steady window: the same with `-d{STEADY_SECONDS}s`); the storm's wrk is stopped with SIGINT "
             f"{SPACING:g} s after the last reload; every request a new connection. gunicorn's sync worker "
             "closes every connection after one answer, so a keep-alive variant would measure the same thing "
             "and is not run")
    L.append(f"- rounds: {ROUNDS}; in each, every setup runs once on a fresh server (a {STEADY_SECONDS} s steady "
             f"window, then a storm of its share of the {RELOADS} reloads), the order of the setups rotating from "
             "round to round so that the machine's other load falls on all of them alike")
    L.append(f"- reloads: {RELOADS} HUPs per setup, one at a time: the next is sent {SPACING:g} s after the previous "
             "one completed (new code seen by the poller **and** every process from before the signal exited, "
             f"the tree back to its steady size), each bounded by {RELOAD_TIMEOUT:g} s")
    L.append("- **wrk, the poller and the servers share the machine's 2 cores** (and with everything else that "
             "ran): p99 includes scheduling delay, and the setups ran one after the other, not at once")
    L.append("")
    L.append("## Results\n")
    L += table_lines(run)
    L.append("")
    L.append("- *failed*: wrk's socket errors (connect, read, write, timeout > "
             f"{WRK_TIMEOUT}), its non-2xx count, 200 answers whose body was not the app's (checked on every "
             "answer by `bench/exec_reload.lua`), and the poller's failed requests (any error or wrong answer). "
             "The steady windows had " + ", ".join(f"{k} {summarize(rows)['steady_failed']}"
                                                   for k, _, rows in run.setups()) + " failed requests.")
    L.append("- processes left behind after stopping each setup (of all those seen in its tree): "
             + ", ".join(f"{k} {summarize(rows)['leftovers']} of {summarize(rows)['processes_seen']}"
                         for k, _, rows in run.setups())
             + " (a leftover would be killed by pid and counted here).")
    L.append("- p99 steady, p99 storm and their ratio: median of the rounds (min–max); wrk's percentiles of "
             "different runs cannot be merged.")
    L.append("- *signal → new code serving*: from the HUP to the poller's receipt of the first answer with the new "
             "number. The poller sends one request at a time on a new connection, so this includes that request's "
             "own wait in the accept queue behind wrk's connections (about the p50 latency under load).")
    L.append("- *signal → old processes gone*: until every process of the setup's tree from before the signal had "
             "exited and the tree was back to its steady size (/proc, checked every 20 ms).")
    L.append("")
    L.append("| setup | server CPU per request, steady | the same, storm | server CPU per reload beyond serving |")
    L.append("|---|---:|---:|---:|")
    for key, _, rows in run.setups():
        x = summarize(rows)
        L.append(f"| {key} | {fmt(x['steady_cpu_us'])} µs | {fmt(x['storm_cpu_us'])} µs | "
                 f"{fmt(x['cpu_per_reload_s'], 2)} s |")
    L.append("")
    L.append("Server CPU = user + system time of the setup's whole process tree, reaped processes included "
             "(/proc/PID/stat of the master and its descendants, plus the master's cutime/cstime). *Per reload "
             "beyond serving* = (storm CPU − storm requests, wrk's and the poller's, × the steady CPU per request) "
             "/ reloads, each round against its own steady rate: what starting the new processes and stopping the "
             "old ones cost. CPU per request itself moves by tens of percent with the machine's other load (cache "
             "and core contention), so this is an estimate.")
    L.append("")
    L.append("Per round (in the order they ran):\n")
    L.append("| round | setup | steady: requests, req/s, p50, p99 | storm: s, reloads, requests, req/s, p50, p99 | "
             "poller requests | failed |")
    L.append("|---:|---|---|---|---:|---:|")
    for row in run.rows:
        st, sm, x = row["steady"], row["storm"], summarize([row])
        L.append(f"| {row['round']} | {row['setup']} | {st['requests']:,}, {fmt(st['rps'])}/s, "
                 f"{fmt(st['p50_ms'], 1)} ms, {fmt(st['p99_ms'], 1)} ms | {fmt(sm['seconds'], 1)} s, "
                 f"{x['reloads']}, {sm['requests']:,}, {fmt(sm['rps'])}/s, {fmt(sm['p50_ms'], 1)} ms, "
                 f"{fmt(sm['p99_ms'], 1)} ms | {x['polls']:,} | {x['failed']} |")
    L.append("")
    L.append("## How each setup reloads\n")
    L.append("- **preforkd [exec]**: each slot has its own `SO_REUSEPORT` socket, owned by the master. On HUP it "
             "starts a new gunicorn per slot on the *same* slot sockets (`LISTEN_FDS`), waits for every new one's "
             "`READY=1` (sent by gunicorn's arbiter once it booted, before its worker is up: connections queue "
             "on the shared socket meanwhile), then sends the old gunicorns `TERM`; no listening socket closes.")
    L.append("- **gunicorn HUP**: the master keeps its one listening socket, forks 2 new workers (each imports the "
             "app) and sends the old workers `TERM` at once, without waiting for the new ones to boot; "
             "connections wait in the queue meanwhile.")
    L.append("- **gunicorn `--reuse-port`**: the flag only sets `SO_REUSEPORT` on the master's one socket, which "
             "the workers share as before; a HUP keeps that socket (gunicorn 20.1 `Arbiter.reload` re-creates "
             "listeners only when the address changes), so this setup reloads exactly as the previous one.")
    L.append("- **start_server**: holds one listening socket and passes it to its child as `SERVER_STARTER_PORT`; "
             "on HUP it starts a new gunicorn (master + 2 workers) on the same socket, sleeps `--interval` (1 s, "
             "its default), and if the new one is still alive sends the old one `TERM` (`--signal-on-hup`). "
             "Readiness is \"alive after 1 s\", not \"serving\".")
    L.append("")
    L.append("## Commands and configs\n")
    for key, _, rows in run.setups():
        L.append(f"**{key}**\n\n```\n{rows[0]['command']}\n```\n")
    L += machine_load_lines(machine)
    text = "\n".join(L) + "\n"
    out_dir = RESULTS_DIR or run.work
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "EXEC-RELOAD.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "exec-reload.json"), "w") as f:
        json.dump({"command": command_line(), "date": started_utc, "rows": run.rows}, f, indent=1)
    return os.path.join(out_dir, "EXEC-RELOAD.md"), text


def main():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if "preforkd" in SETUPS and not os.access(PREFORKD_SRC, os.X_OK):
        raise BenchError(f"no preforkd binary at {PREFORKD_SRC} (bench/exec_reload builds it)")
    started = time.monotonic()
    started_utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_start = loadavg()
    watch = MachineWatch()
    watch.start()
    run = None
    ok = False
    try:
        run = Run()
        log(f"work dir {run.work}; {RELOADS} reloads per setup in {ROUNDS} round(s); setups {', '.join(SETUPS)}")
        run.run()
        PROCS.stop_all()
        machine = watch.report(own_cpu_seconds())
        path, text = write_report(run, started_utc, time.monotonic() - started, load_start, loadavg(), machine)
        print(text)
        log(f"wrote {path}; total {time.monotonic() - started:.0f} s")
        ok = True
    finally:
        PROCS.stop_all()
        if run is not None:
            if ok and not os.environ.get("KEEP_WORK") and RESULTS_DIR:
                subprocess.run(["rm", "-rf", run.work], check=False)
            else:
                log(f"kept the work dir (configs, server logs{', results' if not RESULTS_DIR else ''}): {run.work}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
