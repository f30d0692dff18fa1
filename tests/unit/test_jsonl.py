"""The hop line JSON Lines writes out by hand is what json.dumps makes of hop_object, byte for byte:
over every sample capture, the fuzz corpus (hostile names, damaged captures), live-like sightings with
kernel notes, skb addresses and drop reasons, and odd strings."""

from __future__ import annotations

import io
import os

import pytest

import fuzz_target
from flowviz.correlate import Correlator
from flowviz.errors import BadCapture
from flowviz.model import HopEvent
from flowviz.render.jsonl import JsonLinesWriter, _encode, _escaped, _line, hop_object, journey_object
from flowviz.render.changes import change_json
from flowviz.sources.replay import ReplaySource
from support import sample_captures

CAPTURES = sample_captures()
CAPTURES += [os.path.join(fuzz_target.CORPUS, n) for n in sorted(os.listdir(fuzz_target.CORPUS))]


def _journeys(path):
    try:
        src = ReplaySource([path])
    except BadCapture:
        return []
    return list(Correlator(topology=src.topology).run(src.events()))


def _by_json_dumps(journeys) -> str:
    out = []
    for j in journeys:
        changes = []
        for hop in j.hops:
            obj = hop_object(j, hop)
            changes += obj["changes"]
            out.append(_line(obj))
        out.append(_line(journey_object(j, changes)))
    return "".join(out)


def _written(journeys) -> str:
    buf = io.StringIO()
    w = JsonLinesWriter(buf)
    for j in journeys:
        w.journey(j)
    return buf.getvalue()


@pytest.mark.parametrize("path", CAPTURES, ids=os.path.basename)
def test_every_capture_writes_what_json_dumps_writes(path):
    js = _journeys(path)
    assert _written(js) == _by_json_dumps(js)


def test_live_fields_notes_and_odd_strings_too():
    from test_hooks import _annotated_swarm_request
    evs = _annotated_swarm_request()
    odd = ["é→\u0085\x1b\"\\/\n", "", "x" * 300, "\ud7ff\u2028"]
    evs = [e._replace(skb=0xFFFF888100000000 + i, netns_id=4026531840 + i, ifindex=i, mark=i * 7, cpu=1,
                      mode=odd[i % len(odd)], ifname=odd[(i + 1) % len(odd)] or "eth0",
                      drop_reason="SKB_DROP_REASON_NO_SOCKET" if i == len(evs) - 1 else None,
                      dir="drop" if i == len(evs) - 1 else e.dir)
           for i, e in enumerate(evs)]
    js = list(Correlator().run(evs))
    assert any(h.event.notes for j in js for h in j.hops)
    assert _written(js) == _by_json_dumps(js)
    import dataclasses   # and the journey line's flags, and a journey with no hops
    odd_js = [dataclasses.replace(js[0], incomplete=True), dataclasses.replace(js[0], evicted=True, reply_to=3),
              dataclasses.replace(js[0], hops=(), direction=odd[0])]
    assert _written(odd_js) == _by_json_dumps(odd_js)


def test_an_empty_changes_list_and_no_notes_are_written_as_json_dumps_does():
    ev = HopEvent(1, "eth0", None, b"\x00" * 10, netns=None)
    (j,) = list(Correlator().run([ev]))
    hop = j.hops[0]
    assert _escaped(_encode(hop_object(j, hop))) == _written([j]).splitlines(keepends=True)[0]
    assert [change_json(c) for c in hop.changes] == []
