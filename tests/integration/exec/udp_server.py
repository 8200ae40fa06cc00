# A UDP echo server for preforkd's [exec]: the slot's datagram socket is fd 3
# (LISTEN_FDS=1); it answers every datagram with the same bytes ("whoami" with
# its slot and generation, for the tests), says READY=1 on NOTIFY_SOCKET, and on
# the stop signal answers the datagram in hand and exits: what is still queued on
# the socket is read by the successor, which shares it.
import os
import select
import signal
import socket
import sys

if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1":
    sys.exit("no socket: LISTEN_PID %s, LISTEN_FDS %s" % (os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")))
sock = socket.socket(fileno=3)  # family and type come from the fd
stopping = False


def stop(signum, frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGUSR1, lambda signum, frame: print("SIGUSR1: reopening logs", file=sys.stderr, flush=True))


def notify(state):
    address = os.environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as n:
        n.sendto(state.encode(), address)


notify("READY=1\nSTATUS=echoing on fd 3")
while not stopping:
    readable, _, _ = select.select([sock], [], [], 0.2)
    if not readable:
        continue
    try:
        data, peer = sock.recvfrom(65536)
    except BlockingIOError:  # the successor took it first
        continue
    if data == b"whoami":
        data = ("slot %s gen %s" % (os.environ["PREFORKD_SLOT"], os.environ["PREFORKD_GENERATION"])).encode()
    sock.sendto(data, peer)
