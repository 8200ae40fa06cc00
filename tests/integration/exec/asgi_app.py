# An ASGI app for uvicorn under preforkd's [exec]: `uvicorn --fd 3 asgi_app:app`
# serves the slot's socket; readiness is by duration (ready = "2s"), since
# uvicorn does not speak sd_notify. The X-* headers tell the tests who answered.
import os

BODY = b"hello from preforkd\n"
HEADERS = [
    (b"content-type", b"text/plain"),
    (b"x-slot", os.environ.get("PREFORKD_SLOT", "?").encode()),
    (b"x-generation", os.environ.get("PREFORKD_GENERATION", "?").encode()),
    (b"x-pid", str(os.getpid()).encode()),
]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = BODY if scope["path"] == "/hello.txt" else b"ok\n"
    await send({"type": "http.response.start", "status": 200,
                "headers": HEADERS + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
