"""Sightings → journeys: which events are one packet, and what each hop changed.

The work is split by job: :mod:`.identity` (what makes two sightings one packet),
:mod:`.journeys` (open journeys, how a sighting finds its own, when one is done),
:mod:`.conns` (connections: direction, which request a reply answers) and
:mod:`.transitions` (naming what changed between two sightings). :class:`Correlator`
orchestrates them and holds the one clock: stream time, the newest sighting's.
"""

from __future__ import annotations

from typing import Final, Iterable, Iterator, Optional

from ..decode import decode
from ..filter import FlowFilter
from ..gcuntrack import untrack as _untrack
from ..model import FREE, LINKTYPE_ETHERNET, LOST, REPLY, HopEvent, Journey
from .conns import Connections, request_of
from .identity import flow_tuple, identity
from .journeys import DEFAULT_MAX_HELD, DEFAULT_MAX_OPEN, Open, OpenJourneys
from .transitions import Topology, classify, hops

__all__ = ["Correlator", "Topology", "classify", "flow_tuple", "identity", "DEFAULT_MAX_OPEN", "DEFAULT_WINDOW_NS"]

DEFAULT_WINDOW_NS: Final = 1_000_000_000   # a hop more than 1 s after the last is another packet
SWEEP_EVERY = 20_000                       # events between sweeps of idle connections
SEEN_SIZE: Final = 4096                    # distinct frames remembered (see Correlator._recognize),
SEEN_BYTES: Final = 8 << 20                # holding at most about this many bytes


class Correlator:
    """Feed HopEvents in (roughly) time order; get finished Journeys back."""

    def __init__(self, *, flt: Optional[FlowFilter] = None, window_ns: int = DEFAULT_WINDOW_NS,
                 topology: Optional[Topology] = None, max_open: int = DEFAULT_MAX_OPEN,
                 max_held: int = DEFAULT_MAX_HELD, untrack: bool = True):
        """``untrack``: take each finished journey's records out of the garbage collector's lists
        (flowviz/gcuntrack.py), for a consumer that keeps many journeys (the TUI, --svg/--html); one
        that writes each and drops it gains nothing from that, which cost 4% of ``replay --json``."""
        self.untrack = untrack
        self.filter = flt if flt is not None and not flt.empty else None
        self.window = window_ns
        self.topology = topology
        self.journeys = OpenJourneys(window_ns, max_open, max_held)
        self.conns = Connections()
        self._seen: dict = {}   # bytes → (frame, identity, flow tuple), for the last SEEN_SIZE distinct ones
        self._seen_bytes = 0
        self.events = 0
        self._now = 0
        self._swept_at = 0   # self.events at the last sweep of idle connections

    def feed(self, ev: HopEvent) -> list[Journey]:
        """Take one sighting; return the journeys that finished because time moved on."""
        self.events += 1
        if ev.dir == FREE:
            self.journeys.skb_ended(ev.skb, ev.gap)
            return self._expire(ev.ts_ns)
        if ev.dir == LOST:
            self.journeys.lost_now()
            return self._expire(ev.ts_ns)
        owner = None
        if ev.skb is not None:   # (a capture's sightings have none)
            ev, owner = self.journeys.owner(ev)
        frame, key, flow = self._recognize(ev.data, ev.linktype)
        if self.filter is not None and self.filter.never_matches(frame):
            return self._expire(ev.ts_ns)   # decided now: not kept, whatever the timestamps do
        j, duplicate = self.journeys.match(ev, key, owner)
        if duplicate:
            return self._expire(ev.ts_ns)
        if j is None:
            jid = self.journeys.next_id()
            conn, direction = self.conns.join(jid, frame, flow, ev.ts_ns)
            j = self.journeys.start(jid, conn, direction, ev.ts_ns)
        self.journeys.add(j, ev, frame, key)
        self.conns.note(j.conn, j.direction, flow, j.last_ts)
        if self.filter is not None and not j.conn.matched and self.filter.matches_sighting(ev, frame):
            j.conn.matched = True
        return self._expire(ev.ts_ns)

    def _recognize(self, data: bytes, linktype: int) -> tuple:
        """The frame, its identity and its flow tuple, worked out once per distinct bytes: three
        sightings in four repeat the previous hop's (a veth pair's two ends, a bridge's ports), and
        all three are immutable, so they are shared."""
        k = data if linktype == LINKTYPE_ETHERNET else (data, linktype)
        got = self._seen.get(k)
        if got is None:
            if len(self._seen) >= SEEN_SIZE or self._seen_bytes > SEEN_BYTES:
                self._seen.clear()   # cheaper than keeping an order; the next sightings refill it
                self._seen_bytes = 0
            self._seen_bytes += 2 * len(data)   # the key, and the frame's slices of it
            frame = decode(data, linktype)
            got = self._seen[k] = (frame, identity(frame), flow_tuple(frame))
        return got

    def expire(self, now_ns: int) -> list[Journey]:
        """Finish journeys idle since before ``now_ns - window`` (live: call on a timer)."""
        return self._expire(now_ns)

    def flush(self) -> list[Journey]:
        """End of input: finish every open journey."""
        return self._finished(self.journeys.drain())

    def run(self, events: Iterable[HopEvent]) -> Iterator[Journey]:
        """All journeys of a finite stream, each as soon as it is finished."""
        for ev in events:
            yield from self.feed(ev)
        yield from self.flush()

    def _expire(self, now: int) -> list[Journey]:
        if now > self._now:
            self._now = now
        # every SWEEP_EVERY events (not on every idle tick that finds the count on a multiple), or once
        # per as many events as the table holds tuples, if more: a sweep looks at every tuple, and a
        # sweep per 20,000 events over 200,000 tuples was the correlator's costliest step (a 1M-hop capture)
        if self.events - self._swept_at >= max(SWEEP_EVERY, len(self.conns)):
            self._swept_at = self.events
            self.conns.sweep(self._now)
        out = self._finished(self.journeys.idle(self._now - self.window))
        evicted = self.journeys.evict()
        if evicted:
            out += self._finished(evicted, evicted=True)
        return out

    def _finished(self, opened: list[Open], evicted: bool = False) -> list[Journey]:
        """Those of ``opened`` that become journeys (a direct call each: not map() over a bound method,
        a call through the interpreter's protocol each)."""
        out = []
        for j in opened:
            done = self._finish(j, evicted)
            if done is not None:
                out.append(done)
        return out

    def _finish(self, j: Open, evicted: bool = False) -> Optional[Journey]:
        if self.filter is not None and not j.conn.matched:
            return None
        path = hops(j.events, j.frames, self.topology, j.ended)
        if self.untrack:
            _untrack(path)   # never in a cycle
        reply_to = request_of(j.conn, j.id, j.first_ts, path[0].frame) if j.direction == REPLY else None
        return Journey(j.id, path, j.conn.id, j.direction, reply_to, evicted, j.incomplete)
