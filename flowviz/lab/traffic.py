"""Real requests through a lab scenario: ``flowviz lab traffic``.

Sockets are made inside the source namespace (setns on this thread, then
back), so the requests cross the whole path and the latency measured here is
the path's. Servers answer every request (flowviz.lab.server).
"""

from __future__ import annotations

import socket
import statistics
import sys
import time
from typing import TYPE_CHECKING, Optional

from ..errors import LabError
from ..netns import entered
from .net import netns_exists

if TYPE_CHECKING:
    from .scenarios import Target


IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3   # linux/in.h: set DF, ignore the path MTU


def one_request(target, proto: str, *, timeout: float = 1.0, seq: int = 0,
                size: Optional[int] = None, sport: Optional[int] = None) -> Optional[float]:
    """Send one request (``size`` payload bytes, else a short line; from port ``sport``, else one the
    kernel picks, which may be an earlier request's); its round-trip time in seconds, or None when
    unanswered."""
    payload = f"flowviz seq={seq}\n".encode()
    if size is not None:
        payload = payload[:size].ljust(size, b".")
    with entered(target.netns):
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        s = socket.socket(socket.AF_INET, kind)
        if sport is not None:
            s.bind(("", sport))
    if size is not None and proto == "udp":
        # DF set, and the size asked for whatever path MTU was learned before: a full-size packet
        s.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
    s.settimeout(timeout)
    t0 = time.perf_counter()
    try:
        if proto == "tcp":
            s.connect((target.addr, target.port))
            s.sendall(payload)
            data = s.recv(2048)
        else:   # connected, as a client is: its IP IDs start at random, so two requests differ
            s.connect((target.addr, target.port))
            s.send(payload)
            data = s.recv(2048)
    except OSError:
        return None
    finally:
        s.close()
    return time.perf_counter() - t0 if data.startswith(b"flowviz-lab ") else None


def run_traffic(scenario: str, *, count: int, rate: float, proto: str, size: Optional[int] = None) -> int:
    from . import scenarios
    from .state import LabState
    st = LabState.load()
    target = scenarios.TARGETS[scenario]
    if scenario not in st.scenarios or not netns_exists(target.netns):
        raise LabError(f"scenario {scenario} is not up: run `flowviz lab up --scenario {scenario}` first")
    print(f"{scenario}: {target.label} ({proto}{f', {size} bytes' if size else ''}), {count} requests at {rate:g}/s")
    lat: list[float] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(count):
        r = one_request(target, proto, seq=i, size=size)
        if r is not None:
            lat.append(r)
        delay = start + (i + 1) * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    lost = count - len(lat)
    line = f"sent {count}  answered {len(lat)}  lost {lost}"
    if lat:
        ms = sorted(x * 1000 for x in lat)
        p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
        line += (f"  latency ms min {ms[0]:.3f} avg {statistics.fmean(ms):.3f} p50 {statistics.median(ms):.3f}"
                 f" p99 {p99:.3f} max {ms[-1]:.3f}")
    print(line)
    sys.stdout.flush()
    return 0 if lost == 0 else 1


def wait_answered(target: Target, timeout: float = 5.0) -> Optional[float]:
    """Latency (s) of one answered TCP request to the target, trying until ``timeout``; None if never."""
    deadline = time.monotonic() + timeout
    while True:
        lat = one_request(target, "tcp", timeout=1.0)
        if lat is not None or time.monotonic() > deadline:
            return lat
        time.sleep(0.1)
