"""Connections: which journeys are one conversation, which way each goes, what a reply answers.

A connection is known by every tuple its packets showed, in both directions, so the NAT
a request went through does not hide its reply. Connections idle for CONN_IDLE_NS of
stream time are forgotten (:meth:`Connections.sweep`).
"""

from __future__ import annotations

from collections import deque
from typing import Final, Optional

from ..model import ORIG, REPLY, TCP, Frame
from .identity import TCP_ACK, TCP_SYN, answering_ack, reverse

MAX_ORIG_REMEMBERED: Final = 64
CONN_IDLE_NS: Final = 300_000_000_000      # a connection silent for 5 min is forgotten


class Conn:
    __slots__ = ("id", "orig", "matched", "requests", "last_ts")

    def __init__(self, cid: int, ts: int):
        self.id = cid
        self.last_ts = ts
        self.orig: set = set()   # tuples the orig direction showed; every other tuple of it is a reply's
        self.matched = False     # a packet of it met the filter
        # recent orig journeys: (journey id, start ts, TCP ack that would answer it)
        self.requests: deque = deque(maxlen=MAX_ORIG_REMEMBERED)


class Connections:
    def __init__(self):
        self._by_tuple: dict = {}

    def join(self, jid: int, frame: Frame, t, ts: int) -> tuple[Conn, str]:
        """The connection a new journey (its first frame, and its flow_tuple ``t``) belongs to, and its
        direction there."""
        conn, direction = None, ORIG
        if t is not None:
            l4 = frame.innermost.l4
            new_syn = type(l4) is TCP and l4.flags & (TCP_SYN | TCP_ACK) == TCP_SYN
            if not new_syn:
                conn = self._by_tuple.get(t)
                if conn is not None:
                    direction = ORIG if t in conn.orig else REPLY
                else:
                    conn = self._by_tuple.get(reverse(t))
                    if conn is not None:
                        direction = REPLY if reverse(t) in conn.orig else ORIG
        if conn is None:
            conn = Conn(jid, ts)
        if direction == ORIG:
            conn.requests.append((jid, ts, answering_ack(frame)))
        return conn, direction

    def note(self, conn: Conn, direction: str, t, ts: int) -> None:
        """A tuple (flow_tuple) one of the connection's packets showed (every hop's: NAT changes it)."""
        if t is None:
            return
        if direction == ORIG:
            conn.orig.add(t)
        self._by_tuple[t] = conn
        if ts > conn.last_ts:
            conn.last_ts = ts

    def sweep(self, now: int) -> None:
        limit = now - CONN_IDLE_NS
        stale = [t for t, c in self._by_tuple.items() if c.last_ts < limit]
        for t in stale:
            del self._by_tuple[t]

    def __len__(self) -> int:
        return len(self._by_tuple)


def request_of(conn: Conn, jid: int, first_ts: int, frame: Frame) -> Optional[int]:
    """The orig journey a reply answers: the one its TCP ack acknowledges, else the latest before it."""
    l4 = frame.innermost.l4
    ack = l4.ack if type(l4) is TCP and l4.flags & TCP_ACK else None
    latest = None
    for rid, ts, answered_by in reversed(conn.requests):
        if rid >= jid and ts > first_ts:
            continue
        if ack is not None and answered_by == ack:
            return rid
        if latest is None:
            latest = rid
    return latest
