"""Which packets a user asked to see (``--dport/--sport/--port/--host/--proto``, and in replay a
tcpdump expression, ``-f EXPR``).

One criterion set, checked against each header level of a sighting (the outer
packet and, under VXLAN, the inner one): a level matches when it meets every
criterion given. The expression, when there is one, must match too, at either
level (flowviz.pcapexpr). The live engine passes the flags to BPF as ``-D``
macros; this class is the userspace side.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Optional

from .errors import BadInput
from .model import Frame, HopEvent

PROTOS = ("tcp", "udp", "icmp")


@dataclass(frozen=True, slots=True)
class FlowFilter:
    dport: Optional[int] = None
    sport: Optional[int] = None
    port: Optional[int] = None      #: either port
    host: Optional[str] = None      #: either address
    proto: Optional[str] = None     #: "tcp", "udp" or "icmp"
    expr: Any = None                #: a flowviz.pcapexpr.Expression (replay), or None

    def __post_init__(self):
        for name in ("dport", "sport", "port"):
            v = getattr(self, name)
            if v is not None and not 0 < v < 65536:
                raise BadInput(f"--{name} {v}: a port is 1..65535")
        if self.host is not None:
            try:
                object.__setattr__(self, "host", str(ipaddress.ip_address(self.host)))
            except ValueError:
                raise BadInput(f"--host {self.host!r}: not an IP address") from None
        if self.proto is not None and self.proto not in PROTOS:
            raise BadInput(f"--proto {self.proto!r}: one of {', '.join(PROTOS)}")

    @property
    def empty(self) -> bool:
        return (self.dport is None and self.sport is None and self.port is None
                and self.host is None and self.proto is None and self.expr is None)

    def never_matches(self, frame: Frame) -> bool:
        """True when no later hop can make this packet match, so it need not be kept at all: TCP or
        ICMP was asked for and the packet's own protocol (innermost) is another. NAT rewrites
        addresses and ports, and VXLAN wraps a packet in UDP, so every other criterion (and UDP)
        is decided when the journey ends."""
        p = self.proto
        return p is not None and p != "udp" and frame.innermost.proto != p

    def matches_sighting(self, ev: HopEvent, frame: Frame) -> bool:
        """The flags at some header level, and the expression (if any) at some level too."""
        if not self.matches(frame):
            return False
        return self.expr is None or self.expr.matches(ev.data, ev.linktype, ev.wire_len, frame)

    def matches(self, frame: Frame) -> bool:
        """True when the outer packet or any encapsulated one meets every criterion."""
        f: Optional[Frame] = frame
        while f is not None:
            if self._level(f):
                return True
            f = f.inner
        return False

    def _level(self, f: Frame) -> bool:
        if self.proto is not None and f.proto != self.proto:
            return False
        if self.dport is not None and f.dport != self.dport:
            return False
        if self.sport is not None and f.sport != self.sport:
            return False
        if self.port is not None and self.port not in (f.sport, f.dport):
            return False
        if self.host is not None and self.host not in (f.src, f.dst):
            return False
        return True

    def describe(self) -> str:
        parts = [f"{k} {getattr(self, k)}" for k in ("proto", "host", "port", "sport", "dport")
                 if getattr(self, k) is not None]
        if self.expr is not None:
            parts.append(f"'{self.expr.text}'")
        return ", ".join(parts) if parts else "everything"
