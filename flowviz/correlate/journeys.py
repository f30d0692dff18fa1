"""Open journeys: the packets still collecting sightings, how a sighting finds its packet,
and when a packet is done.

A sighting joins a journey by its skb address while that skb lives (a FREE or DROP event
ends it; an address that turns up with another packet's identity is a reuse), else by
identity (flowviz.correlate.identity) within ``window`` of stream time. A journey ends when
no sighting joins it for ``window``; it is then taken out of every index.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, Optional

from ..model import DROP, Frame, HopEvent
from .conns import Conn
from .identity import seen_before


class Open:
    """A journey still collecting hops."""

    __slots__ = ("id", "events", "frames", "last_ts", "conn", "direction", "ended", "first_ts", "seen", "keys",
                 "held", "gap", "suspect", "end_seen")

    def __init__(self, jid: int, conn: Conn, direction: str, ts: int):
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
        self.held = 0           # what its sightings cost in memory, roughly (see HOP_COST)
        self.gap = False        # the kernel said a sighting of it was lost
        self.suspect = False    # sightings were lost somewhere while it was open
        self.end_seen = False   # its skb's end of life (drop or free) arrived

    @property
    def incomplete(self) -> bool:
        """Holes in its path: one reported, or losses while it was open and no end arrived after them."""
        return self.gap or (self.suspect and not self.end_seen)

DEFAULT_MAX_OPEN: Final = 20_000     # open journeys kept at once; ~1 kB each
DEFAULT_MAX_HELD: Final = 64 << 20   # bytes all open journeys may hold: their packets' bytes, plus HOP_COST a sighting
HOP_COST: Final = 1024               # the objects of one sighting besides its bytes (event, decoded frame, indexes)


class OpenJourneys:
    """``max_open`` and ``max_held`` bound memory whatever the timestamps do: a capture whose
    stream time does not advance (simple packet blocks carry none, a burst shares one) would
    otherwise keep every journey open, and big packets (or one packet seen over and over) make
    a few journeys large. Past either, the least recently seen journey is taken out early
    (:meth:`evict`)."""

    def __init__(self, window_ns: int, max_open: int = DEFAULT_MAX_OPEN, max_held: int = DEFAULT_MAX_HELD):
        self.window = window_ns
        self.max_open = max_open
        self.max_held = max_held
        self.held = 0
        self._open: "OrderedDict[int, Open]" = OrderedDict()   # oldest activity first
        self._by_skb: dict[int, Open] = {}
        self._by_key: dict = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._open)

    def skb_ended(self, skb: Optional[int], gap: bool = False) -> None:
        """The skb's life ended: its address may now hold another packet. ``gap``: the kernel could not
        hand over a sighting of it since the last one that arrived."""
        if skb is not None:
            j = self._by_skb.pop(skb, None)
            if j is not None:
                j.end_seen = True
                j.gap = j.gap or gap

    def lost_now(self) -> None:
        """Sightings were lost just now: any open journey whose end has not arrived may miss one."""
        for j in self._open.values():
            if not j.end_seen:
                j.suspect = True

    def owner(self, ev: HopEvent) -> tuple[HopEvent, Optional[Open]]:
        """The journey that owns this sighting's skb, if any (and the sighting, placed)."""
        j = self._by_skb.get(ev.skb) if ev.skb is not None else None
        if ev.dir == DROP and not ev.ifindex and j is not None:
            # freed where no device is attached any more (a socket, say): it was dropped
            # after its last sighting, so that is where it ends
            last = j.events[-1]
            ev = ev._replace(netns=last.netns, netns_id=last.netns_id, ifindex=last.ifindex, ifname=last.ifname,
                             mode=last.mode, data=ev.data or last.data, linktype=last.linktype)
        return ev, j

    def match(self, ev: HopEvent, key, j: Optional[Open]) -> tuple[Optional[Open], bool]:
        """(the journey this sighting joins, or None for a new one; True: it is a duplicate sighting)."""
        if j is not None and key is not None and j.keys and key not in j.keys:
            # the address now holds another packet: its end was not seen (lost, or a
            # recording, which carries no end-of-life events)
            j = None
        if j is not None:
            last = j.events[-1]
            # the same skb reported twice on one device (netif_rx + receive, in recordings of flowviz before it
            # stopped attaching netif_rx)
            return j, last.ifname == ev.ifname and last.netns == ev.netns and last.dir == ev.dir
        if key is None:
            return None, False
        cand = self._by_key.get(key)
        if cand is None or cand.ended or ev.ts_ns - cand.last_ts > self.window:
            return None, False
        verdict = seen_before(cand.seen, ev, (ev.netns, ev.ifname, ev.dir))
        if verdict == "duplicate":
            return cand, True
        return (None if verdict == "new" else cand), False

    def next_id(self) -> int:
        jid = self._next_id
        self._next_id += 1
        return jid

    def start(self, jid: int, conn: Conn, direction: str, ts: int) -> Open:
        j = Open(jid, conn, direction, ts)
        self._open[jid] = j
        return j

    def add(self, j: Open, ev: HopEvent, frame: Frame, key) -> None:
        j.events.append(ev)
        j.frames.append(frame)
        cost = len(ev.data) + len(frame.payload) + HOP_COST   # its bytes, and the frame's slice of them
        j.held += cost
        self.held += cost
        j.seen[(ev.netns, ev.ifname, ev.dir)] = ev
        if ev.ts_ns > j.last_ts:
            j.last_ts = ev.ts_ns
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
            j.end_seen = True
        if ev.gap:
            j.gap = True

    def idle(self, limit: int) -> list[Open]:
        """Take out the journeys with no sighting since before ``limit`` (stream time)."""
        out = []
        while self._open:
            j = next(iter(self._open.values()))
            if j.last_ts >= limit:
                break
            del self._open[j.id]
            self._unindex(j)
            out.append(j)
        return out

    def evict(self) -> list[Open]:
        """Take out the least recently seen journeys beyond ``max_open``."""
        out = []
        while len(self._open) > self.max_open or (self.held > self.max_held and self._open):
            _, j = self._open.popitem(last=False)
            self._unindex(j)
            out.append(j)
        return out

    def drain(self) -> list[Open]:
        """Take out every open journey (end of input)."""
        out = list(self._open.values())
        self._open.clear()
        self.held = 0
        self._by_skb.clear()
        self._by_key.clear()
        return out

    def _unindex(self, j: Open) -> None:
        self.held -= j.held
        for ev in j.events:
            if ev.skb is not None and self._by_skb.get(ev.skb) is j:
                del self._by_skb[ev.skb]
        for key in j.keys:
            if self._by_key.get(key) is j:
                del self._by_key[key]
