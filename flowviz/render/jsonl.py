"""JSON Lines: one object per hop, then one per journey (the same for replay and live)."""

from __future__ import annotations

import json
import re
from typing import Final, Optional, TextIO

from ..annotations import note_to_json
from ..model import Hop, Journey, namedtuple_json
from . import tuple_fields
from .changes import KIND_TEXT, after_text, before_text, change_json


def hop_object(j: Journey, hop: Hop) -> dict:
    ev, f = hop.event, hop.frame
    return {
        "type": "hop",
        "packet": j.id,
        "seq": hop.seq,
        "ts_ns": ev.ts_ns,
        "dt_ns": hop.dt_ns,
        "netns": ev.netns,
        "netns_id": ev.netns_id,
        "mode": ev.mode,
        "ifname": ev.ifname,
        "ifindex": ev.ifindex,
        "dir": ev.dir,
        "hook": ev.hook,
        "len": ev.wire_len,
        **tuple_fields(f),
        "mark": ev.mark,
        "vni": f.vxlan.vni if f.vxlan is not None else None,
        "inner": tuple_fields(f.inner.innermost) if f.inner is not None else None,
        "changes": [change_json(c) for c in hop.changes],
        "skb": hex(ev.skb) if ev.skb is not None else None,
        "drop_reason": ev.drop_reason,
        "notes": [note_to_json(n) for n in ev.notes],
    }


def journey_object(j: Journey, changes: Optional[list] = None) -> dict:
    """``changes``: the hops' changes as JSON already, when the caller has them (no second formatting)."""
    return {
        "type": "journey",
        "packet": j.id,
        "hops": len(j.hops),
        "path": j.path,
        "changes": changes if changes is not None else [change_json(c) for c in j.changes],
        "reply_to": j.reply_to,
        "evicted": j.evicted,
        "conn": j.conn,
        "direction": j.direction,
        "summary": j.summary(),
        "start_ns": j.start_ns,
        "duration_ns": j.hops[-1].dt_ns if j.hops else 0,
        **({"incomplete": True} if j.incomplete else {}),   # only then: every other journey reads as before
    }


#: DEL and C1 controls, which json leaves raw with ensure_ascii=False (it escapes only C0): a terminal
#: reading the output would act on them. They only occur inside JSON strings, where \\u escapes are valid.
_C1: Final = re.compile("[\x7f-\x9f]")


def _c1_escape(m: "re.Match[str]") -> str:
    return f"\\u{ord(m.group()):04x}"


_encode: Final = json.JSONEncoder(ensure_ascii=False).encode   # one encoder: json.dumps builds one per call


def _c1_escaped(s: str) -> str:
    # almost every string is plain ASCII (isascii() is one C pass); the rest hold "→", rarely a C1
    # control. A regex finds them in C: str.translate with a dict table costs ~60 µs a line.
    return s if s.isascii() else _C1.sub(_c1_escape, s)


def _escaped(s: str) -> str:
    return _c1_escaped(s) + "\n"


def _line(obj: dict) -> str:
    return _escaped(_encode(obj))


# --- the hop line, written out ----------------------------------------------------------------------
# json.dumps of hop_object's 25 keys took half of `replay --json`. The line is written here instead,
# field by field in the same order and form (a test compares the two on every sample capture, the
# fuzz corpus and hostile names): strings through json's own C string encoder, the header fields of
# a frame once per frame (three sightings in four share theirs with the previous hop).

# Each string is escaped as it is written (C1 controls, as _escaped does to a whole line), so the lines
# need no second pass: every value goes through _str, _value or _json.

_basestring: Final = json.encoder.encode_basestring   # a JSON string literal, non-ASCII left as it is (ensure_ascii=False)


def _str(s: str) -> str:
    return _c1_escaped(_basestring(s))


def _json(v) -> str:
    return _c1_escaped(_encode(v))


def _value(v) -> str:
    """One JSON value as json.dumps writes it (strings, ints and null here; anything else by json)."""
    t = type(v)
    if t is str:
        return _str(v)
    if v is None:
        return "null"
    if t is int:
        return int.__repr__(v)
    return _json(v)   # bools, nested objects (a change's kernel note): json's own way


def _change_text(c) -> str:
    """``_encode(change_json(c))``, written out (the same keys, in the same order)."""
    kind, before, after = _str(KIND_TEXT[c.kind]), _value(before_text(c)), _value(after_text(c))
    more = ""
    if c.vni is not None:
        more += f', "vni": {_value(c.vni)}'
    if c.reason is not None:
        more += f', "reason": {_value(c.reason)}'
    if c.via is not None:
        more += f', "via": {_value(c.via)}'
    if c.note is not None:
        more += f', "note": {_json(namedtuple_json(c.note))}'
    return f'{{"kind": {kind}, "from": {before}, "to": {after}{more}}}'


def _tuple_json(f) -> str:
    proto, src, dst = _value(f.proto), _value(f.src), _value(f.dst)
    sport, dport = _value(f.sport), _value(f.dport)
    return f'"proto": {proto}, "src": {src}, "dst": {dst}, "sport": {sport}, "dport": {dport}'


class _Recent:
    """The last ``size`` distinct keys' values (forgotten all at once past that: no order kept); looked
    up in :attr:`values` directly."""

    def __init__(self, size: int = 4096):
        self.size = size
        self.values: dict = {}

    def keep(self, key, value):
        if len(self.values) >= self.size:
            self.values.clear()
        self.values[key] = value
        return value


class _FrameParts:
    """A frame's two fixed parts of the hop line, for the last frames seen (kept with the frame, so
    its id is not reused while it is here)."""

    def __init__(self, size: int = 1024):
        self._parts = _Recent(size)

    def __call__(self, f) -> tuple[str, str]:
        hit = self._parts.values.get(id(f))
        if hit is not None and hit[0] is f:
            return hit[1], hit[2]
        vni = f.vxlan.vni if f.vxlan is not None else None
        inner = f"{{{_tuple_json(f.inner.innermost)}}}" if f.inner is not None else "null"
        a, b = _tuple_json(f), f'"vni": {_value(vni)}, "inner": {inner}'
        self._parts.keep(id(f), (f, a, b))
        return a, b


# (The f-strings below format only str values, with no format spec: compiled (flowviz/native.py), such
# an f-string is one join; one with a spec, or with a value of another type, is a str.format call each.)

def _place_json(ev) -> str:
    """The hop line's fields that name where the sighting was: the same for every sighting there."""
    netns, netns_id, mode = _value(ev.netns), _value(ev.netns_id), _value(ev.mode)
    ifname, ifindex, d, hook = _value(ev.ifname), _value(ev.ifindex), _value(ev.dir), _value(ev.hook)
    return (f'"netns": {netns}, "netns_id": {netns_id}, "mode": {mode}, "ifname": {ifname}, '
            f'"ifindex": {ifindex}, "dir": {d}, "hook": {hook}')


def hop_line(j: Journey, hop: Hop, changes: list, parts: _FrameParts, places: _Recent, path: list) -> str:
    """``_encode(hop_object(j, hop))``, written out; ``changes``: the hop's changes as JSON texts,
    ``places``: by place, its fields' text and its name as a JSON string, which goes on ``path``."""
    ev = hop.event
    a, b = parts(hop.frame)
    where = (ev.netns, ev.netns_id, ev.mode, ev.ifname, ev.ifindex, ev.dir, ev.hook)
    place: tuple[str, str] = places.values.get(where) or places.keep(where, (_place_json(ev), _str(ev.place)))
    path.append(place[1])
    skb = _str(hex(ev.skb)) if ev.skb is not None else "null"
    notes: str = _json([note_to_json(n) for n in ev.notes]) if ev.notes else "[]"
    # id, seq, ts_ns, dt_ns and len are ints, never None
    packet, seq, ts, dt = str(j.id), str(hop.seq), str(ev.ts_ns), str(hop.dt_ns)
    length, mark, reason = str(ev.wire_len), _value(ev.mark), _value(ev.drop_reason)
    text, fields = ", ".join(changes), place[0]
    return (f'{{"type": "hop", "packet": {packet}, "seq": {seq}, "ts_ns": {ts}, "dt_ns": {dt}, {fields}, '
            f'"len": {length}, {a}, "mark": {mark}, {b}, "changes": [{text}], "skb": {skb}, '
            f'"drop_reason": {reason}, "notes": {notes}}}')


def journey_line(j: Journey, changes: list, path: list) -> str:
    """``_encode(journey_object(j))``, written out; ``changes``: its hops' changes as JSON texts, ``path``:
    its hops' places as JSON strings."""
    incomplete = ', "incomplete": true' if j.incomplete else ""
    places = ", ".join(path)
    packet, hops, text = str(j.id), str(len(j.hops)), ", ".join(changes)
    reply_to, evicted, conn = _value(j.reply_to), "true" if j.evicted else "false", _value(j.conn)
    direction, summary, start = _value(j.direction), _value(j.summary()), _value(j.start_ns)
    duration = _value(j.hops[-1].dt_ns if j.hops else 0)
    return (f'{{"type": "journey", "packet": {packet}, "hops": {hops}, "path": [{places}], "changes": [{text}], '
            f'"reply_to": {reply_to}, "evicted": {evicted}, "conn": {conn}, "direction": {direction}, '
            f'"summary": {summary}, "start_ns": {start}, "duration_ns": {duration}{incomplete}}}')


class JsonLinesWriter:
    def __init__(self, out: TextIO):
        self.out = out
        self._parts = _FrameParts()
        self._places = _Recent()    # a place's fields → (their text, its name as a JSON string)
        self._changes = _Recent()   # Change (its values) → its JSON text

    def _change(self, c) -> str:
        try:
            return self._changes.values.get(c) or self._changes.keep(c, _change_text(c))
        except TypeError:   # a value that cannot be a key (a kernel note holding a list)
            return _change_text(c)

    def journey(self, j: Journey) -> None:
        changes: list = []
        lines: list = []
        path: list = []
        for hop in j.hops:
            mine = [self._change(c) for c in hop.changes]
            changes += mine
            lines.append(hop_line(j, hop, mine, self._parts, self._places, path))
        lines.append(journey_line(j, changes, path))
        lines.append("")
        self.out.write("\n".join(lines))   # a journey at a time

    def close(self) -> None:
        self.out.flush()
