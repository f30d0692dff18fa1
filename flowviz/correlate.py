"""Sightings → journeys: which events are one packet, and what each hop changed.

Identity of a packet across hops:

* a live source's skb address, while that skb lives (a FREE or DROP event ends
  it; an address that turns up with another packet's identity is a reuse);
* otherwise what NAT, routing and encapsulation keep: the innermost packet's
  IP protocol, IPv4 ID, IP length, TCP sequence/ack/flags, UDP length, ICMP
  type/code/sequence and the first payload bytes. Addresses, ports, TTL, MACs
  and outer headers are left out because those are what the path rewrites.

The same bytes at the same place in the same direction twice are either a
duplicate sighting (same skb, or within a millisecond: a tracepoint pair such
as netif_rx + netif_receive_skb, or a capture taken twice) or a different
packet (a retransmission).

A journey ends when no sighting joins it for ``window_ns`` of stream time; it
is then ordered, its transitions are named (:func:`classify`) and it is
handed out. Journeys are grouped into connections (the tuples each hop showed,
in both directions, so NAT does not hide a reply), and a reply points at the
request it answers.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Iterable, Iterator, Optional, Protocol

from .decode import decode
from .filter import FlowFilter
from .model import (
    DROP, FREE, ICMP, ORIG, REPLY, RX, TCP, TX, UDP, Change, ChangeKind, Frame,
    Endpoint, Flow, Hop, HopEvent, IPv4, Journey, Transition,
)

DEFAULT_WINDOW_NS = 1_000_000_000   # a hop more than 1 s after the last is another packet
DUPLICATE_NS = 1_000_000            # identical bytes at one place within 1 ms: seen twice
PAYLOAD_KEY_BYTES = 8               # payload bytes in the identity (a VXLAN-wrapped live
                                    # snapshot of 128 bytes still holds 8 inner payload bytes)
PAYLOAD_KEY_BYTES_V6 = 24           # IPv6 has no IP ID: more payload must tell packets apart
                                    # (neighbour solicitations differ only in the target's low bytes)
TCP_SYN, TCP_FIN, TCP_ACK = 0x02, 0x01, 0x10
MAX_ORIG_REMEMBERED = 64
CONN_IDLE_NS = 300_000_000_000      # a connection silent for 5 min is forgotten
SWEEP_EVERY = 20_000                # events between sweeps of idle connections


class Topology(Protocol):
    """What the correlator may ask about devices (live topology, or a capture's interface notes)."""

    def crossing(self, a: HopEvent, b: HopEvent) -> Optional[tuple[ChangeKind, Optional[str]]]:
        """(VETH, None) for two ends of a veth pair, (BRIDGE, bridge) for a bridge's ports; None: unknown."""

    def handed_to(self, received: HopEvent, frame: Frame) -> Optional[HopEvent]:
        """The device an rx handler on ``received``'s device passes this frame to, as a sighting.

        A macvlan child gets the frames addressed to its MAC (an ipvlan child, to its IP) from
        its parent's rx handler, which changes skb->dev and goes another round inside the same
        receive call: the receive tracepoint does not fire again, so that hop is inferred here."""


def identity(frame: Frame):
    """What stays the same for one packet along its whole path (None: cannot tell)."""
    f = frame.innermost
    ip = f.ip
    if ip is not None:
        l4 = f.l4
        t = type(l4)
        if t is TCP:
            inv = (l4.seq, l4.ack, l4.flags, l4.window)
        elif t is UDP:
            inv = (l4.length,)
        elif t is ICMP:
            inv = (l4.type, l4.code, l4.seq)
        else:
            inv = ()
        if type(ip) is IPv4:
            return (ip.proto, ip.id, ip.length, inv, f.payload[:PAYLOAD_KEY_BYTES])
        return (ip.proto, ip.flow, ip.length, inv, f.payload[:PAYLOAD_KEY_BYTES_V6])
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
    return (ip.proto, ip.src, l4.sport, ip.dst, l4.dport)


def _reverse(t):
    return (t[0], t[3], t[4], t[1], t[2])


class _Conn:
    __slots__ = ("id", "orig", "matched", "requests", "last_ts")

    def __init__(self, cid: int, ts: int):
        self.id = cid
        self.last_ts = ts
        self.orig: set = set()   # tuples the orig direction showed; every other tuple of it is a reply's
        self.matched = False
        # recent orig journeys: (journey id, start ts, TCP ack that would answer it)
        self.requests: deque = deque(maxlen=MAX_ORIG_REMEMBERED)


class _Open:
    """A journey still collecting hops."""

    __slots__ = ("id", "events", "frames", "last_ts", "conn", "direction", "ended", "first_ts", "seen", "keys")

    def __init__(self, jid: int, conn: _Conn, direction: str, ts: int):
        self.id = jid
        self.events: list[HopEvent] = []
        self.frames: list[Frame] = []
        self.last_ts = ts
        self.first_ts = ts
        self.conn = conn
        self.direction = direction
        self.ended = False   # dropped: nothing joins it any more
        self.seen: dict = {}  # (netns, ifname, dir) → the last event there
        self.keys: set = set()  # identities it is indexed under


class Correlator:
    """Feed HopEvents in (roughly) time order; get finished Journeys back."""

    def __init__(self, *, flt: Optional[FlowFilter] = None, window_ns: int = DEFAULT_WINDOW_NS,
                 topology: Optional[Topology] = None):
        self.filter = flt if flt is not None and not flt.empty else None
        self.window = window_ns
        self.topology = topology
        self._open: "OrderedDict[int, _Open]" = OrderedDict()
        self._by_skb: dict[int, _Open] = {}
        self._by_key: dict = {}
        self._conns: dict = {}
        self._next_id = 1
        self._now = 0
        self.events = 0
        self._swept_at = 0   # self.events at the last sweep of idle connections

    # -- input ------------------------------------------------------------

    def feed(self, ev: HopEvent) -> list[Journey]:
        """Take one sighting; return the journeys that finished because time moved on."""
        self.events += 1
        ts = ev.ts_ns
        if ev.dir == FREE:   # the skb's life ended: its address may now hold another packet
            if ev.skb is not None:
                self._by_skb.pop(ev.skb, None)
            return self._expire(ts)
        j = self._by_skb.get(ev.skb) if ev.skb is not None else None
        if ev.dir == DROP and not ev.ifindex and j is not None:
            # freed where no device is attached any more (a socket, say): it was dropped
            # after its last sighting, so that is where it ends
            last = j.events[-1]
            ev = ev._replace(netns=last.netns, netns_id=last.netns_id, ifindex=last.ifindex, ifname=last.ifname,
                             mode=last.mode, data=ev.data or last.data, linktype=last.linktype)
            ts = ev.ts_ns
        frame = decode(ev.data, ev.linktype)
        key = identity(frame)
        spot = (ev.netns, ev.ifname, ev.dir)   # where and which way: the key of j.seen
        if j is not None and key is not None and j.keys and key not in j.keys:
            # the address now holds another packet: its end was not seen (lost, or a
            # recording, which carries no end-of-life events)
            j = None
        if j is not None:
            last = j.events[-1]
            if last.ifname == ev.ifname and last.netns == ev.netns and last.dir == ev.dir:
                return self._expire(ts)   # the same skb reported twice on one device (netif_rx + receive)
        elif key is not None:
            cand = self._by_key.get(key)
            if cand is not None and not cand.ended and ts - cand.last_ts <= self.window:
                verdict = self._seen_before(cand, ev, spot)
                if verdict == "duplicate":
                    return self._expire(ts)
                if verdict == "new":
                    cand = None
                j = cand
        if j is None:
            j = self._start(ev, frame, ts)
        j.events.append(ev)
        j.frames.append(frame)
        j.seen[spot] = ev
        if ts > j.last_ts:
            j.last_ts = ts
        self._open.move_to_end(j.id)
        if key is not None:
            self._by_key[key] = j
            j.keys.add(key)
        if ev.skb is not None:
            if ev.dir == DROP:
                self._by_skb.pop(ev.skb, None)
            else:
                self._by_skb[ev.skb] = j
        if ev.dir == DROP:
            j.ended = True
        self._note_tuple(j, frame)
        if self.filter is not None and not j.conn.matched and self.filter.matches(frame):
            j.conn.matched = True
        return self._expire(ts)

    def flush(self) -> list[Journey]:
        """End of input: finish every open journey."""
        out = [self._finish(j) for j in list(self._open.values())]
        self._open.clear()
        self._by_skb.clear()
        self._by_key.clear()
        return [j for j in out if j is not None]

    def expire(self, now_ns: int) -> list[Journey]:
        """Finish journeys idle since before ``now_ns - window`` (live: call on a timer)."""
        return self._expire(now_ns)

    def run(self, events: Iterable[HopEvent]) -> Iterator[Journey]:
        """All journeys of a finite stream, each as soon as it is finished."""
        for ev in events:
            yield from self.feed(ev)
        yield from self.flush()

    # -- internals ----------------------------------------------------------

    @staticmethod
    def _seen_before(j: _Open, ev: HopEvent, spot) -> Optional[str]:
        """"duplicate", "new" (another packet with the same content), or None (joins j).

        The same bytes at the same place and direction again are the same
        sighting twice (within a millisecond) or a retransmission; different
        bytes there are this packet coming back after a rewrite — a capture
        without directions sees a node's eth0 take it in plain and send it
        out wrapped in VXLAN.
        """
        old = j.seen.get(spot)
        if old is None or old.data != ev.data:
            return None
        if abs(ev.ts_ns - old.ts_ns) <= DUPLICATE_NS:
            return "duplicate"
        return "new"

    def _start(self, ev: HopEvent, frame: Frame, ts: int) -> _Open:
        jid = self._next_id
        self._next_id += 1
        t = flow_tuple(frame)
        conn, direction = None, ORIG
        if t is not None:
            l4 = frame.innermost.l4
            new_syn = type(l4) is TCP and l4.flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            if not new_syn:
                conn = self._conns.get(t)
                if conn is not None:
                    direction = ORIG if t in conn.orig else REPLY
                else:
                    conn = self._conns.get(_reverse(t))
                    if conn is not None:
                        direction = REPLY if _reverse(t) in conn.orig else ORIG
        if conn is None:
            conn = _Conn(jid, ts)
        j = _Open(jid, conn, direction, ts)
        self._open[jid] = j
        if direction == ORIG:
            conn.requests.append((jid, ts, _answering_ack(frame)))
        return j

    def _note_tuple(self, j: _Open, frame: Frame) -> None:
        t = flow_tuple(frame)
        if t is None:
            return
        c = j.conn
        if j.direction == ORIG:
            c.orig.add(t)
        self._conns[t] = c
        if j.last_ts > c.last_ts:
            c.last_ts = j.last_ts

    def _expire(self, now: int) -> list[Journey]:
        if now > self._now:
            self._now = now
        # every SWEEP_EVERY events, not on every idle tick that finds the count on a multiple
        if self.events - self._swept_at >= SWEEP_EVERY:
            self._swept_at = self.events
            self._sweep_conns()
        limit = self._now - self.window
        out = []
        while self._open:
            j = next(iter(self._open.values()))
            if j.last_ts >= limit:
                break
            del self._open[j.id]
            done = self._finish(j)
            if done is not None:
                out.append(done)
        return out

    def _sweep_conns(self) -> None:
        limit = self._now - CONN_IDLE_NS
        stale = [t for t, c in self._conns.items() if c.last_ts < limit]
        for t in stale:
            del self._conns[t]

    def _finish(self, j: _Open) -> Optional[Journey]:
        for ev in j.events:
            if ev.skb is not None and self._by_skb.get(ev.skb) is j:
                del self._by_skb[ev.skb]
        for key in j.keys:
            if self._by_key.get(key) is j:
                del self._by_key[key]
        if self.filter is not None and not j.conn.matched:
            return None
        if self.topology is not None and not j.ended:
            last = max(range(len(j.events)), key=lambda i: j.events[i].ts_ns)
            if j.events[last].dir == RX:
                child = self.topology.handed_to(j.events[last], j.frames[last])
                if child is not None:
                    j.events.append(child)
                    j.frames.append(j.frames[last])
        order = sorted(range(len(j.events)), key=lambda i: j.events[i].ts_ns)
        hops = []
        t0 = j.events[order[0]].ts_ns
        prev_ev = prev_fr = None
        for seq, i in enumerate(order):
            ev, fr = j.events[i], j.frames[i]
            changes = classify(prev_ev, prev_fr, ev, fr, self.topology) if prev_ev is not None else []
            if seq == len(order) - 1:
                changes.extend(_ending(ev, fr))
            hops.append(Hop(seq, ev, fr, Transition(tuple(changes)), ev.ts_ns - t0))
            prev_ev, prev_fr = ev, fr
        reply_to = self._request_of(j, hops[0].frame) if j.direction == REPLY else None
        return Journey(j.id, tuple(hops), j.conn.id, j.direction, reply_to)

    @staticmethod
    def _request_of(j: _Open, frame: Frame) -> Optional[int]:
        """The orig journey this reply answers: the one its TCP ack acknowledges, else the latest before it."""
        l4 = frame.innermost.l4
        ack = l4.ack if type(l4) is TCP and l4.flags & TCP_ACK else None
        latest = None
        for jid, ts, answered_by in reversed(j.conn.requests):
            if jid >= j.id and ts > j.first_ts:
                continue
            if ack is not None and answered_by == ack:
                return jid
            if latest is None:
                latest = jid
        return latest


def _answering_ack(frame: Frame) -> Optional[int]:
    l4 = frame.innermost.l4
    if type(l4) is not TCP:
        return None
    n = l4.seglen + (1 if l4.flags & TCP_SYN else 0) + (1 if l4.flags & TCP_FIN else 0)
    return (l4.seq + n) & 0xFFFFFFFF


# --- naming transitions -------------------------------------------------------

def classify(pe: HopEvent, pf: Frame, ce: HopEvent, cf: Frame,
             topology: Optional[Topology] = None) -> list[Change]:
    """What changed between two consecutive sightings of one packet."""
    changes: list[Change] = []
    p_in, c_in = pf.innermost, cf.innermost
    routed = (p_in.ip is not None and c_in.ip is not None and c_in.ip.ttl < p_in.ip.ttl)
    if not routed and pf.vxlan is not None and cf.vxlan is not None:
        routed_outer = cf.ip.ttl < pf.ip.ttl   # the underlay packet crossed a router
    else:
        routed_outer = False
    encap = cf.vxlan is not None and pf.vxlan is None
    decap = pf.vxlan is not None and cf.vxlan is None
    revni = (pf.vxlan is not None and cf.vxlan is not None and pf.vxlan.vni != cf.vxlan.vni)

    moved = ce.ifname != pe.ifname or ce.netns != pe.netns
    if moved and not (encap or decap or revni):
        known = topology.crossing(pe, ce) if topology is not None else None
        cross, via = known if known is not None else (_guess_crossing(pe, ce), None)
        if not (routed or routed_outer):
            changes.append(Change(cross, pe.place, ce.place, via=via))
        elif pe.netns is not None and ce.netns is not None and pe.netns != ce.netns:
            # routed *and* in another namespace: sightings in between were not captured
            changes.append(Change(ChangeKind.VETH, pe.place, ce.place))
    if routed:
        changes.append(Change(ChangeKind.ROUTE, p_in.ip.ttl, c_in.ip.ttl))
    elif routed_outer:
        changes.append(Change(ChangeKind.ROUTE, pf.ip.ttl, cf.ip.ttl))
    _nat(p_in, c_in, changes)
    if pf.vxlan is not None and cf.vxlan is not None and not revni:
        _nat(pf, cf, changes)   # NAT of the underlay packet, under the same tunnel
    if pe.mark is not None or ce.mark is not None:
        pm, cm = pe.mark or 0, ce.mark or 0
        if cm != pm and ce.mark is not None and (cm != 0 or pe.netns == ce.netns):
            changes.append(Change(ChangeKind.MARK, pm, cm))
    if decap or revni:
        changes.append(Change(ChangeKind.DECAP, Flow.of(pf), Flow.of(pf.inner), vni=pf.vxlan.vni))
    if encap or revni:
        changes.append(Change(ChangeKind.ENCAP, Flow.of(cf.inner), Flow.of(cf), vni=cf.vxlan.vni))
    if ce.notes:
        _annotate(changes, ce.notes)
    return changes


#: which change each kind of kernel-hook note explains: (note kind, note test) → change kind
_EXPLAINS = {
    "nat": lambda n: ChangeKind.DNAT if n.manip == "dnat" else ChangeKind.SNAT,
    "vxlan": lambda n: ChangeKind.ENCAP if n.dir == "tx" else ChangeKind.DECAP,
    "bridge": lambda n: ChangeKind.BRIDGE,
    # IPVS rewrote the destination of a request, the source of its reply
    "ipvs": lambda n: ChangeKind.SNAT if n.reply else ChangeKind.DNAT,
}


def _annotate(changes: list[Change], notes: tuple) -> None:
    """Hang each kernel-hook note on the change it explains (in place).

    The rewrite IPVS made is named ``ipvs`` instead of dnat/snat. A note whose
    change the headers do not show is kept only for IPVS (its decision is the
    point of the hop); the others explain nothing visible and are left out."""
    for n in notes:
        want = _EXPLAINS[n.kind](n)
        i = next((i for i, c in enumerate(changes) if c.kind is want and c.note is None), None)
        if i is None:
            if n.kind == "ipvs":
                changes.append(Change(ChangeKind.IPVS, None, Endpoint(n.real, n.real_port), note=n))
            continue
        c = changes[i]
        kind = ChangeKind.IPVS if n.kind == "ipvs" else c.kind
        changes[i] = Change(kind, c.before, c.after, vni=c.vni, reason=c.reason, via=c.via, note=n)


def _guess_crossing(pe: HopEvent, ce: HopEvent) -> ChangeKind:
    """Veth or bridge, from namespaces and directions alone (no topology at hand)."""
    if pe.netns is not None and ce.netns is not None and pe.netns != ce.netns:
        return ChangeKind.VETH
    if pe.dir == TX and ce.dir == RX:
        return ChangeKind.VETH
    if pe.dir is None and ce.dir is None:
        return ChangeKind.VETH
    return ChangeKind.BRIDGE


def _nat(p: Frame, c: Frame, changes: list[Change]) -> None:
    pi, ci = p.ip, c.ip
    if pi is None or ci is None:
        return
    pl, cl = p.l4, c.l4
    same_ports = pl is None or cl is None or type(pl) is ICMP or (pl.sport == cl.sport and pl.dport == cl.dport)
    if pi.dst == ci.dst and pi.src == ci.src and same_ports:
        return
    if pi.dst != ci.dst or p.dport != c.dport:
        changes.append(Change(ChangeKind.DNAT, Endpoint(p.dst, p.dport), Endpoint(c.dst, c.dport)))
    if pi.src != ci.src or p.sport != c.sport:
        changes.append(Change(ChangeKind.SNAT, Endpoint(p.src, p.sport), Endpoint(c.src, c.sport)))


def _ending(ev: HopEvent, fr: Frame) -> list[Change]:
    """How a journey ends at its last sighting: dropped, or delivered to a local socket."""
    if ev.dir == DROP:
        return [Change(ChangeKind.DROP, ev.place, None, reason=ev.drop_reason or "unknown")]
    if ev.dir == RX:
        f = fr.innermost
        if f.ip is not None:
            return [Change(ChangeKind.DELIVER, None, Endpoint(f.dst, f.dport))]
    return []

