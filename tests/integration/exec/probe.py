# What a program started by preforkd's [exec] sees, written as JSON to
# $PROBE_DIR/probe.<pid>.json for tests/integration/exec_test.cpp: its pid, argv,
# environment, open fds and their socket types and close-on-exec flags, blocked
# signals, credentials, fd limit, working directory and parent-death signal.
# Then READY=1, and it waits to be stopped.
import ctypes
import json
import os
import resource
import signal
import socket
import sys

fds = []
for name in os.listdir("/proc/self/fd"):
    try:
        if os.readlink("/proc/self/fd/" + name) == "/proc/%d/fd" % os.getpid():
            continue  # the directory being listed
    except OSError:
        continue  # closed meanwhile: that was the listing's own
    fds.append(int(name))

status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)


def kind(fd):
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError as e:
        return str(e)
    try:
        return {socket.SOCK_STREAM: "SOCK_STREAM", socket.SOCK_DGRAM: "SOCK_DGRAM"}.get(s.type, str(s.type))
    finally:
        s.close()


PR_GET_PDEATHSIG = 2
libc = ctypes.CDLL(None, use_errno=True)
death = ctypes.c_int(0)
libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(death), 0, 0, 0)

probe = {
    "pid": os.getpid(),
    "argv": sys.argv,
    "env": {k: v for k, v in os.environ.items()
            if k.startswith(("LISTEN_", "NOTIFY_", "WATCHDOG_", "PREFORKD_")) or k == "EXTRA"},
    "fds": sorted(fds),
    "fd3": kind(3),
    "fd4": kind(4),
    "inheritable": [os.get_inheritable(3), os.get_inheritable(4)],
    "blocked": status.get("SigBlk", "?").strip(),
    "uid": os.getuid(),
    "gid": os.getgid(),
    "groups": os.getgroups(),
    "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    "cwd": os.getcwd(),
    "parent_death_signal": death.value,
}
path = os.path.join(os.environ["PROBE_DIR"], "probe.%d.json" % os.getpid())
with open(path + ".tmp", "w") as out:
    json.dump(probe, out)
os.rename(path + ".tmp", path)

address = os.environ["NOTIFY_SOCKET"]
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as n:
    n.sendto(b"READY=1", "\0" + address[1:] if address.startswith("@") else address)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
