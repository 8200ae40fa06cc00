#!/usr/bin/env python3
"""perf_split.py SERVER [SECONDS=5]

One worker of SERVER (bench/run's config) under `wrk -t1 -c64` keep-alive on the 100 B
file; `perf record -e cpu-clock -g` on its processes for SECONDS, CPU µs per request
from /proc over the same window; then the samples split into kernel work by system
call (from the kernel stack, which has frame pointers) and user work by the innermost
user frame (the binaries have no frame pointers, so user call chains are not used).
Shares times the measured CPU per request give µs per request.

cpu-clock, not cycles: this VM has no hardware counters (`perf stat -e instructions
true` says <not supported>). Samples are taken on the timer interrupt, so a sample
right after a system call returns lands on the libc wrapper ("libc syscall wrappers"):
count those with the kernel side."""

import collections
import re
import subprocess
import sys
import time

from profile_common import FakeBench, servers
from procfs import descendants

KERNEL = [(r"do_writev|vfs_writev", "writev"), (r"ksys_read|vfs_read", "read"),
          (r"do_epoll_wait|ep_poll", "epoll_wait (incl. sleeping, waking)"), (r"do_epoll_ctl|ep_modify|ep_insert", "epoll_ctl"),
          (r"__sys_sendto", "send/sendto"), (r"__sys_recvfrom", "recv/recvfrom"), (r"do_sendfile|splice", "sendfile"),
          (r"ksys_pread64", "pread64"), (r"do_sys_openat|do_filp_open", "openat"), (r"filp_close|__fput", "close"),
          (r"vfs_fstatat|vfs_statx", "fstatat"), (r"__sys_accept|do_accept", "accept4"),
          (r"__sys_sendmsg|___sys_sendmsg", "sendmsg")]
USER_PREFORKD = [("HTTP parsing callbacks", r"on_url|on_header|on_message|end_header|check_framing|HttpSession::parse"),
                 ("response head (status_head, to_string, Date)", r"status_head|to_string|to_chars|http_date"),
                 ("file cache lookup", r"FileCache|coarse_now_ms|_Hash_bytes|hashtable"),
                 ("timers (set_timeout)", r"set_timeout|init_timer|on_deadline"),
                 ("write path (write_shared, on_write)", r"write_shared|queue_write|on_write|on_writes_done|write_queue_size"),
                 ("access log", r"log_access|access_log"),
                 ("read path (on_read, on_data)", r"on_read|on_alloc|on_data|after_parse|resume_reading")]


def classify(frames):
    if "[kernel" in frames[0][1]:
        for sym, dso in frames:
            if "[kernel" not in dso:
                break
            for rx, name in KERNEL:
                if re.search(rx, sym):
                    return "kernel: " + name
        if any(re.search(r"irq|softirq|apic_timer", s) for s, _ in frames):
            return "kernel: interrupts outside system calls"
        return "kernel: system call entry/exit, other"
    sym, dso = frames[0]
    if "libhttp_parser" in dso:
        return "user: http_parser"
    if "libuv" in dso:
        return "user: libuv (loop, stream, timer internals)"
    if "libc.so" in dso or "libstdc++" in dso:
        if re.search(r"malloc|free|operator new|operator delete|_int_", sym):
            return "user: malloc/free"
        if re.search(r"mem|str", sym):
            return "user: libc string functions"
        if re.search(r"read|write|epoll|send|recv|open|close|stat", sym):
            return "user: libc system call wrappers (see above)"
        return "user: libc, libstdc++ other"
    if "vdso" in dso:
        return "user: vDSO (clock_gettime, time)"
    if "preforkd" in dso:
        for name, rx in USER_PREFORKD:
            if re.search(rx, sym):
                return "user: " + name
    return "user: " + dso.split("/")[-1] + " (own code)"


def main():
    kind = sys.argv[1]
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    out = f"/tmp/perf-split-{kind}.data"
    bench = FakeBench()
    s = servers.Server(bench, kind, 1, label=kind).start()
    try:
        url = f"http://127.0.0.1:{s.port}/small.txt"
        subprocess.run(["wrk", "-t1", "-c64", "-d2s", url], capture_output=True)
        pids = ",".join(str(p) for p in descendants(s.proc.pid))
        wrk = subprocess.Popen(["wrk", "-t1", "-c64", f"-d{seconds + 3}s", url], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        cpu0, t0 = s.cpu_seconds(), time.monotonic()
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-o", out, "-p", pids, "--",
                        "sleep", str(seconds)], capture_output=True)
        cpu, window = s.cpu_seconds() - cpu0, time.monotonic() - t0
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk.communicate()[0]).group(1))
    finally:
        s.stop(graceful=False)
    per_request = cpu * 1e6 / (rps * window)
    script = subprocess.run(["perf", "script", "-i", out, "-F", "ip,sym,dso"], capture_output=True, text=True).stdout
    cats = collections.Counter()
    for block in script.split("\n\n"):
        frames = []
        for line in block.splitlines():
            m = re.match(r"\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
            if m:
                frames.append((m.group(1), m.group(2)))
        if frames:
            cats[classify(frames)] += 1
    total = sum(cats.values())
    kernel = sum(v for k, v in cats.items() if k.startswith("kernel"))
    print(f"{kind}: {rps:,.0f} req/s, {per_request:.2f} µs CPU/request over the {window:.1f} s window, {total} samples; "
          f"kernel {kernel / total * 100:.0f}% ({kernel / total * per_request:.2f} µs), "
          f"user {100 - kernel / total * 100:.0f}% ({(total - kernel) / total * per_request:.2f} µs)")
    for k, v in cats.most_common():
        if v / total >= 0.005:
            print(f"  {v / total * 100:5.1f}%  {v / total * per_request:5.2f} µs  {k}")


if __name__ == "__main__":
    main()
