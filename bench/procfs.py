"""What bench/run reads from /proc: process trees and their CPU time, memory,
kernel socket figures, and a watch on everything else the machine ran meanwhile
(it is shared with other engineers' builds)."""

import os
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """/proc/PID/stat fields from the state on (index 0 = field 3), or None if gone.
    The command name may contain spaces and parentheses: fields start after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def process_table():
    """{pid: (ppid, comm, utime + stime in ticks)} for every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        fields = stat[stat.rfind(")") + 2:].split()
        table[pid] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]))
    return table


def descendants(pid, table=None):
    """pid and every process below it, from one reading of the process table."""
    table = table if table is not None else process_table()
    kids = {}
    for p, (ppid, _, _) in table.items():
        kids.setdefault(ppid, []).append(p)
    out, i = [pid], 0
    while i < len(out):
        out += kids.get(out[i], [])
        i += 1
    return out


def children_of(pid):
    return sorted(p for p, (ppid, _, _) in process_table().items() if ppid == pid)


def tree_cpu_seconds(pid):
    """User + system CPU seconds of a server: pid and all its descendants (a process's
    stat sums its threads, so h2o's threads are in), plus what pid has reaped
    (cutime + cstime: a worker that exited during the interval stays counted)."""
    table = process_table()
    ticks = 0
    for p in descendants(pid, table):
        fields = _stat_fields(p)
        if fields is None:
            continue
        ticks += int(fields[11]) + int(fields[12])
        if p == pid:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


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


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


class MachineWatch(threading.Thread):
    """Samples the process table every `interval` s and charges each process's CPU
    growth to its command name, except for this benchmark's own processes (ours: below
    our pid). A process born and gone between two samples is missed by name, but the
    machine's total busy time (/proc/stat) still counts it; report() gives both."""

    def __init__(self, interval=2.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.by_command = {}
        self.samples = 0
        self.done = threading.Event()
        self.busy_start = machine_busy_seconds()
        self.wall_start = time.monotonic()
        self.last = process_table()

    def run(self):
        while not self.done.wait(self.interval):
            self.sample()

    @staticmethod
    def command_name(comm):
        """Kernel worker threads rename themselves after their current work item
        ("kworker/u8:2-writeback"): one row for each kind of kernel thread."""
        for prefix in ("kworker/", "ksoftirqd/", "migration/", "rcu_"):
            if comm.startswith(prefix):
                return prefix.rstrip("/_") + " (kernel threads)"
        return comm

    def sample(self):
        table = process_table()
        ours = set(descendants(os.getpid(), table))
        for pid, (_, comm, ticks) in table.items():
            if pid in ours:
                continue
            before = self.last.get(pid)
            grown = ticks - before[2] if before and before[1] == comm else ticks
            if grown > 0:
                name = self.command_name(comm)
                self.by_command[name] = self.by_command.get(name, 0) + grown
        self.last = table
        self.samples += 1

    def report(self, own_cpu_seconds):
        """Stops the watch; returns a summary dict for RESULTS.md and raw.json."""
        self.done.set()
        self.join(timeout=5)
        self.sample()
        wall = time.monotonic() - self.wall_start
        busy = machine_busy_seconds() - self.busy_start
        top = sorted(self.by_command.items(), key=lambda kv: -kv[1])
        return {
            "wall_seconds": wall,
            "machine_busy_seconds": busy,
            "capacity_seconds": wall * (os.cpu_count() or 1),
            "bench_cpu_seconds": own_cpu_seconds,
            "other_cpu_seconds": max(0.0, busy - own_cpu_seconds),
            "other_by_command": [(comm, ticks / CLK_TCK) for comm, ticks in top[:12]],
        }
