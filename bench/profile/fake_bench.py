"""The part of bench.py's Bench that bench/servers.py needs, for the profile scripts:
a temporary document root with the benchmark's files, so every server here runs with
exactly bench/run's config (one worker, unless asked otherwise)."""

import os
import sys
import tempfile

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

import servers  # noqa: E402  (bench/servers.py)
from settings import BUILD  # noqa: E402


class FakeBench:
    def __init__(self, preforkd=None):
        self.work = tempfile.mkdtemp(prefix="preforkd-profile.")
        os.chmod(self.work, 0o755)
        self.serial = 0
        self.www = os.path.join(self.work, "www")
        os.makedirs(self.www)
        os.chmod(self.www, 0o755)
        servers.write_files(self.www)
        self.preforkd = preforkd or os.path.join(BUILD, "preforkd")
        self.nofile = int(os.popen("sh -c 'ulimit -n'").read().strip())
        self.max_connections_line = "max_connections = 20000\n"
        self.user_line = 'user = "nobody"\n' if os.geteuid() == 0 else ""

    def note_config(self, server, text):
        pass
