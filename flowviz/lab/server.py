"""The lab's answering server: ``python -m flowviz.lab.server --ports 20229 --name task``.

Plain sockets on the given ports, TCP and UDP, answering every request with
``flowviz-lab <name> <request>``. A TCP request that starts with ``BULK``
turns its connection into a sink: everything is read until the sender
closes its side, then the byte count is the answer (for throughput
measurements). No name lookups of any kind (they would send
DNS queries out of the lab). Prints ``ready`` once listening, then nothing.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import sys


def serve(ports: list[int], name: str, bind: str = "0.0.0.0") -> None:
    sel = selectors.DefaultSelector()
    answer = _Answers(sel, f"flowviz-lab {name} ".encode())
    for port in ports:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((bind, port))
        t.listen(128)
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, answer.tcp_listen)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((bind, port))
        u.setblocking(False)
        sel.register(u, selectors.EVENT_READ, answer.udp)
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)   # the parent stops reading after "ready"
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    while True:
        for key, _ in sel.select():
            try:
                key.data(key.fileobj)   # the handler it was registered with
            except BlockingIOError:
                pass   # nothing to read after all


class _Answers:
    """What the server does with a socket that is ready: one method per kind, each registered with the
    selector as the socket's data."""

    def __init__(self, sel, prefix: bytes):
        self.sel = sel
        self.prefix = prefix
        self.bulk: dict = {}   # sink connections → bytes read so far

    def tcp_listen(self, s) -> None:
        conn, _ = s.accept()
        conn.setblocking(False)
        self.sel.register(conn, selectors.EVENT_READ, self.tcp)

    def udp(self, s) -> None:
        data, peer = s.recvfrom(2048)
        s.sendto(self.prefix + data, peer)

    def bulk_sink(self, s) -> None:
        data = _recv(s, 1 << 20)
        if data:
            self.bulk[s] += len(data)
            return
        _answer(s, self.prefix + str(self.bulk.pop(s)).encode())
        self._close(s)

    def tcp(self, s) -> None:
        data = _recv(s, 2048)
        if data.startswith(b"BULK"):
            self.bulk[s] = len(data) - 4
            self.sel.modify(s, selectors.EVENT_READ, self.bulk_sink)
            return
        if data:
            _answer(s, self.prefix + data)
        self._close(s)

    def _close(self, s) -> None:
        self.sel.unregister(s)
        s.close()


def _recv(s: socket.socket, n: int) -> bytes:
    """What the peer sent (b"": it closed, or reset the connection); BlockingIOError: nothing yet."""
    try:
        return s.recv(n)
    except ConnectionError:
        return b""


def _answer(s: socket.socket, data: bytes) -> None:
    try:
        s.setblocking(True)
        s.settimeout(2)
        s.sendall(data)
    except OSError:
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, nargs="+", required=True)
    ap.add_argument("--name", default="server")
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(args.ports, args.name, args.bind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
