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
    for port in ports:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((bind, port))
        t.listen(128)
        t.setblocking(False)
        sel.register(t, selectors.EVENT_READ, "tcp-listen")
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind((bind, port))
        u.setblocking(False)
        sel.register(u, selectors.EVENT_READ, "udp")
    prefix = f"flowviz-lab {name} ".encode()
    bulk: dict = {}   # sink connections → bytes read so far
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)   # the parent stops reading after "ready"
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if key.data == "tcp-listen":
                try:
                    conn, _ = s.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, "tcp")
            elif key.data == "udp":
                try:
                    data, peer = s.recvfrom(2048)
                except BlockingIOError:
                    continue
                s.sendto(prefix + data, peer)
            elif key.data == "bulk":
                try:
                    data = s.recv(1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    data = b""
                if data:
                    bulk[s] += len(data)
                    continue
                _answer(s, prefix + str(bulk.pop(s)).encode())
                sel.unregister(s)
                s.close()
            else:
                try:
                    data = s.recv(2048)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    data = b""
                if data.startswith(b"BULK"):
                    bulk[s] = len(data) - 4
                    sel.modify(s, selectors.EVENT_READ, "bulk")
                    continue
                if data:
                    _answer(s, prefix + data)
                sel.unregister(s)
                s.close()


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
