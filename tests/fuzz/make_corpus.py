#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/ (committed; rerun after changing a
seed here). Crash regressions are committed next to the seeds as crash-*, by hand.

http inputs start with a flags byte, a count k and k chunk lengths (see
tests/fuzz/fuzz_entries.hpp); config inputs are TOML text; ipc inputs are frames
as common/ipc_message.cpp encodes them."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


EOF_AT_END, RETIRE, PILE_UP, TIMEOUT = 1, 2, 4, 8


def http(name, requests, flags=EOF_AT_END, chunks=()):
    put("http", name, bytes([flags, len(chunks)]) + bytes(chunks) + requests.encode())


def get(path, version="1.1", extra=""):
    return f"GET {path} HTTP/{version}\r\nHost: fuzz\r\n{extra}\r\n"


http("get-index", get("/"))
http("get-split", get("/hello.txt"), chunks=(1, 5, 17))
http("pipelined", get("/hello.txt") + get("/index.html") + get("/missing") +
     "HEAD /hello.txt HTTP/1.1\r\nHost: fuzz\r\n\r\n" + get("/sub/"))
http("head", "HEAD /index.html HTTP/1.1\r\nHost: fuzz\r\n\r\n")
http("conditional-304", get("/hello.txt", extra="If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n"))
http("conditional-200", get("/hello.txt", extra="if-modified-since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"))
http("big-file", get("/big.bin"))
http("big-pipelined-backpressure", get("/big.bin") * 5 + get("/hello.txt"), flags=EOF_AT_END | PILE_UP)
http("http10", get("/hello.txt", "1.0") + get("/index.html", "1.0", "Connection: keep-alive\r\n"))
http("connection-close", get("/hello.txt", extra="Connection: close\r\n") + get("/index.html"))
http("bad-garbage", "GARBAGE\r\n\r\n")
http("bad-header", "GET / HTTP/1.1\r\nHost\r\n\r\n")
http("post-405", "POST /hello.txt HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 3\r\n\r\nabc" + get("/"))
http("propfind-501", "PROPFIND / HTTP/1.1\r\nHost: fuzz\r\n\r\n")
http("traversal", get("/../../etc/passwd") + get("/%2e%2e/%2e%2e/etc/passwd") + get("/sub/a%20b.css"))
http("retire-pipelined", get("/hello.txt") + get("/index.html"), flags=EOF_AT_END | RETIRE, chunks=(30,))
http("partial-then-eof", "GET / HTTP/1.1\r\nHo")
# Static HTTP at nginx's level (issue 13): ranges, validators, directories, targets,
# gzip_static, error pages; each also with writes taken at once (a socket with room).
AT_ONCE = 16
for suffix, extra_flags in (("", 0), ("-at-once", AT_ONCE)):
    f = EOF_AT_END | extra_flags
    http("range" + suffix, get("/hello.txt", extra="Range: bytes=1-3\r\n") +
         get("/big.bin", extra="Range: bytes=-100\r\n") + get("/hello.txt", extra="Range: bytes=0-1,3-4\r\n") +
         get("/hello.txt", extra="Range: bytes=99-\r\n") + get("/hello.txt", extra="Range: bytes=5-1\r\n"), flags=f)
    http("if-range" + suffix, get("/hello.txt", extra="Range: bytes=0-0\r\nIf-Range: \"0-0\"\r\n") +
         get("/hello.txt", extra="Range: bytes=0-0\r\nIf-Range: Thu, 01 Jan 1970 00:00:00 GMT\r\n"), flags=f)
    http("if-none-match" + suffix, get("/hello.txt", extra="If-None-Match: *\r\n") +
         get("/hello.txt", extra="If-None-Match: W/\"x\", \"y\"\r\nIf-None-Match: \"z\"\r\n") +
         get("/hello.txt", extra="If-Match: \"x\"\r\n") +
         get("/hello.txt", extra="If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"), flags=f)
    http("directories" + suffix, get("/sub") + get("/sub?x=1") + get("//sub/") + get("/htm/") + get("/%73ub/"), flags=f)
    http("targets" + suffix, get("http://fuzz/hello.txt?q") + get("http://fuzz") +
         "GET /hello.txt HTTP/1.1\r\n\r\n" + get("/hello.txt"), flags=f)
    http("two-hosts" + suffix, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", flags=f)
    http("gzip-static" + suffix, get("/hello.txt", extra="Accept-Encoding: gzip, br\r\n") +
         get("/hello.txt", extra="Accept-Encoding: gzip;q=0\r\n") +
         get("/hello.txt", extra="Accept-Encoding: gzip\r\nRange: bytes=0-1\r\n") +
         "HEAD /hello.txt HTTP/1.1\r\nHost: fuzz\r\nAccept-Encoding: *\r\n\r\n", flags=f)
    http("error-page" + suffix, get("/missing") + get("/hello.txt", extra="Range: bytes=100-\r\n") +
         get("/%zz"), flags=f)
    http("big-keepalive" + suffix, get("/big.bin") * 3 + get("/hello.txt"), flags=f | PILE_UP)
http("slowloris-timeout", "GET / HTTP/1.1\r\nHost: fu", flags=TIMEOUT)
http("idle-timeout", get("/hello.txt"), flags=TIMEOUT)
http("header-431", "GET / HTTP/1.1\r\nHost: fuzz\r\nX-Big: " + "h" * 17000 + "\r\n\r\n")
http("url-414", get("/" + "u" * 9000))
http("body-413", "GET / HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 2000000\r\n\r\nabc")
http("smuggle-cl-te", "POST / HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
http("smuggle-two-cl", "GET / HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
http("get-with-body", "GET /hello.txt HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5\r\n\r\nhello" + get("/"))
http("chunked-body", "POST / HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")

with open(os.path.join(ROOT, "conf", "preforkd.toml")) as f:
    put("config", "repo-preforkd.toml", f.read())
MINIMAL = '[[listen]]\naddress = "127.0.0.1:8080"\nprotocol = "http"\nroot = "html"\n'
put("config", "minimal.toml", MINIMAL)
put("config", "full.toml", 'workers = 4\npid_file = "run/p.pid"\ngraceful_timeout = 2.5\nworker_timeout = 10\n'
    '[log]\nlevel = "debug"\nerror_log = "/tmp/x.log"\n' + MINIMAL +
    '[[listen]]\nname = "e"\naddress = "[::1]:9007"\nprotocol = "udp-echo"\n'
    '[[listen]]\naddress = "[::1]:9007"\nprotocol = "tcp-echo"\nbacklog = 64\n')
put("config", "control.toml", 'control_socket = "run/ctl.sock"\nupgrade_handover = "manual"\n' + MINIMAL)
put("config", "err-handover.toml", 'upgrade_handover = "later"\n' + MINIMAL)
put("config", "err-unknown-key.toml", "wrokers = 2\n" + MINIMAL)
put("config", "err-workers-zero.toml", "workers = 0\n" + MINIMAL)
put("config", "err-protocol.toml", MINIMAL.replace('"http"', '"smtp"'))
put("config", "err-duplicate-address.toml", MINIMAL + MINIMAL)
put("config", "err-no-listen.toml", "workers = 1\n")
put("config", "err-syntax.toml", "workers = [1,\n[[listen]\n")
put("config", "err-root-on-echo.toml", '[[listen]]\naddress = "127.0.0.1:1"\nprotocol = "tcp-echo"\nroot = "html"\n')
put("config", "err-timeout.toml", "graceful_timeout = -1\n" + MINIMAL)
put("config", "durations.toml", 'graceful_timeout = "1m30s"\nworker_timeout = "500ms"\n' + MINIMAL +
    'header_timeout = "1.5s"\nidle_timeout = "1h"\nsend_timeout = "2m 5s 10ms"\n')
put("config", "err-duration-unit.toml", 'graceful_timeout = "30x"\n' + MINIMAL)
put("config", "err-duration-order.toml", 'worker_timeout = "30s1m"\n' + MINIMAL)
put("config", "err-address.toml", MINIMAL.replace("127.0.0.1:8080", "localhost:99999"))
EXEC = ('[exec]\ncommand = ["sh", "-c", "exec true"]\nready = "2s"\nstop_signal = "QUIT"\nreopen_signal = "none"\n'
        'environment = { APP = "1" }\n[[listen]]\nname = "http"\naddress = "127.0.0.1:8000"\nprotocol = "tcp"\n'
        '[[listen]]\nname = "dns"\naddress = "127.0.0.1:8000"\nprotocol = "udp"\n')
put("config", "exec.toml", EXEC)
put("config", "err-exec-protocol.toml", EXEC.replace('"tcp"', '"http"'))
put("config", "err-exec-max-requests.toml", "max_requests = 10\n" + EXEC)


VERSION = 3


def frame(mtype, payload=b"", version=VERSION, length=None):
    n = len(payload) if length is None else length
    return struct.pack("<BBBBI", version, mtype, 0, 0, n) + payload


def counters(a, b, c, protocol=()):
    """The three counters, then the protocols' own: (name, gauge, value), sorted by name."""
    out = struct.pack("<QQQI", a, b, c, len(protocol))
    for name, gauge, value in protocol:
        out += bytes([1 if gauge else 0, len(name)]) + name + struct.pack("<Q", value)
    return out


def string(s):
    return struct.pack("<I", len(s)) + s


start = frame(1, struct.pack("<II", 3, 1) + string(b"/etc/preforkd.toml") + string(MINIMAL.encode()) +
              struct.pack("<III", 2, 4, 5))
put("ipc", "start", start)
put("ipc", "ready", frame(2))
put("ipc", "heartbeat", frame(3, counters(10, 2, 30)))
put("ipc", "retire", frame(4, struct.pack("<I", 500)))
put("ipc", "draining", frame(5, counters(1, 1, 1)))
put("ipc", "stream", frame(2) + frame(3, counters(1, 2, 3)) * 3 + frame(5, counters(4, 0, 9)))
put("ipc", "heartbeat-protocol-counters",
    frame(3, counters(10, 2, 30, [(b"kv_commands", False, 99), (b"kv_keys", True, 7)])))
put("ipc", "bad-version", frame(2, version=2))
put("ipc", "bad-counter-name", frame(3, counters(1, 1, 1, [(b"kv\n# HELP x", False, 1)])))
put("ipc", "bad-counter-order", frame(3, counters(1, 1, 1, [(b"b", False, 1), (b"a", False, 1)])))
put("ipc", "bad-counter-count", frame(3, struct.pack("<QQQI", 1, 1, 1, 0xFFFFFFFF)))
put("ipc", "bad-huge-length", frame(3, length=0xFFFFFFF0))
put("ipc", "bad-unknown-type", frame(99, b"x"))
put("ipc", "bad-truncated-payload", frame(3, counters(1, 2, 3)[:10], length=10))
put("ipc", "bad-trailing-bytes", frame(2, b"\0"))
put("ipc", "bad-fd-count", frame(1, struct.pack("<II", 1, 0) + string(b"p") + string(b"t") + struct.pack("<I", 0xFFFFFFFF)))
