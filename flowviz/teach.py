"""``flowviz teach [LESSON]``: a lesson (flowviz.lesson) walked along real journeys.

Live, each part builds (or reuses) its lab scenario, makes its fault if it has one, follows one real
request with the tracer and puts the fault right again. Where live tracing cannot run (no root, no bcc, a
kernel that refuses the tracer) or with ``--capture``, the parts read their bundled captures instead
(for a fault, a recording of it: scripts/record-faults), and the lesson says so; a part without a
capture is then skipped, saying why. The lab is
taken down at the end if teach built it.

The walk is shown in the TUI (flowviz.tui.teach) on a terminal, or printed as text with the answers
(``--text``, or when stdout is not a terminal): a handout.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Optional

from .correlate import Correlator
from .errors import FlowvizError
from .lesson import Lesson, Part, Step, Stop, at_text, load, pick, place
from .model import Journey
from .pipeline import collect
from .sanitize import safe, safe_lines

LIVE_WAIT_S = 1.2   #: after the request: long enough for its journeys to finish (the live window is 0.5 s)


@dataclass
class Walk:
    """One part of a lesson, on the journey that was seen for it."""

    part: Part
    journey: Optional[Journey] = None
    stops: list[Stop] = field(default_factory=list)
    missed: list[Step] = field(default_factory=list)
    note: str = ""                  #: why there is no journey, when there is none


@dataclass
class Session:
    lesson: Lesson
    walks: list[Walk]
    source: str                     #: "the live lab" or "the bundled captures (...why...)"


def capture_path(name: str) -> str:
    return str(resources.files("flowviz.pcaps").joinpath(name))


def _from_capture(part: Part) -> list[Journey]:
    from .sources.replay import ReplaySource
    src = ReplaySource([capture_path(part.capture)])
    return collect(src, Correlator(flt=part.flow_filter(), topology=src.topology))


class LiveLab:
    """Follows one request per part through the lab; remembers what it built, to take it down."""

    def __init__(self):
        from .lab.net import list_lab_netns
        self.was_up = bool(list_lab_netns())
        self.built = False
        self._seen: dict = {}

    def journeys(self, part: Part) -> list[Journey]:
        key = (part.scenario, tuple(sorted(part.filter.items())), part.fault, part.proto, part.size)
        if key not in self._seen:
            self._seen[key] = self._follow(part)
        return self._seen[key]

    def _follow(self, part: Part) -> list[Journey]:
        from .lab import up
        from .lab.faults import break_fault, fix_fault
        from .lab.state import LabState
        if part.scenario not in LabState.load().scenarios:
            answered = up(part.scenario, quiet=True) == 0
            self.built = True   # (up takes down what it half built when it fails)
            if not answered:
                raise FlowvizError(f"the lab's {part.scenario} scenario was built but does not answer")
        if part.fault:
            break_fault(part.fault, quiet=True)
        try:
            return self._one_request(part)
        finally:
            if part.fault:
                fix_fault(part.fault, quiet=True)

    def _one_request(self, part: Part) -> list[Journey]:
        from .follow import live
        from .lab.scenarios import TARGETS
        from .lab.traffic import one_request
        from .pipeline import Collected, Pipeline
        sink = Collected()
        with live(part.flow_filter()) as (source, _topo, correlator):
            pipeline = Pipeline(source, correlator, [sink])
            t = threading.Thread(target=pipeline.run, name="flowviz-teach", daemon=True)
            t.start()
            one_request(TARGETS[part.scenario], part.proto, timeout=3.0, size=part.size)
            time.sleep(LIVE_WAIT_S)
            pipeline.stop()
            t.join(timeout=5)
        return sink.journeys

    def close(self) -> None:
        if self.built and not self.was_up:
            from .lab import down
            down(quiet=True)


def live_unavailable() -> Optional[str]:
    """Why live tracing cannot run here (None: it can, as far as can be told before trying)."""
    if os.geteuid() != 0:
        return "live tracing and the lab need root"
    import importlib.util
    if importlib.util.find_spec("bcc") is None:
        return "bcc is not importable (apt-get install python3-bpfcc)"
    from .sources.kernel import tracefs
    try:
        tracefs()
    except FlowvizError as e:
        return str(e)
    return None


def prepare(lesson: Lesson, *, want: str = "auto") -> Session:
    """Every part's journey: live (``want`` live or auto, where it can run) or from the captures."""
    why = None if want == "live" else "asked for with --capture" if want == "capture" else live_unavailable()
    if want == "live" and live_unavailable():
        raise FlowvizError(f"teach --live: {live_unavailable()}")
    walks: list[Walk] = []
    if why is None:
        lab = LiveLab()
        try:
            for part in lesson.parts:
                walks.append(_walk(part, lab.journeys(part)))
        except FlowvizError as e:
            if want == "live":
                raise
            why, walks = f"live tracing failed: {e}", []
        finally:
            lab.close()
        if why is None:
            return Session(lesson, walks, "the live lab")
    for part in lesson.parts:
        if part.capture is None:
            walks.append(Walk(part, note="this part needs the live lab (sudo flowviz teach, on a machine where "
                                         "flowviz follow works)"))
        else:
            walks.append(_walk(part, _from_capture(part)))
    return Session(lesson, walks, f"the bundled captures ({why})")


def _walk(part: Part, journeys: list[Journey]) -> Walk:
    j = pick(part, journeys)
    if j is None:
        return Walk(part, note=f"no {part.packet} was seen")
    stops, missed = place(part, j)
    return Walk(part, j, stops, missed)


# --- the text handout -----------------------------------------------------------------------------

def print_text(s: Session, out=sys.stdout) -> None:
    from .explain import explain
    from .render.bytemap import diagram
    from .render.changes import changes_text
    w = out.write
    w(f"{safe(s.lesson.title)}\n{'=' * len(s.lesson.title)}\n{safe(s.lesson.summary)}\nfrom {safe(s.source)}\n")
    for n, walk in enumerate(s.walks, start=1):
        w(f"\n{n}. {safe(walk.part.title)}\n")
        if walk.part.intro:
            w(f"\n{safe_lines(walk.part.intro)}\n")
        if walk.journey is None:
            w(f"\n(skipped: {safe(walk.note)})\n")
            continue
        j = walk.journey
        w(f"\npacket: {safe(j.summary())}, {len(j.hops)} hops: " + " → ".join(safe(p) for p in _places(j)) + "\n")
        for stop in walk.stops:
            h = j.hops[stop.hop]
            w(f"\n  hop {h.seq}  {safe(h.place)} {h.event.dir or '?'}  [{safe(changes_text(h, 'first sighting'))}]\n")
            w("".join(f"  {line}\n" for line in safe_lines(stop.step.text).splitlines()))
            for para in explain(h, j)[:1]:
                w(f"  ({safe(para)})\n")
            if stop.step.show == "bytes":
                w("".join(f"    {line}\n" for line in diagram(j, stop.hop)))
            q = stop.question
            if q is not None:
                w(f"  ? {safe(q.text)}\n")
                for k, c in enumerate(q.choices, start=1):
                    w(f"    {k}) {safe(c)}{'   <- the journey' if q.right(c) else ''}\n")
                w(f"    what happened: {safe(q.truth)}\n")
        for step in walk.missed:
            w(f"\n  (this packet never reached {safe(at_text(step.at))}: its path differs from the lesson's)\n")


def _places(j: Journey) -> list[str]:
    out: list[str] = []
    for h in j.hops:
        ns = h.event.netns or "?"
        if not out or out[-1] != ns:
            out.append(ns)
    return out


def list_lessons(out=sys.stdout) -> None:
    from .lesson import bundled
    for name in bundled():
        le = load(name)
        out.write(f"{name:<9} {le.title}\n          {le.summary}\n")
    out.write("\nflowviz teach LESSON (or a lesson file: flowviz/lessons/README.md says how to write one)\n")


def run_teach(args, mode: str) -> int:
    if not args.lesson:
        list_lessons()
        return 0
    lesson = load(args.lesson)
    want = "capture" if args.capture else "live" if args.live else "auto"
    if mode == "tui":
        print(f"flowviz: preparing {lesson.name}: following its packets ...", file=sys.stderr, flush=True)
    session = prepare(lesson, want=want)
    if mode == "tui":
        from .tui.teach import TeachApp
        TeachApp(session).run()
    else:
        print_text(session)
    return 0
