"""The servers bench/run compares and the processes it starts. Every server is our
child in its own process group, with its own directory and port; each peer is
configured as a fair peer of preforkd (same worker count, same files, keep-alive
limits high, access logs off, sendfile where the server has it). The configs are
written into RESULTS.md."""

import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time

from procfs import children_of, tree_cpu_seconds
from settings import BACKLOG, FILES, HUGE, LARGE, PINNED_KINDS, SMALL, TOOLS_DIR, BenchError, log


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


# ----------------------------------------------------------------- utilities ---
USED_PORTS = set()


def free_port():
    """A free port below the ephemeral range (32768+), so that client sockets can never
    take it; checked for TCP and UDP, and never handed out twice in one run."""
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


# ------------------------------------------------------------------- servers ---
# Server kinds. "udp-floor" is the UDP scenario's floor; the others serve HTTP.
PROCESS_KINDS = ("preforkd", "nginx", "lighttpd", "floor", "udp-floor")  # one process per worker
QUIT_KINDS = ("preforkd", "nginx")  # graceful stop on QUIT; the others get TERM


def parse_server_name(name):
    """(kind, pinned) of a server name: "nginx", "nginx+cpu" (settings.PINNED_KINDS);
    other "+..." suffixes (the profile scripts' "+log") leave the kind as it is."""
    kind, *variants = name.split("+")
    return kind, "cpu" in variants


class Server:
    """One server (our child) with its own directory and port."""

    def __init__(self, bench, kind, workers, reuseport=True, access_log=False, protocol="http", label=None,
                 pinned=False):
        self.bench = bench
        self.kind = kind
        # Each worker on its own CPU, in the server's own way (settings.PINNED_KINDS).
        if pinned and kind not in PINNED_KINDS:
            raise BenchError(f"{kind} has no CPU pinning (pinned variants: {', '.join(PINNED_KINDS)})")
        self.pinned = pinned
        self.workers = workers
        self.reuseport = reuseport
        self.access_log = access_log
        self.protocol = "udp-echo" if kind == "udp-floor" else protocol
        self.port = free_port()
        bench.serial += 1
        self.dir = os.path.join(bench.work, f"{bench.serial:03d}-{label or kind}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.log_path = os.path.join(self.dir, "server.log")
        self.proc = None
        self.worker_pids = []
        self.config = None

    @property
    def key(self):
        """The variant's name in records, tables and plots: KIND or KIND+cpu."""
        return self.kind + "+cpu" if self.pinned else self.kind

    @property
    def name(self):
        return f"{self.kind} ({self.workers} workers, port {self.port})"

    def argv(self):
        """The command line; writes the config file first where the kind has one."""
        if self.kind == "floor":
            files = [f"{path}={os.path.join(self.bench.www, path[1:])}" for path in FILES]
            return [os.path.join(TOOLS_DIR, "http_floor"), "127.0.0.1", str(self.port), str(self.workers)] + files
        if self.kind == "udp-floor":
            return [os.path.join(TOOLS_DIR, "udp_floor"), "127.0.0.1", str(self.port), str(self.workers)]
        writer, file_name = {"preforkd": (preforkd_config, "preforkd.toml"), "nginx": (nginx_config, "nginx.conf"),
                             "h2o": (h2o_config, "h2o.conf"), "lighttpd": (lighttpd_config, "lighttpd.conf")}[self.kind]
        self.config = os.path.join(self.dir, file_name)
        text = writer(self.bench, self)
        with open(self.config, "w") as f:
            f.write(text)
        self.bench.note_config(self, text)
        if self.kind == "preforkd":
            return [self.bench.preforkd, "-c", self.config]
        if self.kind == "nginx":
            os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
            # daemon off: the master is our child, so signals and cleanup target a pid we own.
            return ["nginx", "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"),
                    "-c", self.config, "-g", "daemon off;"]
        if self.kind == "h2o":
            return ["h2o", "-c", self.config]  # the default mode runs in the foreground
        return ["lighttpd", "-D", "-f", self.config]  # -D: in the foreground

    def start(self):
        argv = self.argv()
        env = dict(os.environ, FLOOR_CPU_STEERING="1") if self.kind == "floor" and self.pinned else None
        if self.kind in ("floor", "udp-floor"):
            self.bench.note_config(self, ("FLOOR_CPU_STEERING=1 " if env else "") + " ".join(argv))
        log_file = open(self.log_path, "w")
        try:
            self.proc = PROCS.start(self.name, argv, stdout=log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        finally:
            log_file.close()
        try:
            self.wait_ready()
        except BaseException:
            # Not serving: stop it now, so a caller that gives up on it leaves nothing behind.
            PROCS.stop(self.proc, signal.SIGTERM, timeout=5)
            raise
        return self

    def wait_ready(self, timeout=10.0):
        # h2o serves from threads of one process; the others fork a process per worker,
        # except lighttpd with server.max-worker = 1, which serves from its only process.
        want_children = self.workers if self.kind in PROCESS_KINDS else 0
        if self.kind == "lighttpd" and self.workers == 1:
            want_children = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} at start-up:\n{self.tail()}")
            ok = udp_echo_ok(self.port) if self.protocol == "udp-echo" else http_get_status(self.port, SMALL) == 200
            if ok and len(children_of(self.proc.pid)) >= want_children:
                self.worker_pids = children_of(self.proc.pid)
                return
            time.sleep(0.1)
        raise BenchError(f"{self.name} not serving within {timeout:.0f} s:\n{self.tail()}")

    def cpu_seconds(self):
        """User + system CPU of all the server's processes (and threads) so far."""
        return tree_cpu_seconds(self.proc.pid)

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
        """QUIT (preforkd, nginx: workers finish and log their counters) or TERM."""
        if self.proc is None:
            return
        sig = signal.SIGQUIT if graceful and self.kind in QUIT_KINDS else signal.SIGTERM
        rc = PROCS.stop(self.proc, sig, timeout=20)
        if graceful and rc not in (0, None):
            log(f"{self.name} exited with {rc} on {signal.Signals(sig).name}")

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def server_log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


# ------------------------------------------------------------------- configs ---
def preforkd_config(bench, s):
    listen = ['name = "bench"', f'address = "127.0.0.1:{s.port}"', f'protocol = "{s.protocol}"']
    if s.protocol == "http":
        listen += [f'root = "{bench.www}"', f"backlog = {BACKLOG}"]
    listen.append(f"reuseport = {'true' if s.reuseport else 'false'}")
    return (f"workers = {s.workers}\n"
            + ('worker_cpu_affinity = "auto"\n' if s.pinned else "")
            + f'pid_file = "{s.dir}/preforkd.pid"\n'
            f"graceful_timeout = 10\n"
            f"{bench.max_connections_line}"
            f"{bench.user_line}"
            f"\n[log]\n"
            f'level = "info"   # the exit lines (per-worker counters) and reload lines\n'
            f'error_log = "stderr"\n'
            f"\n[[listen]]\n" + "\n".join(listen) + "\n")


def nginx_config(bench, s):
    d = s.dir
    if s.access_log:
        access = (f"log_format dist '$pid $connection';\n"
                  f"  access_log {d}/access.log dist buffer=64k;")
    else:
        access = "access_log off;"
    affinity = ("worker_cpu_affinity auto;  # the +cpu variant: pinned like preforkd's\n" if s.pinned else
                "# worker_cpu_affinity is not set: workers float over all cores, like preforkd's.\n")
    return f"""# nginx as a fair peer of preforkd: same worker count, same files.
worker_processes {s.workers};
{affinity}worker_rlimit_nofile {bench.nofile};
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{
  worker_connections {max(20000, min(bench.nofile, 30000))};
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
    root {bench.www};
  }}
}}
"""


def h2o_config(bench, s):
    # h2o 2.2: one process, num-threads event loops accepting from one shared
    # listening socket (it has no reuseport option); no sendfile (it reads files
    # into its buffers), no request limit per connection; access-log omitted = off.
    # pid-file and error-log are opened after dropping to `user`, so neither is set:
    # the pid is our child's, errors go to stderr (server.log).
    user = "user: nobody\n" if os.geteuid() == 0 else ""
    return f"""# h2o as a fair peer of preforkd: same worker count (threads), same files.
num-threads: {s.workers}
max-connections: 20000
{user}listen:
  host: 127.0.0.1
  port: {s.port}
http1-request-timeout: 75
file.mime.settypes:
  text/plain: .txt
  application/octet-stream: .bin
hosts:
  default:
    paths:
      /:
        file.dir: {bench.www}
"""


def lighttpd_config(bench, s):
    # lighttpd 1.4: server.max-worker forks that many workers, which share one
    # listening socket (no reuseport). mod_accesslog not loaded = no access log;
    # server.errorlog unset = stderr (server.log), since the file would be opened after
    # dropping to `username`. max-connections may be at most max-fds / 2.
    fds = min(bench.nofile, 65536)
    user = 'server.username = "nobody"\nserver.groupname = "nogroup"\n' if os.geteuid() == 0 else ""
    return f"""# lighttpd as a fair peer of preforkd: same worker count, same files.
server.document-root = "{bench.www}"
server.bind = "127.0.0.1"
server.port = {s.port}
server.max-worker = {s.workers}
server.pid-file = "{s.dir}/lighttpd.pid"
{user}server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 75
server.max-fds = {fds}
server.max-connections = {fds // 2}
server.listen-backlog = {BACKLOG}
server.stat-cache-engine = "simple"
mimetype.assign = (".txt" => "text/plain", ".bin" => "application/octet-stream")
"""


def make_work_dir(prefix):
    """A temporary directory for one run and its document root (`www`, with the
    benchmark's files); both readable by the peers' unprivileged workers."""
    work = tempfile.mkdtemp(prefix=prefix)
    os.chmod(work, 0o755)
    www = os.path.join(work, "www")
    os.makedirs(www)
    os.chmod(www, 0o755)
    write_files(www)
    return work, www


def write_files(www):
    """The document root all servers share: the 100 B, 64 KiB and 10 MiB files."""
    line = b"preforkd bench: a small static file for the keep-alive and churn scenarios.\n"
    with open(os.path.join(www, SMALL[1:]), "wb") as f:
        f.write(line.ljust(99, b".") + b"\n")  # exactly 100 bytes
    for path in (LARGE, HUGE):
        with open(os.path.join(www, path[1:]), "wb") as f:
            f.write(os.urandom(FILES[path]))
    for name in os.listdir(www):
        os.chmod(os.path.join(www, name), 0o644)
