# A WSGI app for gunicorn under preforkd's [exec] (tests/integration/exec_test.cpp).
# gunicorn finds its listening socket in LISTEN_FDS/LISTEN_PID and sends READY=1
# to NOTIFY_SOCKET itself, so the app knows nothing of preforkd; the X-* headers
# only let the tests see which worker answered.
import os

BODY = b"hello from preforkd\n"


def app(environ, start_response):
    body = BODY if environ.get("PATH_INFO") == "/hello.txt" else b"ok\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Slot", os.environ.get("PREFORKD_SLOT", "?")),
        ("X-Generation", os.environ.get("PREFORKD_GENERATION", "?")),
        ("X-Pid", str(os.getpid())),
    ])
    return [body]
