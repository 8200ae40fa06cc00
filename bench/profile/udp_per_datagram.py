#!/usr/bin/env python3
"""udp_per_datagram.py SERVERS [WORKERS=2] [SECONDS=5] [ROUNDS=5]

UDP echo servers side by side under bench/run's load, `bench/tools/udp_load 127.0.0.1
PORT SECONDS 32 4 64`, rounds interleaved: datagrams/s and CPU µs per datagram echoed
(user + system of all the server's processes, /proc). SERVERS is a comma list of
preforkd, udp-floor, and NAME=/path/preforkd (preforkd from another build, e.g. the
commit before a change). SYSCALLS=1 also counts system calls per datagram with perf
tracepoints (then the CPU figures are not comparable)."""

import os
import subprocess
import sys
import time

from profile_common import FakeBench, count_syscalls, print_medians, start_servers, stop_servers
from settings import TOOLS_DIR

SYSCALLS = ["recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "epoll_wait", "epoll_ctl"]


def main():
    kinds = sys.argv[1].split(",")
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    started = start_servers(FakeBench(), kinds, workers, protocol="udp-echo")
    try:
        results = {s.label_name: [] for s in started}
        for rnd in range(rounds):
            for s in started:
                argv = [os.path.join(TOOLS_DIR, "udp_load"), "127.0.0.1", str(s.port), str(seconds), "32", "4", "64"]
                cpu0 = s.cpu_seconds()
                load = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
                counts = {}
                if os.environ.get("SYSCALLS") == "1":
                    time.sleep(0.5)
                    counts = count_syscalls(s, SYSCALLS, seconds - 1)
                fields = dict(kv.split("=") for kv in load.communicate()[0].split())
                cpu = s.cpu_seconds() - cpu0
                echoed, rate = int(fields["echoed"]), float(fields["rate"])
                results[s.label_name].append((cpu * 1e6 / echoed, rate))
                line = f"round {rnd + 1} {s.label_name:10s} {rate:9.0f} datagrams/s {cpu * 1e6 / echoed:5.2f} µs CPU/datagram"
                if counts:
                    base = rate * (seconds - 1)
                    line += "  syscalls/datagram: " + " ".join(f"{k}={v / base:.3f}" for k, v in counts.items() if v)
                print(line, flush=True)
        print_medians(results, "datagram", "datagrams/s")
    finally:
        stop_servers(started)


if __name__ == "__main__":
    main()
