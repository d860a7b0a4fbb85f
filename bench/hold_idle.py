#!/usr/bin/env python3
# Holds N idle keep-alive HTTP/1.1 connections open to 127.0.0.1 for bench/run.sh (issue 6 idle-connection scenario).
"""Open N connections, send one request on each and read its response (so each
is an idle keep-alive connection, not a half-sent head), then hold them until
SIGTERM/SIGINT or --max-seconds. Prints "ready N" when all are open, and on
exit "alive N" (connections the server had not closed). Runs in its own
process so that its descriptors do not count against the server's or wrk's
open-file limit."""

import argparse
import resource
import select
import signal
import socket
import sys
import time


def read_response(sock: socket.socket) -> None:
    """Reads one response with a Content-Length body (all the server sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response body")
        body += chunk


def alive(socks: list) -> int:
    """Connections not closed by the peer (a closed one polls readable with EOF)."""
    poller = select.poll()
    by_fd = {}
    for s in socks:
        poller.register(s, select.POLLIN | select.POLLHUP | select.POLLERR)
        by_fd[s.fileno()] = s
    dead = set()
    for fd, _ in poller.poll(0):
        s = by_fd[fd]
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                dead.add(fd)
        except BlockingIOError:
            pass
        except OSError:
            dead.add(fd)
    return len(socks) - len(dead)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--path", default="/hello")
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    stop = False

    def on_signal(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n\r\n"
    ).encode()
    socks = []
    deadline = time.monotonic() + args.max_seconds
    for _ in range(args.count):
        if stop or time.monotonic() > deadline:
            break
        s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        s.sendall(request)
        read_response(s)
        socks.append(s)
    print(f"ready {len(socks)}", flush=True)
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    print(f"alive {alive(socks)}", flush=True)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
