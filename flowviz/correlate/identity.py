"""What makes two sightings one packet, and when the same bytes twice are not.

Identity across hops is what NAT, routing and encapsulation keep: the innermost
packet's IP protocol, IPv4 ID (IPv6 flow label), IP length, TCP sequence/ack/flags,
UDP length, ICMP type/code/sequence and the first payload bytes. Addresses, ports,
TTL, MACs and outer headers are left out because those are what the path rewrites.
"""

from __future__ import annotations

from typing import Final, Optional

from ..model import ICMP, TCP, UDP, Frame, HopEvent, IPv4

PAYLOAD_KEY_BYTES: Final = 8       # payload bytes in the identity (a VXLAN-wrapped live
                                   # snapshot of 128 bytes still holds 8 inner payload bytes)
PAYLOAD_KEY_BYTES_V6: Final = 24   # IPv6 has no IP ID: more payload must tell packets apart
                                   # (neighbour solicitations differ only in the target's low bytes)
DUPLICATE_NS: Final = 1_000_000    # identical bytes at one place within 1 ms: seen twice
TCP_SYN, TCP_FIN, TCP_ACK = 0x02, 0x01, 0x10


def identity(frame: Frame):
    """What stays the same for one packet along its whole path (None: cannot tell)."""
    f = frame.innermost
    ip = f.ip
    if ip is not None:
        l4 = f.l4
        inv: tuple
        if type(l4) is TCP:
            inv = (l4.seq, l4.ack, l4.flags, l4.window)
        elif type(l4) is UDP:
            inv = (l4.length,)
        elif type(l4) is ICMP:
            inv = (l4.type, l4.code, l4.seq)
        else:
            inv = ()
        if type(ip) is IPv4:
            return (ip.proto, ip.id, ip.length, inv, f.payload[:PAYLOAD_KEY_BYTES])
        return (ip.proto, ip.flow, ip.length, inv, f.payload[:PAYLOAD_KEY_BYTES_V6])  # type: ignore[union-attr]
    if f.arp is not None:
        a = f.arp
        return ("arp", a.op, a.sha, a.spa, a.tpa)
    return None


def flow_tuple(frame: Frame):
    """(proto, src, sport, dst, dport) of the innermost packet; ICMP echo uses its id as both ports."""
    f = frame.innermost
    ip = f.ip
    if ip is None:
        return None
    l4 = f.l4
    if l4 is None:
        return (ip.proto, ip.src, None, ip.dst, None)
    if type(l4) is ICMP:
        return (ip.proto, ip.src, l4.id, ip.dst, l4.id)
    return (ip.proto, ip.src, l4.sport, ip.dst, l4.dport)  # type: ignore[union-attr]


def reverse(t):
    return (t[0], t[3], t[4], t[1], t[2])


def answering_ack(frame: Frame) -> Optional[int]:
    """The TCP ack that acknowledges this segment (None: not TCP)."""
    l4 = frame.innermost.l4
    if type(l4) is not TCP:
        return None
    n = l4.seglen + (1 if l4.flags & TCP_SYN else 0) + (1 if l4.flags & TCP_FIN else 0)
    return (l4.seq + n) & 0xFFFFFFFF


def seen_before(seen: dict, ev: HopEvent, spot) -> Optional[str]:
    """"duplicate", "new" (another packet with the same content), or None (joins the journey).

    ``seen`` maps (netns, ifname, dir) to a journey's last sighting there. The same bytes at
    the same place and direction again are the same sighting twice (within a millisecond) or
    a retransmission; different bytes there are this packet coming back after a rewrite — a
    capture without directions sees a node's eth0 take it in plain and send it out wrapped in
    VXLAN.
    """
    old = seen.get(spot)
    if old is None or old.data != ev.data:
        return None
    if abs(ev.ts_ns - old.ts_ns) <= DUPLICATE_NS:
        return "duplicate"
    return "new"
