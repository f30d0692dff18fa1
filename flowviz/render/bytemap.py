"""A frame drawn as bytes: each header's offset and length, stacked as on the wire.

For a VXLAN frame it adds what a class needs: the VXLAN header's bytes with the VNI's 24 bits,
where the outer UDP source port comes from, and the overhead worked out from this packet's own
lengths ("124 − 74 = 50", "1500 − 50 = 1450"). At a decap hop the frame drawn is the wrapped one
the previous hop saw, since that is what was taken apart here. Used by the TUI's packet panel and by
``flowviz teach``; plain lines, so any output can show them.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from ..model import (ARP, ICMP, SLL, TCP, UDP, VXLAN, ChangeKind, Dot1Q, Ether, Frame, Hop, IPv4, IPv6, Journey,
                     LINKTYPE_ETHERNET)
from ..reference import VXLAN_PORT
from ..sanitize import safe

UNDERLAY_MTU = 1500   #: the Ethernet MTU the overhead is taken from


class Segment(NamedTuple):
    offset: int
    size: int
    name: str       #: "outer IPv4", "VXLAN", "inner TCP", "payload"
    detail: str     #: the fields that matter, for people


def _size(layer, data: bytes, off: int) -> int:
    """How many bytes this header takes in ``data`` at ``off`` (the nominal size where the bytes
    were cut short)."""
    t = type(layer)
    if t is Ether:
        return 14
    if t is Dot1Q:
        return 4
    if t is SLL:
        return 16 if layer.ifindex is None else 20
    if t is IPv4:
        return (data[off] & 0x0F) * 4 if off < len(data) and data[off] & 0x0F >= 5 else 20
    if t is IPv6:
        return 40
    if t is TCP:
        return (data[off + 12] >> 4) * 4 if off + 12 < len(data) and data[off + 12] >> 4 >= 5 else 20
    if t is ARP:
        return 28
    return 8   # UDP, ICMP, VXLAN


def _detail(layer) -> str:
    t = type(layer)
    if t is Ether:
        return f"{layer.src} → {layer.dst}  type {layer.type:#06x}"
    if t is Dot1Q:
        return f"VLAN {layer.vid}"
    if t is IPv4:
        return f"{layer.src} → {layer.dst}  proto {layer.proto}  ttl {layer.ttl}  total length {layer.length}"
    if t is IPv6:
        return f"{layer.src} → {layer.dst}  next header {layer.proto}  payload length {layer.length}"
    if t is TCP:
        return f"{layer.sport} → {layer.dport}"
    if t is UDP:
        return f"{layer.sport} → {layer.dport}  length {layer.length}"
    if t is ICMP:
        return f"type {layer.type} code {layer.code}"
    if t is VXLAN:
        return f"flags {layer.flags:#04x}  VNI {layer.vni}"
    if t is ARP:
        return f"who has {layer.tpa}? tell {layer.spa}"
    return safe(str(layer))


def segments(frame: Frame, data: bytes, wire_len: int) -> list[Segment]:
    """The frame's headers at their offsets, then the payload (to ``wire_len``)."""
    out: list[Segment] = []
    off, level, f = 0, 0, frame
    wrapped = frame.inner is not None
    while f is not None:
        for layer in f.layers:
            size = _size(layer, data, off)
            name = type(layer).__name__
            if name == "Ether":
                name = "Ethernet"
            if wrapped and type(layer) is not VXLAN:
                name = f"{'outer' if level == 0 else 'inner'} {name}"
            out.append(Segment(off, size, name, _detail(layer)))
            off += size
        f, level = f.inner, level + 1
    if wire_len > off:
        out.append(Segment(off, wire_len - off, "payload", ""))
    return out


def _bar(segs: list[Segment], width: int = 96) -> list[str]:
    """Two lines: the offsets, and the headers side by side in ``width`` columns, each as wide as its
    name and the columns to spare shared out by size."""
    total = max(1, sum(s.size for s in segs))
    labels = [{"Ethernet": "Eth", "payload": "data"}.get(s.name.split()[-1], s.name.split()[-1]) for s in segs]
    spare = max(0, width - 1 - sum(len(label) + 2 for label in labels))
    heads, marks = "", ""
    for s, label in zip(segs, labels):
        w = len(label) + 2 + spare * s.size // total
        heads += ("|" + label).ljust(w)
        marks += str(s.offset).ljust(w)
    return [marks.rstrip(), heads + "|"]


def _brackets(segs: list[Segment], width: int = 96) -> Optional[str]:
    """Under the bar of a VXLAN frame: which bytes the tunnel added and which are the inner frame
    (None when no inner header is drawn: no tunnel, or a cut or damaged inner frame)."""
    bar = _bar(segs, width)[1]
    cut = 0
    for s in segs:   # where the inner frame starts, in the bar's columns
        if s.name.startswith("inner"):
            added = s.offset
            break
        cut = bar.index("|", cut + 1) if "|" in bar[cut + 1:] else cut
    else:
        return None
    outer = f" VXLAN adds {added} bytes " if cut >= 24 else f" +{added} "
    inner = " the container's frame, unchanged " if len(bar) - cut >= 38 else " inner frame "
    return ("└" + outer.center(max(0, cut - 2), "─") + "┘")[:cut] + "└" + inner.center(len(bar) - cut - 2, "─") + "┘"


def _wrapped(journey: Journey, i: int) -> tuple[Hop, str]:
    """The hop whose frame to draw for hop ``i`` (itself, or at a decap the wrapped frame before it),
    and the title that says so."""
    hop = journey.hops[i]
    if hop.frame.vxlan is None and i > 0 and any(c.kind is ChangeKind.DECAP for c in hop.changes):
        prev = journey.hops[i - 1]
        if prev.frame.vxlan is not None:
            return prev, (f"hop {hop.seq}  {safe(hop.place)} unwrapped the frame that hop {prev.seq} saw at "
                          f"{safe(prev.place)}, {prev.event.wire_len} bytes on the wire")
    return hop, f"hop {hop.seq}  {safe(hop.place)}  {hop.event.wire_len} bytes on the wire"


def diagram(journey: Journey, i: int, width: int = 96) -> list[str]:
    """Hop ``i``'s frame as bytes; for VXLAN the encapsulation explained from this packet's lengths."""
    hop, title = _wrapped(journey, i)
    ev = hop.event
    if ev.linktype != LINKTYPE_ETHERNET and not hop.frame.layers:
        return [f"hop {hop.seq}: no headers to draw"]
    segs = segments(hop.frame, ev.data, ev.wire_len)
    out = [title]
    out += _bar(segs, width)
    brackets = _brackets(segs, width)   # None unless an inner frame's headers are drawn
    if brackets is not None:
        out.append(brackets)
    out.append("")
    out.append(f"{'offset':>6} {'bytes':>5}  header")
    for s in segs:
        out.append(f"{s.offset:>6} {s.size:>5}  {s.name:<15} {s.detail}".rstrip())
    if hop.frame.vxlan is not None:
        out += _vxlan_lines(hop, segs)
    return out


def _vxlan_lines(hop: Hop, segs: list[Segment]) -> list[str]:
    f, data = hop.frame, hop.event.data
    vx = next(s for s in segs if s.name == "VXLAN")
    inner_start = vx.offset + vx.size
    raw = data[vx.offset:vx.offset + 8]
    vni = f.vxlan.vni
    bits = f"{vni:024b}"
    out = ["", "VXLAN header, byte by byte:"]
    if len(raw) == 8:
        out.append(f"  {raw[0]:02x} | {raw[1]:02x} {raw[2]:02x} {raw[3]:02x} | {raw[4]:02x} {raw[5]:02x} {raw[6]:02x}"
                   f" | {raw[7]:02x}")
    out.append(f"  flags {f.vxlan.flags:#04x} (I = {f.vxlan.flags >> 3 & 1}: the VNI is valid) | reserved | "
               f"VNI | reserved")
    out.append(f"  VNI {vni} = {vni:#08x} = " + " ".join(bits[k:k + 4] for k in range(0, 24, 4)) +
               "  (24 bits: 16 million networks, where a VLAN tag has 12 bits)")
    udp = f.l4
    if type(udp) is UDP:
        out.append("")
        out.append(f"outer UDP {udp.sport} → {udp.dport}: {udp.dport} is VXLAN's port"
                   f"{'' if udp.dport == VXLAN_PORT else f' here (IANA: {VXLAN_PORT})'}. The source port {udp.sport} "
                   "is a hash of the inner packet's flow (the kernel's udp_flow_src_port): every packet of one "
                   "inner connection gets the same outer port, so it keeps one path through ECMP routers and one "
                   "receive queue, while different connections spread.")
    outer_len = hop.event.wire_len
    inner_len = outer_len - inner_start
    ip = f.inner.ip if f.inner is not None else None
    out.append("")
    out.append(f"overhead, from this packet: {outer_len} bytes on the wire − {inner_len} bytes of inner frame = "
               f"{inner_start} bytes (" + " + ".join(str(s.size) for s in segs if s.offset < inner_start) + ")")
    if ip is not None:
        limit = UNDERLAY_MTU - inner_start
        out.append(f"MTU: an underlay of {UNDERLAY_MTU} bytes leaves {UNDERLAY_MTU} − {inner_start} = {limit} for "
                   f"the inner IP packet, which is why overlay devices get MTU {limit}. This one's inner packet is "
                   f"{ip.length + (40 if type(ip) is IPv6 else 0)} bytes: it "
                   f"{'fits' if ip.length <= limit else 'does not fit'}.")
    return out
