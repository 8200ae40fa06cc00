# The WSGI app of bench/exec_reload: a fixed 14-byte answer that says which code
# version is serving. The version is read once, when the module is imported, from the
# file EXEC_RELOAD_VERSION_FILE names; the benchmark writes the next number there
# before every reload, so a response carrying it can only come from a process that
# loaded the code after the signal (gunicorn imports the app in each worker, no
# --preload). Same app, same answer under every supervisor.
import os

with open(os.environ["EXEC_RELOAD_VERSION_FILE"]) as f:
    VERSION = int(f.read())
BODY = b"hello v%06d\n" % VERSION  # what bench/exec_reload.lua checks


def app(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(BODY))),
        ("X-Pid", str(os.getpid())),
    ])
    return [BODY]
