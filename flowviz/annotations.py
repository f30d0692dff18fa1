"""Typed annotations: what an optional kernel hook saw happen to a packet.

The tracepoints see a packet at every device; they cannot see *why* it
changed between two devices. Where the running kernel lets flowviz attach
kprobes (stock distribution kernels do), small programs on IPVS, VXLAN,
bridge and NAT functions record what those functions decided for a followed
skb, and the skb's next sighting carries it (:attr:`HopEvent.notes`). The
correlator then hangs each annotation on the change it explains
(:attr:`Change.note`), and an IPVS decision becomes its own change kind.

These are values, not display text: addresses, ports, VNIs and marks stay as
such, and only render/ and the TUI format them (:func:`note_text`). One
sighting stream, enriched: a hook never adds an event of its own.
"""

from __future__ import annotations

import json
from typing import NamedTuple, Optional, Union

from .model import endpoint, namedtuple_json

#: netfilter hook numbers (enum nf_inet_hooks) → names
NF_HOOKS = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}


class Tuple5(NamedTuple):
    """A connection tuple as conntrack or IPVS keeps it."""

    proto: int
    src: str
    sport: int
    dst: str
    dport: int

    def text(self) -> str:
        return f"{endpoint(self.src, self.sport)} → {endpoint(self.dst, self.dport)}"


class IpvsNote(NamedTuple):
    """IPVS forwarded the packet to a real server (ip_vs_nat_xmit), or rewrote its reply."""

    real: str                 #: the real server chosen
    real_port: int
    vaddr: Optional[str]      #: the virtual service's address (None for a fwmark service)
    vport: int
    fwmark: int               #: the service's fwmark (0: an addr:port service)
    scheduler: str            #: "rr", "wlc", ... ("" when unknown)
    new: bool                 #: the scheduler picked the real server for this packet (a new connection)
    client: Optional[str]     #: the connection's client address
    cport: int
    proto: int
    reply: bool = False       #: a reply, rewritten back on its way out (ip_vs_conn_out_get)
    kind: str = "ipvs"

    def service(self) -> str:
        return f"FWM {self.fwmark}" if self.fwmark else endpoint(self.vaddr, self.vport)


class VxlanNote(NamedTuple):
    """The VXLAN device encapsulated (tx: vxlan_xmit_one) or decapsulated (rx: vxlan_rcv) the packet."""

    dir: str                  #: "tx" or "rx"
    vni: int
    remote: Optional[str]     #: tx: the FDB entry's remote (the peer VTEP); rx: the outer source
    port: int                 #: tx: the remote UDP port; rx: the receiving socket's port
    fdb_mac: Optional[str] = None   #: tx: the inner destination MAC the FDB was searched for
    kind: str = "vxlan"


class BridgeNote(NamedTuple):
    """A bridge's forwarding decision (br_forward: an FDB hit; br_flood: unknown destination)."""

    bridge: str               #: the bridge device
    port: Optional[str]       #: the egress port (None for a flood: every port)
    flood: bool
    kind: str = "bridge"


class NatNote(NamedTuple):
    """Netfilter NAT rewrote the packet (nf_nat_manip_pkt), with its conntrack entry."""

    hook: str                 #: "prerouting", "postrouting", "output", "input", or "?"
    manip: str                #: "snat" or "dnat"
    reply_dir: bool           #: the packet travels in the connection's reply direction
    orig: Tuple5              #: conntrack's original tuple
    reply: Tuple5             #: conntrack's reply tuple
    kind: str = "nat"

    def before_after(self) -> tuple[Tuple5, Tuple5]:
        """The packet's tuple before and after this NAT, from the conntrack entry."""
        def inv(t: Tuple5) -> Tuple5:
            return Tuple5(t.proto, t.dst, t.dport, t.src, t.sport)
        return (self.reply, inv(self.orig)) if self.reply_dir else (self.orig, inv(self.reply))


Note = Union[IpvsNote, VxlanNote, BridgeNote, NatNote]
NOTE_TYPES = {t._field_defaults["kind"]: t for t in (IpvsNote, VxlanNote, BridgeNote, NatNote)}


def note_text(n: Note) -> str:
    """One line for people."""
    k = n.kind
    if k == "ipvs":
        if n.reply:
            return f"ipvs reply from real server {endpoint(n.real, n.real_port)} ({n.service()})"
        sched = f" {n.scheduler}" if n.scheduler else ""
        how = "new connection, scheduled" if n.new else "existing connection"
        return f"ipvs {n.service()}{sched} → real server {endpoint(n.real, n.real_port)} ({how})"
    if k == "vxlan":
        if n.dir == "tx":
            mac = f" for {n.fdb_mac}" if n.fdb_mac else ""
            return f"vxlan vni {n.vni} → remote {endpoint(n.remote, n.port)} (fdb{mac})"
        return f"vxlan vni {n.vni} received from {n.remote or '?'} on udp port {n.port}"
    if k == "bridge":
        if n.flood:
            return f"bridge {n.bridge}: unknown destination, flooded to every port"
        return f"bridge {n.bridge}: fdb hit → port {n.port}"
    if k == "nat":
        before, after = n.before_after()
        return f"{n.manip} at {n.hook}: {before.text()} ⇒ {after.text()}"
    return k


def note_to_json(n: Note) -> dict:
    return namedtuple_json(n)


def note_from_json(d: dict) -> Optional[Note]:
    """The inverse of :func:`note_to_json`; None for anything incomplete or of the wrong type (notes
    arrive from capture files, which anyone can write)."""
    t = NOTE_TYPES.get(d.get("kind")) if isinstance(d, dict) else None
    if t is None:
        return None
    args = {}
    for f in t._fields:
        if f not in d and f not in t._field_defaults:
            return None
        v = d.get(f, t._field_defaults.get(f))
        if t is NatNote and f in ("orig", "reply"):
            if not isinstance(v, dict) or set(v) != set(Tuple5._fields):
                return None
            v = Tuple5(**v)
            if not all(isinstance(x, int) for x in (v.proto, v.sport, v.dport)):
                return None
        elif v is not None and not isinstance(v, (int, str)):
            return None
        args[f] = v
    return t(**args)


def notes_encode(notes: tuple) -> Optional[str]:
    """Notes as compact JSON for a recording's packet comment (no spaces: one token)."""
    if not notes:
        return None
    return json.dumps([note_to_json(n) for n in notes], separators=(",", ":"), ensure_ascii=True)


def notes_decode(text: Optional[str]) -> tuple:
    if not text:
        return ()
    try:
        raw = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(raw, list):
        return ()
    return tuple(n for n in (note_from_json(d) for d in raw) if n is not None)
