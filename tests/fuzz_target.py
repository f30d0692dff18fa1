"""The fuzz target: one capture's bytes through everything a capture reaches — the reader, the
decoder, the correlator, the text and JSON outputs, the explanations, the byte diagrams, the SVG
picture, a recording of it, and a tcpdump expression (libpcap, through ctypes) on every frame.

The only way out is :class:`~flowviz.errors.BadCapture` (a one-line error for the user); any other
exception is a bug. Text output must hold no raw control character. Used by tests/unit/test_fuzz.py
(a bounded run in every test run, and every input under tests/fuzz-corpus/) and by scripts/fuzz
(a longer run that adds what crashes to that corpus).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import xml.etree.ElementTree as ET

from flowviz.correlate import Correlator
from flowviz.decode import decode
from flowviz.errors import BadCapture
from flowviz.explain import explain
from flowviz.pcapexpr import Expression
from flowviz.pipeline import Pipeline
from flowviz.render.bytemap import diagram
from flowviz.render.jsonl import JsonLinesWriter
from flowviz.render.pcapng import PcapngRecorder
from flowviz.render.svg import journeys_svg
from flowviz.render.text import TextWriter
from flowviz.sanitize import safe
from flowviz.sources.replay import ReplaySource

EXPRESSION = Expression("tcp port 20229 or udp port 4789 or (vlan and icmp) or ip6")
CORPUS = os.path.join(os.path.dirname(__file__), "fuzz-corpus")
SAMPLES = os.path.join(os.path.dirname(__file__), "..", "pcaps")
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")   # tabs and newlines are the output's own


def _seed_paths() -> list[str]:
    return [os.path.join(d, name) for d in (SAMPLES, CORPUS) for name in sorted(os.listdir(d))
            if name.endswith((".pcap", ".pcapng"))]


def seeds() -> list[bytes]:
    """The sample captures and the corpus: what mutations start from."""
    out = []
    for path in _seed_paths():
        with open(path, "rb") as f:
            out.append(f.read())
    return out


def seed_names() -> list[str]:
    """:func:`seeds`' file names, in the same order."""
    return [os.path.basename(p) for p in _seed_paths()]


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """(position, operation, byte) edits: 0 overwrites, 1 inserts, 2 deletes, 3 cuts the rest off."""
    b = bytearray(data)
    for pos, op, value in edits:
        if not b:
            break
        pos %= len(b)
        if op == 0:
            b[pos] = value
        elif op == 1:
            b[pos:pos] = bytes([value]) * (1 + value % 4)
        elif op == 2:
            del b[pos:pos + 1 + value % 8]
        else:
            del b[pos:]
    return bytes(b)


def run(data: bytes) -> None:
    """Everything a capture reaches; raises AssertionError (or anything but BadCapture) on a bug."""
    with tempfile.TemporaryDirectory(prefix="flowviz-fuzz-") as d:
        path = os.path.join(d, "input.pcapng")
        with open(path, "wb") as f:
            f.write(data)
        try:
            source = ReplaySource([path])
        except BadCapture:
            return
        text, js = io.StringIO(), io.StringIO()
        recorder = PcapngRecorder(os.path.join(d, "recorded.pcapng"))
        explained = _Explained()
        sinks = [TextWriter(text), JsonLinesWriter(js), recorder, explained]
        Pipeline(source, Correlator(topology=source.topology, max_open=64), sinks).run()
        recorder.close()
        for ev in ReplaySource([path]).events() if not source.problems else ():   # libpcap on every frame
            EXPRESSION.matches(ev.data, ev.linktype, ev.wire_len, decode(ev.data, ev.linktype))
        for e in source.problems:
            assert isinstance(e, BadCapture) and "\n" not in str(e) and not RAW_CONTROL.search(str(e)), repr(str(e))
        for out in (text.getvalue(), explained.text):
            assert not RAW_CONTROL.search(out), repr(RAW_CONTROL.search(out))
        if recorder.hops:   # what flowviz recorded, flowviz reads back
            list(ReplaySource([recorder.path]).events())


class _Explained:
    """A sink: every hop's explanation, made safe as the TUI's explain panel makes it, and its byte
    diagram; and the first journeys as SVG, which must stay well-formed XML."""

    def __init__(self):
        self.text = ""
        self.drawn = 0

    def journey(self, j) -> None:
        self.text += "\n".join(safe(line) for hop in j.hops for line in explain(hop, j))
        self.text += "\n".join(line for i in range(len(j.hops)) for line in diagram(j, i, 60))
        if self.drawn < 3 and j.hops:
            self.drawn += 1
            svg = journeys_svg([j])
            ET.fromstring(svg)
            assert not RAW_CONTROL.search(svg.replace("\n", "")), repr(RAW_CONTROL.search(svg))
