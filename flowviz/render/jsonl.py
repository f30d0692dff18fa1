"""JSON Lines: one object per hop, then one per journey (the same for replay and live)."""

from __future__ import annotations

import json
import re
from typing import Optional, TextIO

from ..annotations import note_to_json
from ..model import Hop, Journey
from . import tuple_fields
from .changes import change_json


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
    }


#: DEL and C1 controls, which json leaves raw with ensure_ascii=False (it escapes only C0): a terminal
#: reading the output would act on them. They only occur inside JSON strings, where \\u escapes are valid.
_C1 = re.compile("[\x7f-\x9f]")


def _c1_escape(m: "re.Match[str]") -> str:
    return f"\\u{ord(m.group()):04x}"


_encode = json.JSONEncoder(ensure_ascii=False).encode   # one encoder: json.dumps builds one per call


def _line(obj: dict) -> str:
    s = _encode(obj)
    # almost every line is plain ASCII (isascii() is one C pass); the rest hold "→", rarely a C1
    # control. A regex finds them in C: str.translate with a dict table costs ~60 µs a line.
    return (s if s.isascii() else _C1.sub(_c1_escape, s)) + "\n"


class JsonLinesWriter:
    def __init__(self, out: TextIO):
        self.out = out

    def journey(self, j: Journey) -> None:
        w = self.out.write
        changes: list = []
        for hop in j.hops:
            obj = hop_object(j, hop)
            changes += obj["changes"]
            w(_line(obj))
        w(_line(journey_object(j, changes)))

    def close(self) -> None:
        self.out.flush()
