"""The lab's answering server: ``python -m flowviz.lab.server --ports 20229 --name task``.

Plain sockets on the given ports, TCP and UDP, answering every request with
``flowviz-lab <name> <request>``. No name lookups of any kind (they would send
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
            else:
                try:
                    data = s.recv(2048)
                except (BlockingIOError, ConnectionError):
                    data = b""
                if data:
                    try:
                        s.sendall(prefix + data)
                    except OSError:
                        pass
                sel.unregister(s)
                s.close()


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
