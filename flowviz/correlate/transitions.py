"""Naming what changed between two consecutive sightings of one packet.

:func:`classify` asks small questions in turn, each returning its changes: did it move
(veth, bridge), was it routed (TTL), rewritten (DNAT, SNAT), marked, (de)encapsulated;
then kernel-hook notes are hung on the changes they explain, and the last sighting says
how the journey ends (:func:`ending`).
"""

from __future__ import annotations

from typing import Final, Optional, Protocol

from ..gcuntrack import record
from ..model import DROP, ICMP, RX, TX, Change, ChangeKind, Endpoint, Flow, Frame, Hop, HopEvent, Transition


_record: Final = record


def _change(kind: ChangeKind, before: object = None, after: object = None, vni: Optional[int] = None,
            reason: Optional[str] = None, via: Optional[str] = None, note: Optional[tuple] = None) -> Change:
    """``Change(...)``, built without the NamedTuple's own constructor, which is Python code: compiled
    (flowviz/native.py), a third of its time. The fields in Change's order."""
    return _record(Change, kind, before, after, vni, reason, via, note)


def _endpoint(addr: Optional[str], port: Optional[int]) -> Endpoint:
    return _record(Endpoint, addr, port)   # Endpoint(addr, port), as _change


def _flow(f: Frame) -> Flow:
    """The frame's tuple at its own header level, as _change makes a Change."""
    return _record(Flow, f.proto, f.src, f.sport, f.dst, f.dport)


class Topology(Protocol):
    """What the correlator may ask about devices (live topology, or a capture's interface notes)."""

    def crossing(self, a: HopEvent, b: HopEvent) -> Optional[tuple[ChangeKind, Optional[str]]]:
        """(VETH, None) for two ends of a veth pair, (BRIDGE, bridge) for a bridge's ports; None: unknown."""

    def handed_to(self, received: HopEvent, frame: Frame) -> Optional[HopEvent]:
        """The device an rx handler on ``received``'s device passes this frame to, as a sighting.

        A macvlan child gets the frames addressed to its MAC (an ipvlan child, to its IP) from
        its parent's rx handler, which changes skb->dev and goes another round inside the same
        receive call: the receive tracepoint does not fire again, so that hop is inferred here."""

    # optional: ``named(ev) -> HopEvent``, the sighting under the name its namespace has now (a
    # live source names a namespace it has not read yet "inode:N"; its journey ends later)


def classify(pe: HopEvent, pf: Frame, ce: HopEvent, cf: Frame,
             topology: Optional[Topology] = None) -> list[Change]:
    """What changed between two consecutive sightings of one packet."""
    if pf is cf:
        # the same bytes, decoded once (a veth pair's ends, a bridge's ports): nothing in the
        # headers changed, so only the place and the mark can have
        changes = crossing(pe, ce, topology, False)
        if pe.mark is not None or ce.mark is not None:
            changes += mark(pe, ce)
        if ce.notes:
            annotate(changes, ce.notes)
        return changes
    p_in, c_in = pf.innermost, cf.innermost
    routed = p_in.ip is not None and c_in.ip is not None and c_in.ip.ttl < p_in.ip.ttl
    both_tunnelled = pf.vxlan is not None and cf.vxlan is not None
    # (the attributes below exist where they are read: mypy cannot follow these tests)
    routed_outer = not routed and both_tunnelled and cf.ip.ttl < pf.ip.ttl  # type: ignore[union-attr]
    revni = both_tunnelled and pf.vxlan.vni != cf.vxlan.vni  # type: ignore[union-attr]
    tunnel = (cf.vxlan is None) != (pf.vxlan is None) or revni
    changes = crossing(pe, ce, topology, routed or routed_outer) if not tunnel else []
    changes += route(pf, cf, routed, routed_outer)
    changes += nat(p_in, c_in)
    if both_tunnelled and not revni:
        changes += nat(pf, cf)   # NAT of the underlay packet, under the same tunnel
    changes += mark(pe, ce)
    changes += tunnelling(pf, cf, revni)
    if ce.notes:
        annotate(changes, ce.notes)
    return changes


def crossing(pe: HopEvent, ce: HopEvent, topology: Optional[Topology], routed: bool) -> list[Change]:
    """A move to another device: a veth pair or a bridge (from topology, else guessed)."""
    if ce.ifname == pe.ifname and ce.netns == pe.netns:
        return []
    known = topology.crossing(pe, ce) if topology is not None else None
    cross, via = known if known is not None else (_guess_crossing(pe, ce), None)
    if not routed:
        return [_change(cross, pe.place, ce.place, via=via)]
    if pe.netns is not None and ce.netns is not None and pe.netns != ce.netns:
        # routed *and* in another namespace: sightings in between were not captured
        return [_change(ChangeKind.VETH, pe.place, ce.place)]
    return []


def route(pf: Frame, cf: Frame, routed: bool, routed_outer: bool) -> list[Change]:
    if routed:
        return [_change(ChangeKind.ROUTE, pf.innermost.ip.ttl, cf.innermost.ip.ttl)]  # type: ignore[union-attr]
    if routed_outer:
        return [_change(ChangeKind.ROUTE, pf.ip.ttl, cf.ip.ttl)]  # type: ignore[union-attr]
    return []


def mark(pe: HopEvent, ce: HopEvent) -> list[Change]:
    """The fwmark set or changed (a mark that goes back to 0 in another namespace is not news)."""
    if pe.mark is None and ce.mark is None:
        return []
    pm, cm = pe.mark or 0, ce.mark or 0
    if cm != pm and ce.mark is not None and (cm != 0 or pe.netns == ce.netns):
        return [_change(ChangeKind.MARK, pm, cm)]
    return []


def tunnelling(pf: Frame, cf: Frame, revni: bool) -> list[Change]:
    out = []
    if (pf.vxlan is not None and cf.vxlan is None) or revni:
        out.append(_change(ChangeKind.DECAP, _flow(pf), _flow(pf.inner), vni=pf.vxlan.vni))  # type: ignore
    if (cf.vxlan is not None and pf.vxlan is None) or revni:
        out.append(_change(ChangeKind.ENCAP, _flow(cf.inner), _flow(cf), vni=cf.vxlan.vni))  # type: ignore
    return out


#: which change each kind of kernel-hook note explains: (note kind, note test) → change kind
_EXPLAINS: Final = {
    "nat": lambda n: ChangeKind.DNAT if n.manip == "dnat" else ChangeKind.SNAT,
    "vxlan": lambda n: ChangeKind.ENCAP if n.dir == "tx" else ChangeKind.DECAP,
    "bridge": lambda n: ChangeKind.BRIDGE,
    # IPVS rewrote the destination of a request, the source of its reply
    "ipvs": lambda n: ChangeKind.SNAT if n.reply else ChangeKind.DNAT,
}


def annotate(changes: list[Change], notes: tuple) -> None:
    """Hang each kernel-hook note on the change it explains (in place).

    The rewrite IPVS made is named ``ipvs`` instead of dnat/snat. A note whose
    change the headers do not show is kept only for IPVS (its decision is the
    point of the hop); the others explain nothing visible and are left out."""
    for n in notes:
        want = _EXPLAINS[n.kind](n)
        i = next((i for i, c in enumerate(changes) if c.kind is want and c.note is None), None)
        if i is None:
            if n.kind == "ipvs":
                changes.append(_change(ChangeKind.IPVS, None, _endpoint(n.real, n.real_port), note=n))
            continue
        c = changes[i]
        changes[i] = c._replace(kind=ChangeKind.IPVS if n.kind == "ipvs" else c.kind, note=n)


def _guess_crossing(pe: HopEvent, ce: HopEvent) -> ChangeKind:
    """Veth or bridge, from namespaces and directions alone (no topology at hand)."""
    if pe.netns is not None and ce.netns is not None and pe.netns != ce.netns:
        return ChangeKind.VETH
    if pe.dir == TX and ce.dir == RX:
        return ChangeKind.VETH
    if pe.dir is None and ce.dir is None:
        return ChangeKind.VETH
    return ChangeKind.BRIDGE


def nat(p: Frame, c: Frame) -> list[Change]:
    """Destination and source rewrites between two sightings of one header level."""
    pi, ci = p.ip, c.ip
    if pi is None or ci is None:
        return []
    pl, cl = p.l4, c.l4
    same_ports = (pl is None or cl is None or type(pl) is ICMP
                  or (pl.sport == cl.sport and pl.dport == cl.dport))  # type: ignore[union-attr]
    if pi.dst == ci.dst and pi.src == ci.src and same_ports:
        return []
    out = []
    if pi.dst != ci.dst or p.dport != c.dport:
        out.append(_change(ChangeKind.DNAT, _endpoint(p.dst, p.dport), _endpoint(c.dst, c.dport)))
    if pi.src != ci.src or p.sport != c.sport:
        out.append(_change(ChangeKind.SNAT, _endpoint(p.src, p.sport), _endpoint(c.src, c.sport)))
    return out


def ending(ev: HopEvent, fr: Frame) -> list[Change]:
    """How a journey ends at its last sighting: dropped, or delivered to a local socket."""
    if ev.dir == DROP:
        return [_change(ChangeKind.DROP, ev.place, None, reason=ev.drop_reason or "unknown")]
    if ev.dir == RX:
        f = fr.innermost
        if f.ip is not None:
            return [_change(ChangeKind.DELIVER, None, _endpoint(f.dst, f.dport))]
    return []



def hops(events: list[HopEvent], frames: list[Frame], topology: Optional[Topology], ended: bool) -> tuple[Hop, ...]:
    """One packet's sightings in time order, each with what changed since the previous one.

    Where topology knows that the last receiving device's rx handler passes the frame on (a
    macvlan parent to its child), that hop is added: no tracepoint fires for it."""
    named = getattr(topology, "named", None)
    if named is not None:
        events = [named(e) for e in events]
    ts = [e.ts_ns for e in events]
    if topology is not None and not ended:
        last = ts.index(max(ts))   # the first of the latest
        if events[last].dir == RX:
            child = topology.handed_to(events[last], frames[last])
            if child is not None:
                events = events + [child]
                frames = frames + [frames[last]]
                ts.append(child.ts_ns)
    order = sorted(range(len(events)), key=ts.__getitem__)   # a C method as the key: no call per item into a lambda
    out = []
    t0 = events[order[0]].ts_ns
    prev_ev: Optional[HopEvent] = None
    prev_fr: Optional[Frame] = None
    for seq, i in enumerate(order):
        ev, fr = events[i], frames[i]
        changes = classify(prev_ev, prev_fr, ev, fr, topology) if prev_ev is not None else []  # type: ignore[arg-type]
        if seq == len(order) - 1:
            changes.extend(ending(ev, fr))
        out.append(_record(Hop, seq, ev, fr, _record(Transition, tuple(changes)), ev.ts_ns - t0))   # Hop(...)
        prev_ev, prev_fr = ev, fr
    return tuple(out)
