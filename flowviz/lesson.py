"""Lessons: guided walks along real journeys (``flowviz teach``), written as data.

A lesson is a TOML file (the bundled ones are in ``flowviz/lessons/``; the format is documented in
``flowviz/lessons/README.md``). It has parts; each part names the lab scenario to follow a packet
through (and the bundled capture to read where live tracing cannot run), which packet of the
exchange to show, and its steps. A step says *where* to stop with a selector (``at``), what to say
there, and may ask the learner to predict what happens next.

Nothing here is scripted against a particular journey: a selector is looked up in the journey that
was actually seen, and a prediction is graded against what that journey did next. If the real
answer is not among the lesson's choices (a fault, another kernel), it is added, so the truth can
always be picked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Optional

from .errors import BadInput
from .filter import FlowFilter
from .model import ChangeKind, Hop, Journey
from .reference import FAULTS, SCENARIOS
from .render.changes import changes_text
from .sanitize import safe

#: what a learner can be asked to predict from a stop
ASKS = {
    "next-change": "what the packet's next rewrite is (a change kind: dnat, snat, ipvs, mark, route, encap, decap, "
                   "deliver, drop)",
    "next-namespace": "which namespace the packet enters next",
    "next-device": "which device sees the packet next",
    "last-namespace": "in which namespace the journey ends",
}
SELECTOR_KEYS = ("hop", "netns", "device", "dir", "change")
PACKETS = ("request", "reply")
CROSSINGS = (ChangeKind.VETH, ChangeKind.BRIDGE)   #: moves, not rewrites


@dataclass(frozen=True)
class Step:
    at: dict
    text: str
    ask: Optional[str] = None
    question: str = ""
    choices: tuple[str, ...] = ()
    show: str = ""                  #: "bytes": draw the frame's bytes at this stop


@dataclass(frozen=True)
class Part:
    title: str
    scenario: str
    capture: Optional[str]          #: a bundled capture's file name, or None (live only)
    packet: str = "request"
    filter: dict = field(default_factory=dict)
    proto: str = "tcp"              #: what the live lab sends
    size: Optional[int] = None      #: payload bytes the live lab sends (None: a short line)
    fault: Optional[str] = None     #: `lab break` this first (live only)
    intro: str = ""
    steps: tuple[Step, ...] = ()

    def flow_filter(self) -> FlowFilter:
        return FlowFilter(**self.filter)


@dataclass(frozen=True)
class Lesson:
    name: str
    title: str
    summary: str
    parts: tuple[Part, ...]
    path: str = ""


# --- reading and checking ------------------------------------------------------------------------

def bundled() -> list[str]:
    """The names of the lessons that come with flowviz, in their teaching order."""
    names = [p.name[:-5] for p in resources.files("flowviz.lessons").iterdir() if p.name.endswith(".toml")]
    order = ("bridge", "overlay", "ingress", "modes", "break")
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def load(name_or_path: str) -> Lesson:
    """A bundled lesson by name, or a lesson file by path; a problem is one BadInput naming the place."""
    if os.sep in name_or_path or name_or_path.endswith(".toml"):
        where = name_or_path
        try:
            with open(name_or_path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise BadInput(f"lesson {name_or_path}: {e.strerror}") from None
    else:
        if name_or_path not in bundled():
            raise BadInput(f"no lesson named {name_or_path!r} (there are: {', '.join(bundled())}; "
                           "or give a lesson file's path)")
        where = f"{name_or_path}.toml"
        raw = resources.files("flowviz.lessons").joinpath(where).read_bytes()
    return parse(raw, where)


def _toml(raw: bytes, where: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:   # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise BadInput(f"lesson {where}: not TOML: {e}") from None


def parse(raw: bytes, where: str = "lesson") -> Lesson:
    doc = _toml(raw, where)

    def need(d: dict, key: str, kind, ctx: str):
        v = d.get(key)
        if not isinstance(v, kind):
            raise BadInput(f"lesson {safe(where)}: {ctx}{key} is missing or not a {kind.__name__}")
        return v

    unknown = set(doc) - {"name", "title", "summary", "part"}
    if unknown:
        raise BadInput(f"lesson {safe(where)}: unknown key {sorted(unknown)[0]!r}")
    parts = []
    for i, p in enumerate(need(doc, "part", list, ""), start=1):
        parts.append(_part(p, where, f"part {i}: ", need))
    if not parts:
        raise BadInput(f"lesson {safe(where)}: no parts")
    name = doc.get("name") or os.path.basename(where).removesuffix(".toml")
    return Lesson(str(name), need(doc, "title", str, ""), str(doc.get("summary", "")), tuple(parts), where)


def _part(p, where: str, ctx: str, need) -> Part:
    if not isinstance(p, dict):
        raise BadInput(f"lesson {safe(where)}: {ctx}not a table")
    known = {"title", "scenario", "capture", "packet", "filter", "proto", "size", "fault", "intro", "step"}
    unknown = set(p) - known
    if unknown:
        raise BadInput(f"lesson {safe(where)}: {ctx}unknown key {sorted(unknown)[0]!r}")
    scenario = need(p, "scenario", str, ctx)
    if scenario not in SCENARIOS:
        raise BadInput(f"lesson {safe(where)}: {ctx}scenario {safe(scenario)!r} is not one of {', '.join(SCENARIOS)}")
    packet = p.get("packet", "request")
    if packet not in PACKETS:
        raise BadInput(f"lesson {safe(where)}: {ctx}packet must be request or reply")
    fault = p.get("fault")
    if fault is not None and fault not in FAULTS:
        raise BadInput(f"lesson {safe(where)}: {ctx}fault {safe(str(fault))!r} is not one of {', '.join(FAULTS)}")
    flt = p.get("filter", {})
    try:
        FlowFilter(**flt)
    except (TypeError, BadInput) as e:
        raise BadInput(f"lesson {safe(where)}: {ctx}filter: {e}") from None
    steps = tuple(_step(s, where, f"{ctx}step {k}: ", need) for k, s in enumerate(need(p, "step", list, ctx), 1))
    size = p.get("size")
    if size is not None and not (isinstance(size, int) and 16 <= size <= 65000):
        raise BadInput(f"lesson {safe(where)}: {ctx}size must be 16..65000 bytes")
    return Part(title=need(p, "title", str, ctx), scenario=scenario, capture=p.get("capture"), packet=packet,
                filter=dict(flt), proto=p.get("proto", "tcp"), size=size, fault=fault,
                intro=str(p.get("intro", "")).strip(), steps=steps)


def _step(s, where: str, ctx: str, need) -> Step:
    if not isinstance(s, dict):
        raise BadInput(f"lesson {safe(where)}: {ctx}not a table")
    unknown = set(s) - {"at", "text", "ask", "question", "choices", "show"}
    if unknown:
        raise BadInput(f"lesson {safe(where)}: {ctx}unknown key {sorted(unknown)[0]!r}")
    at = need(s, "at", dict, ctx)
    bad = set(at) - set(SELECTOR_KEYS)
    if bad or not at:
        raise BadInput(f"lesson {safe(where)}: {ctx}at takes {', '.join(SELECTOR_KEYS)}")
    if "change" in at and at["change"] not in {k.value for k in ChangeKind}:
        raise BadInput(f"lesson {safe(where)}: {ctx}at.change {safe(str(at['change']))!r} is not a change kind")
    if "hop" in at and not (at["hop"] in ("first", "last") or isinstance(at["hop"], int)):
        raise BadInput(f"lesson {safe(where)}: {ctx}at.hop is first, last or a number")
    ask = s.get("ask")
    if ask is not None and ask not in ASKS:
        raise BadInput(f"lesson {safe(where)}: {ctx}ask {safe(str(ask))!r} is not one of {', '.join(ASKS)}")
    choices = tuple(str(c) for c in s.get("choices", ()))
    if ask is not None and (len(choices) < 2 or not s.get("question")):
        raise BadInput(f"lesson {safe(where)}: {ctx}a question needs its text and at least two choices")
    show = s.get("show", "")
    if show not in ("", "bytes"):
        raise BadInput(f"lesson {safe(where)}: {ctx}show is bytes or nothing")
    return Step(at=dict(at), text=need(s, "text", str, ctx).strip(), ask=ask, question=str(s.get("question", "")),
                choices=choices, show=show)


# --- placing steps on a real journey, and grading predictions ---------------------------------------

def _ns_is(netns: Optional[str], want: str) -> bool:
    ns = netns or ""
    return ns == want or ns.split(":")[-1] == want or ns.split(":")[-1].startswith(want + ".")


def at_text(at: dict) -> str:
    """A step's selector for people: ``netns=ingress_sbox dir=rx``."""
    return " ".join(f"{k}={v}" for k, v in at.items())


def matches(hop: Hop, at: dict, index: int, last: int) -> bool:
    for key, want in at.items():
        ev = hop.event
        if key == "hop":
            n = 0 if want == "first" else last if want == "last" else want
            if index != n:
                return False
        elif key == "netns" and not _ns_is(ev.netns, want):
            return False
        elif key == "device" and ev.ifname != want:
            return False
        elif key == "dir" and ev.dir != want:
            return False
        elif key == "change" and not any(c.kind.value == want for c in hop.changes):
            return False
    return True


@dataclass
class Question:
    text: str
    choices: list[str]
    answers: set[str]               #: every choice that is right (a hop can do several things)
    truth: str                      #: what the journey did, in a sentence
    added: bool = False             #: the real answer was not among the lesson's choices

    def right(self, choice: str) -> bool:
        return choice in self.answers


@dataclass
class Stop:
    hop: int                        #: index into the journey's hops
    step: Step
    question: Optional[Question] = None


def _hop_words(h: Hop) -> str:
    return f"hop {h.seq} ({safe(h.place)} {h.event.dir or '?'}): {safe(changes_text(h, 'no change'))}"


def _question(step: Step, j: Journey, i: int) -> Optional[Question]:
    hops = j.hops
    later = hops[i + 1:]
    if step.ask == "next-change":
        nxt = next((h for h in later if any(c.kind not in CROSSINGS for c in h.changes)), None)
        if nxt is None:
            answers, truth = {"nothing"}, "nothing more: the journey ends without another rewrite"
        else:
            answers = {c.kind.value for c in nxt.changes if c.kind not in CROSSINGS}
            truth = _hop_words(nxt)
    elif step.ask == "next-namespace":
        here = hops[i].event.netns
        nxt = next((h for h in later if h.event.netns != here), None)
        answers = {c for c in step.choices if nxt is not None and _ns_is(nxt.event.netns, c)} or \
            {safe(nxt.event.netns or "?") if nxt is not None else "nowhere"}
        truth = _hop_words(nxt) if nxt is not None else "it leaves no namespace: the journey ends here"
    elif step.ask == "next-device":
        nxt = later[0] if later else None
        answers = {c for c in step.choices if nxt is not None and c in (nxt.event.ifname, nxt.place)} or \
            {safe(nxt.event.ifname) if nxt is not None else "none"}
        truth = _hop_words(nxt) if nxt is not None else "none: the journey ends here"
    elif step.ask == "last-namespace":
        end = hops[-1]
        answers = {c for c in step.choices if _ns_is(end.event.netns, c)} or {safe(end.event.netns or "?")}
        truth = _hop_words(end)
    else:
        return None
    choices = list(step.choices)
    added = not any(c in answers for c in choices)
    if added:
        choices.append(sorted(answers)[0])
    return Question(step.question, choices, answers, truth, added)


def place(part: Part, j: Journey) -> tuple[list[Stop], list[Step]]:
    """Where each step stops on this journey (in order: each after the one before), with its question
    graded against the journey; and the steps whose place the journey never reached."""
    stops: list[Stop] = []
    missed: list[Step] = []
    start, last = 0, len(j.hops) - 1
    for step in part.steps:
        i = next((k for k in range(start, len(j.hops)) if matches(j.hops[k], step.at, k, last)), None)
        if i is None:
            missed.append(step)
            continue
        stops.append(Stop(i, step, _question(step, j, i)))
        start = i + 1 if "hop" not in step.at else i
    return stops, missed


def pick(part: Part, journeys: list[Journey]) -> Optional[Journey]:
    """The journey a part is about: the first request that starts where a client sends (or the reply to it)."""
    requests = [j for j in journeys if j.reply_to is None and j.direction != "reply"]
    if not requests:
        return None
    req = requests[0]
    if part.packet == "request":
        return req
    return next((j for j in journeys if j.reply_to == req.id), None)
