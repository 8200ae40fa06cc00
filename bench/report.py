"""bench/run's report: RESULTS.md, raw.json and the gnuplot PNGs, from the runs
bench.py recorded."""

import json
import os
import statistics
import subprocess
import sys

from figures import fmt, fmt_range, median, met
from settings import (BACKLOG, DIST_WORKERS, ENV_KEYS, HTTP_SERVERS, HUGE, IDLE_CONNS, LARGE, REPO, RESULTS_DIR,
                      ROUNDS, SCENARIOS, SECONDS, SMALL, STORM_HUPS, STORM_INTERVAL, UDP_SOCKETS, UDP_WINDOW,
                      WORKER_COUNTS, WRK_CONNS, WRK_THREADS, BenchError)

TESTS = [("keepalive-small", "keep-alive, 100 B"), ("keepalive-large", "keep-alive, 64 KiB"),
         ("keepalive-huge", "keep-alive, 10 MiB"), ("churn-small", "churn (Connection: close), 100 B")]
SHORT = {"keepalive-small": "keep-alive, 100 B", "keepalive-large": "keep-alive, 64 KiB",
         "keepalive-huge": "keep-alive, 10 MiB", "churn-small": "Connection: close, 100 B"}
# A pinned variant (KIND+cpu) is a lighter shade of its server's colour.
COLORS = {"preforkd": "#1f77b4", "preforkd+cpu": "#74b9e8", "nginx": "#ff7f0e", "nginx+cpu": "#ffbb78",
          "h2o": "#2ca02c", "lighttpd": "#9467bd", "floor": "#7f7f7f", "floor+cpu": "#c7c7c7", "udp-floor": "#7f7f7f"}
LABELS = {"floor": "floor (fork+epoll, fixed answer)", "udp-floor": "floor (blocking recvfrom/sendto)"}


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
        "h2o": cmd(["h2o", "-v"]).splitlines()[0] if cmd(["h2o", "-v"]) != "n/a" else "n/a",
        "lighttpd": cmd(["lighttpd", "-v"]).splitlines()[0] if cmd(["lighttpd", "-v"]) != "n/a" else "n/a",
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
    """Per (test, workers): per server the rounds' figures and their medians, and
    preforkd / nginx per round."""
    out = []
    for key, label in TESTS:
        for workers in WORKER_COUNTS:
            sel = [r for r in runs if r.get("test") == key and r["workers"] == workers]
            if not sel:
                continue
            row = {"test": key, "label": label, "workers": workers, "servers": {}}
            for kind in HTTP_SERVERS:
                mine = sorted((r for r in sel if r["server"] == kind), key=lambda r: r["round"])
                if not mine:
                    continue
                row["servers"][kind] = {
                    "rps": [r["rps"] for r in mine],
                    "rps_median": median([r["rps"] for r in mine]),
                    "p50_median": median([r["p50_ms"] for r in mine]),
                    "p99_median": median([r["p99_ms"] for r in mine]),
                    "cpu": [r["cpu_us_per_request"] for r in mine],
                    "cpu_median": median([r["cpu_us_per_request"] for r in mine]),
                    "socket_errors": sum(r["socket_errors"] for r in mine),
                    "non2xx": sum(r["non2xx"] for r in mine),
                }
            ratios = []
            for rnd in sorted({r["round"] for r in sel}):
                p = next((r for r in sel if r["server"] == "preforkd" and r["round"] == rnd), None)
                n = next((r for r in sel if r["server"] == "nginx" and r["round"] == rnd), None)
                if p and n and n["rps"] > 0:
                    ratios.append(p["rps"] / n["rps"])
            row["ratios"], row["ratio_median"] = ratios, median(ratios)
            out.append(row)
    return out


def summarize_udp(runs):
    out = []
    for workers in WORKER_COUNTS:
        sel = [r for r in runs if r.get("scenario") == 6 and r["workers"] == workers]
        if not sel:
            continue
        row = {"workers": workers, "servers": {}}
        for kind in ("preforkd", "udp-floor"):
            mine = sorted((r for r in sel if r["server"] == kind), key=lambda r: r["round"])
            if mine:
                row["servers"][kind] = {
                    "rate": [r["rate"] for r in mine], "rate_median": median([r["rate"] for r in mine]),
                    "cpu": [r["cpu_us_per_datagram"] for r in mine],
                    "cpu_median": median([r["cpu_us_per_datagram"] for r in mine]),
                    "lost": sum(r["lost"] for r in mine), "sent": sum(r["sent"] for r in mine),
                }
        out.append(row)
    return out


def gnuplot(script, path):
    with open(path, "w") as f:
        f.write(script)
    p = subprocess.run(["gnuplot", path], capture_output=True, text=True, cwd=os.path.dirname(path))
    if p.returncode != 0:
        raise BenchError(f"gnuplot {path}: {p.stderr}")


def bar_panel(dat, title, ylabel, kinds, digits):
    """One clustered-bar panel: a cluster per worker count, a bar per server, each bar
    labelled with its value."""
    n, gap = len(kinds), 1
    plots = []
    for j, kind in enumerate(kinds):
        src = f"'{dat}'" if j == 0 else "''"
        xtic = ":xtic(1)" if j == 0 else ""
        plots.append(f"{src} using {j + 2}{xtic} title '{LABELS.get(kind, kind)}' lc rgb '{COLORS[kind]}'")
    for j in range(n):
        offset = (j - (n - 1) / 2) / (n + gap)
        plots.append(f"'' using ($0+{offset:.4f}):{j + 2}:(sprintf(\"%.{digits}f\",${j + 2})) with labels "
                     "rotate by 90 left offset 0,0.3 font \",8\" notitle")
    return f"""set title "{title}"
set ylabel "{ylabel}"
plot {", ".join(plots)}
"""


def plot_grid(panels, kinds, out_png, plot_dir, title, digits, layout):
    """panels: [(panel title, ylabel, {workers: {kind: value}}[, digits])] as a multiplot;
    `digits` (bar labels) unless the panel says otherwise."""
    if not panels:
        return None
    parts = []
    for i, panel in enumerate(panels):
        ptitle, ylabel, values = panel[:3]
        panel_digits = panel[3] if len(panel) > 3 else digits
        dat = os.path.join(plot_dir, f"{os.path.basename(out_png)}-{i}.dat")
        with open(dat, "w") as f:
            for workers in sorted(values):
                f.write(f'"{workers} workers" ' + " ".join(str(values[workers].get(k) or 0) for k in kinds) + "\n")
        parts.append(bar_panel(dat, ptitle, ylabel, kinds, panel_digits))
    rows, cols = layout
    script = f"""set terminal pngcairo noenhanced size {560 * cols + 200},{470 * rows + 60} font "sans,10"
set output '{out_png}'
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.22, 0
set key below horizontal font ",8"
set multiplot layout {rows},{cols} title "{title}"
{"".join(parts)}unset multiplot
"""
    gnuplot(script, os.path.join(plot_dir, os.path.basename(out_png) + ".gp"))
    return out_png


def throughput_plot(summary, field, ylabel, name, what, plot_dir, digits):
    kinds = [k for k in HTTP_SERVERS if any(k in row["servers"] for row in summary)]
    panels = []
    for key, _ in TESTS:
        rows = [row for row in summary if row["test"] == key]
        if rows:
            values = {row["workers"]: {k: v[field] for k, v in row["servers"].items()} for row in rows}
            panels.append((SHORT[key], ylabel, values))
    cols = 2 if len(panels) > 1 else 1
    return plot_grid(panels, kinds, os.path.join(RESULTS_DIR, name), plot_dir,
                     f"{what} (wrk -t{WRK_THREADS} -c{WRK_CONNS} -d{SECONDS}s; median of {ROUNDS} rounds; "
                     "all servers with the same worker count)", digits, ((len(panels) + cols - 1) // cols, cols))


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
    udp = summarize_udp(runs)
    os.makedirs(RESULTS_DIR, exist_ok=True)
    plot_dir = os.path.join(bench.work, "plots")
    os.makedirs(plot_dir, exist_ok=True)
    plots = [
        throughput_plot(summary, "rps_median", "requests/s", "throughput.png", "Throughput, higher is better",
                        plot_dir, 0),
        throughput_plot(summary, "p99_median", "p99 latency (ms)", "latency.png", "p99 latency, lower is better",
                        plot_dir, 2),
        throughput_plot(summary, "cpu_median", "CPU µs per request", "cpu.png",
                        "Server CPU (user + system, all processes) per request, lower is better", plot_dir, 1),
        plot_distribution(bench.results.get("distribution", []), os.path.join(RESULTS_DIR, "distribution.png"),
                          plot_dir),
    ]
    if udp:
        kinds = ["preforkd", "udp-floor"]
        plots.append(plot_grid(
            [("datagrams/s echoed", "datagrams/s",
              {row["workers"]: {k: v["rate_median"] for k, v in row["servers"].items()} for row in udp}, 0),
             ("CPU µs per datagram", "CPU µs per datagram",
              {row["workers"]: {k: v["cpu_median"] for k, v in row["servers"].items()} for row in udp})],
            kinds, os.path.join(RESULTS_DIR, "udp.png"), plot_dir,
            f"UDP echo (udp_load, {UDP_SOCKETS} sockets x {UDP_WINDOW} in flight, 64 B; median of {ROUNDS} rounds)",
            2, (1, 2)))

    targets = []  # (target, figure, ok)
    L = []
    L.append("# preforkd and its peers: benchmark results\n")
    L.append("Produced by `bench/run` (bench/bench.py). Each figure below is followed by its target and whether "
             "it was met; the raw per-run data is in `raw.json`.\n")
    m = bench.machine_load
    other_share = m["other_cpu_seconds"] / m["capacity_seconds"] if m["capacity_seconds"] else 0
    if other_share > 0.25:
        top = ", ".join(f"`{c}`" for c, _ in m["other_by_command"][:3])
        L.append(f"> **The machine was busy with other work during this run**: other processes used "
                 f"{other_share * 100:.0f}% of its CPU (mostly {top}; see \"What else was running on the machine\"). "
                 "Throughput and latency are not meaningful here and CPU per request is noisy (see the ranges): "
                 "re-run on a quiet machine before drawing conclusions.\n")
    L.append("## Setup\n")
    L.append(f"- command: `{command_line()}` (from the repository root)")
    L.append(f"- parameters: BENCH_SECONDS={SECONDS} ROUNDS={ROUNDS} BENCH_WORKERS={','.join(map(str, WORKER_COUNTS))} "
             f"BENCH_SCENARIOS={','.join(map(str, SCENARIOS))} BENCH_SERVERS={','.join(HTTP_SERVERS)} "
             f"WRK_THREADS={WRK_THREADS} WRK_CONNS={WRK_CONNS} DIST_WORKERS={DIST_WORKERS} STORM_HUPS={STORM_HUPS} "
             f"STORM_INTERVAL={STORM_INTERVAL} IDLE_CONNS={IDLE_CONNS} UDP_SOCKETS={UDP_SOCKETS} UDP_WINDOW={UDP_WINDOW}")
    L.append(f"- date: {started_utc}; run time {elapsed / 60:.1f} min")
    L.append(f"- machine: {info['cpu']}, nproc {info['nproc']}, {info['mem_gib']:.1f} GiB RAM, kernel {info['kernel']}; "
             f"load average at start {bench.load_start}, at end {bench.load_end}")
    L.append(f"- {info['nginx']}; {info['h2o']}; {info['lighttpd']} (all Debian packages); {info['wrk']}; "
             f"{info['gnuplot']}")
    L.append(f"- preforkd: {info['preforkd_version']}, commit {info['preforkd_commit']}, built in build-bench "
             "(RelWithDebInfo, -DBUILD_TESTING=OFF)")
    L.append(f"- open-file limit (ulimit -n) {info['nofile']}; net.core.somaxconn {info['somaxconn']}; "
             f"net.ipv4.tcp_migrate_req {info['tcp_migrate_req']}; preforkd max_connections: {info['max_connections']}")
    L.append("- **wrk (and the other load clients) share the machine's cores with the servers**: with "
             f"{info['nproc']} cores, req/s measures the whole box (client + server) and p99 includes scheduling delay. "
             "**CPU per request** (user + system time of all the server's processes and threads, from /proc/PID/stat "
             "of the server and its descendants, over the load run, divided by the requests wrk counted) is the "
             "figure that separates the servers; it does not include the client's CPU.")
    L.append("- Pinning: preforkd, nginx and the floor run twice, unpinned (workers float over the same cores "
             "together with wrk) and as `KIND+cpu`, each worker pinned to its own CPU in the server's own way: "
             "preforkd `worker_cpu_affinity = \"auto\"` (which also steers each new connection to the worker on "
             "the CPU its SYN came in on), nginx `worker_cpu_affinity auto` (pinning only: its reuseport hash "
             "still picks the worker), the floor `FLOOR_CPU_STEERING=1` (both, like preforkd). h2o 2.2 and "
             "lighttpd 1.4 have no such setting and run unpinned. Compare like with like: preforkd with nginx "
             "and the floor, preforkd+cpu with nginx+cpu and floor+cpu.")
    L.append(f"- All servers: the same worker count, the same files (100 B `{SMALL}`, 64 KiB `{LARGE}`, 10 MiB "
             f"`{HUGE}`) from the same directory, listen backlog {BACKLOG} where the server has the setting, "
             "loopback (127.0.0.1) only, access logs off, keep-alive limits high, sendfile where the server has "
             "it. Their configs are at the end (\"Peer configurations\").")
    L.append("- Alternation: all servers run side by side (an idle one costs nothing); in every round each test "
             "runs on every server back to back, and the order of the servers rotates from round to round. "
             "Tables give medians over rounds and the range (min–max). A 1 s warm-up per server and test "
             "precedes the rounds.")
    L.append("")
    L.extend(machine_load_lines(bench.machine_load))

    if summary:
        L.extend(throughput_section(summary, targets))
    L.extend(r345_lines(bench, targets))
    if udp:
        L.extend(udp_section(udp, runs, targets))
    L.extend(config_lines(bench.configs))

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
                   "machine_load": bench.machine_load, "configs": bench.configs,
                   "throughput_summary": summary, "udp_summary": udp}, f, indent=1, default=str)
    return [p for p in plots if p]


def machine_load_lines(m):
    """What else ran: the machine is shared with other engineers' builds."""
    L = ["### What else was running on the machine\n"]
    share = m["other_cpu_seconds"] / m["capacity_seconds"] if m["capacity_seconds"] else 0
    L.append(f"Over the run's {m['wall_seconds'] / 60:.1f} min the machine was busy for "
             f"{m['machine_busy_seconds']:,.0f} CPU-seconds of {m['capacity_seconds']:,.0f} available (/proc/stat); "
             f"this benchmark's own processes (servers, clients, bench.py; getrusage of everything it reaped) "
             f"used {m['bench_cpu_seconds']:,.0f}, **everything else {m['other_cpu_seconds']:,.0f} CPU-seconds "
             f"({share * 100:.0f}% of the machine)**. The largest other consumers, sampled from /proc every 2 s "
             "(processes shorter than that are in the total but may be missing here; of the kernel threads, "
             "kworker does disk writeback and RCU reclaim, mostly for others' builds, and ksoftirqd network "
             "softirqs, partly this benchmark's):\n")
    L.append("| command | CPU-seconds during the run |")
    L.append("|---|---:|")
    for comm, seconds in m["other_by_command"]:
        L.append(f"| `{comm}` | {seconds:,.1f} |")
    L.append("")
    return L


def throughput_section(summary, targets):
    L = ["## 1 + 2. Throughput, latency and CPU per request (keep-alive, and churn with `Connection: close`)\n"]
    L.append(f"`wrk -t{WRK_THREADS} -c{WRK_CONNS} -d{SECONDS}s --latency [-H 'Connection: close'] URL`, one table "
             "per test. req/s and CPU per request: median of the rounds (min–max); p50, p99: medians. \"vs "
             "floor\" = CPU per request / the floor's (`bench/tools/http_floor`: fork + epoll, a fixed answer, "
             "no parsing beyond the end of the headers: the least a pre-fork server can spend). Targets (issue "
             "13): keep-alive 100 B: preforkd's CPU per request ≤ h2o's and within 10% of the floor; 64 KiB and "
             "10 MiB: ≤ nginx's; earlier targets kept: throughput ≥ 1.2× nginx, p99 ≤ nginx's.\n")
    for key, label in TESTS:
        rows = [row for row in summary if row["test"] == key]
        if not rows:
            continue
        L.append(f"### {label}\n")
        L.append("| workers | server | req/s | p50 (ms) | p99 (ms) | CPU µs/request | vs floor | socket errors | "
                 "non-2xx |")
        L.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            floor = row["servers"].get("floor", {}).get("cpu_median")
            for kind, v in row["servers"].items():
                vs = v["cpu_median"] / floor if floor and v["cpu_median"] else None
                L.append(f"| {row['workers']} | {kind} | {fmt_range(v['rps'])} | {fmt(v['p50_median'], 2)} | "
                         f"{fmt(v['p99_median'], 2)} | {fmt_range(v['cpu'], 1)} | {fmt(vs, 2)}× | "
                         f"{v['socket_errors']} | {v['non2xx']} |")
            add_throughput_targets(row, targets)
        L.append("")
    L.append("Per-round req/s and CPU µs/request, in round order:\n")
    for row in summary:
        parts = [f"{k} {', '.join(fmt(x) for x in v['rps'])} ({', '.join(fmt(x, 1) for x in v['cpu'])} µs)"
                 for k, v in row["servers"].items()]
        L.append(f"- {row['label']}, {row['workers']} workers: " + "; ".join(parts))
    L.append("\n![CPU per request](cpu.png)\n\n![throughput](throughput.png)\n\n![p99 latency](latency.png)\n")
    return L


def add_throughput_targets(row, targets):
    s = row["servers"]
    where = f"{row['label']}, {row['workers']} workers"

    def cpu_target(name, mine, other, factor=1.0):
        p, o = s.get(mine), s.get(other)
        if p and o and p["cpu_median"] and o["cpu_median"]:
            ok = p["cpu_median"] <= factor * o["cpu_median"]
            who = "" if mine == "preforkd" else f" ({mine} vs {other})"
            targets.append((f"{name}: {where}{who}", f"{fmt(p['cpu_median'], 2)} vs {fmt(o['cpu_median'], 2)} µs "
                            f"({fmt(p['cpu_median'] / o['cpu_median'], 2)}×)", ok))

    # Pinned preforkd is held to the same targets against the pinned peers (h2o cannot be pinned).
    for mine, suffix in (("preforkd", ""), ("preforkd+cpu", "+cpu")):
        if row["test"] == "keepalive-small":
            cpu_target("CPU/request ≤ h2o's", mine, "h2o")
            cpu_target("CPU/request within 10% of the floor's", mine, "floor" + suffix, 1.10)
        if row["test"] in ("keepalive-large", "keepalive-huge"):
            cpu_target("CPU/request ≤ nginx's", mine, "nginx" + suffix)
    p = s.get("preforkd")
    n = s.get("nginx")
    if not p:
        return
    if n:
        ratio_ok = row["ratio_median"] >= 1.2 if row["ratio_median"] is not None else None
        targets.append((f"throughput ≥ 1.2× nginx: {where}", f"{fmt(row['ratio_median'], 2)}× "
                        f"(per round {', '.join(f'{x:.2f}' for x in row['ratios'])})", ratio_ok))
        p99_ok = (p["p99_median"] <= n["p99_median"]) if None not in (p["p99_median"], n["p99_median"]) else None
        targets.append((f"p99 ≤ nginx: {where}", f"{fmt(p['p99_median'], 2)} vs {fmt(n['p99_median'], 2)} ms", p99_ok))


def udp_section(udp, runs, targets):
    L = ["## 6. UDP echo\n"]
    L.append(f"`bench/tools/udp_load 127.0.0.1 PORT {SECONDS} {UDP_SOCKETS} {UDP_WINDOW} 64`: {UDP_SOCKETS} client "
             f"sockets (distinct source ports, so the reuseport hash spreads them), each keeping {UDP_WINDOW} "
             f"64-byte datagrams in flight for {SECONDS} s. A fresh server per run; preforkd and the floor "
             "(`bench/tools/udp_floor`: N forked processes, each blocking in recvfrom/sendto on its own reuseport "
             "socket) alternate. CPU per datagram = the server's user + system time over the udp_load run / "
             "datagrams echoed. Shares = datagrams echoed per worker (preforkd's exit lines; the floor keeps no "
             "counters). **nginx has no UDP echo** (its stream module can only proxy UDP to an upstream). "
             "Target (issue 13): preforkd's CPU per datagram within 10% of the floor's.\n")
    L.append("| workers | server | datagrams/s echoed | CPU µs/datagram | vs floor | lost / sent |")
    L.append("|---:|---|---:|---:|---:|---:|")
    for row in udp:
        floor = row["servers"].get("udp-floor", {}).get("cpu_median")
        for kind, v in row["servers"].items():
            vs = v["cpu_median"] / floor if floor and v["cpu_median"] else None
            L.append(f"| {row['workers']} | {kind} | {fmt_range(v['rate'])} | {fmt_range(v['cpu'], 2)} | "
                     f"{fmt(vs, 2)}× | {fmt(v['lost'])} / {fmt(v['sent'])} |")
        p = row["servers"].get("preforkd")
        if p and floor and p["cpu_median"]:
            targets.append((f"UDP echo CPU/datagram within 10% of the floor's: {row['workers']} workers",
                            f"{fmt(p['cpu_median'], 2)} vs {fmt(floor, 2)} µs ({fmt(p['cpu_median'] / floor, 2)}×)",
                            p["cpu_median"] <= 1.10 * floor))
    L.append("\nEvery run, in order:\n")
    L.append("| workers | round | server | datagrams/s | CPU µs/datagram | sent | lost | echoed late | per-worker "
             "share | CV |")
    L.append("|---:|---:|---|---:|---:|---:|---:|---:|---|---:|")
    for r in (r for r in runs if r.get("scenario") == 6):
        shares = " ".join(f"{s * 100:.1f}%" for s in r["requests"]["shares"]) if r["requests"] else "—"
        cv = fmt(r["requests"]["cv"], 3) if r["requests"] else "—"
        L.append(f"| {r['workers']} | {r['round']} | {r['server']} | {fmt(r['rate'])} | "
                 f"{fmt(r['cpu_us_per_datagram'], 2)} | {fmt(r['sent'])} | {fmt(r['lost'])} | {fmt(r['late'])} | "
                 f"{shares} | {cv} |")
    L.append("\n![UDP echo](udp.png)\n")
    return L


# What each peer's config can and cannot say, next to its text in RESULTS.md.
PEER_NOTES = {
    "nginx": "One SO_REUSEPORT socket per worker (`listen ... reuseport`), sendfile on (it sends even the 100 B "
             "body with sendfile, after the headers), open_file_cache, no access log.",
    "h2o": "h2o 2.2 serves from `num-threads` event-loop threads in one process, which accept from one shared "
           "listening socket (it has no reuseport option); it has no sendfile (it preads files into its buffers) "
           "and no limit of requests per connection. No `access-log` = none. `pid-file` and `error-log` would be "
           "opened after switching to `user`, so they are not set (the pid is the benchmark's child, errors go to "
           "server.log).",
    "lighttpd": "server.max-worker forks that many workers, which share one listening socket (no reuseport); "
                "sendfile backend; mod_accesslog not loaded = no access log; server.errorlog unset = stderr "
                "(a file would be opened after switching to `username`). With one worker lighttpd serves from its "
                "only process.",
    "floor": "bench/tools/http_floor: the master binds one SO_REUSEPORT socket per worker and forks; each worker "
             "answers every request for a known target with a fixed answer (headers + body in one write up to 16 "
             "KiB, headers then sendfile above), keep-alive unless the request says Connection: close.",
    "udp-floor": "bench/tools/udp_floor: one SO_REUSEPORT socket per worker, blocking recvfrom/sendto.",
    "nginx+cpu": "As nginx, with `worker_cpu_affinity auto`: worker i pinned to the i-th CPU.",
    "floor+cpu": "As the floor, with FLOOR_CPU_STEERING=1: worker i pinned to CPU i, and a reuseport cBPF "
                 "program returning the CPU a connection's SYN came in on, so each connection is served there.",
}


def config_lines(configs):
    L = ["## Peer configurations\n",
         "As generated by bench/servers.py for the first server of each kind in this run ($WORK = the run's "
         "temporary directory, $DIR = the server's own directory in it, $PORT = its port; worker counts "
         "as in the first worker count run). The floors take no config file: their command lines are given.\n"]
    for kind, text in configs.items():
        L.append(f"**{kind}**\n")
        if kind in PEER_NOTES:
            L.append(PEER_NOTES[kind] + "\n")
        L.append("```")
        L.append(text.rstrip())
        L.append("```\n")
    return L


def r345_lines(bench, targets):
    L = []
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
            spares = r["idle"].get("spares") or []
            if spares:
                L.append(f"\n{r['server']} also keeps {len(spares)} idle spare(s) for the next reload (`prespawn`), "
                         "RSS (PSS) KiB: " + ", ".join(f"{kib(w['rss'])} ({kib(w['pss'])})" for w in spares) +
                         "; not in the worker columns.")
        for r in mem:
            if r["server_closed"]:
                L.append(f"\nNote ({r['server']}): {r['server_closed']} — the per-connection figure is taken "
                         "before that.")
        L.append("")
        for r in mem:
            L.append(f"- {r['server']}: idle_conns: `{r['client_ready']}`")
        L.append("")

    return L
