"""The text timeline: one block per journey, one line per hop."""

from __future__ import annotations

from typing import TextIO

from ..annotations import note_text
from ..model import Journey
from .changes import changes_text
from . import inner_text, outer_text, packet_label, role_text, safe

COLUMNS = ("seq", "Δt µs", "namespace", "device", "dir", "outer", "inner", "changes")


def journey_lines(j: Journey) -> list[str]:
    rows = []
    for h in j.hops:
        ev = h.event
        rows.append((
            str(h.seq), f"{h.dt_ns / 1000:.1f}", safe(ev.netns) + (f" [{safe(ev.mode)}]" if ev.mode else ""),
            safe(ev.ifname), ev.dir or "?",
            outer_text(h.frame), inner_text(h.frame),
            safe(changes_text(h)),
        ))
    widths = [max(len(COLUMNS[i]), *(len(r[i]) for r in rows)) for i in range(len(COLUMNS))]
    right = {0, 1}

    def fmt(cells) -> str:
        return "  " + "  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i])
                                for i, c in enumerate(cells)).rstrip()

    dur = j.hops[-1].dt_ns / 1000 if j.hops else 0
    cut = "; evicted early: too many open journeys, later sightings start anew" if j.evicted else ""
    if j.incomplete:
        cut += "; INCOMPLETE: sightings of it were lost (ring buffer full), its path has holes"
    head = f"packet {j.id}  {packet_label(j)}  ({role_text(j)}; {len(j.hops)} hops, {dur:.1f} µs{cut})"
    out = [head, fmt(COLUMNS)]
    indent = " " * (2 + widths[0] + 2)
    for h, r in zip(j.hops, rows):
        out.append(fmt(r))
        # what a kernel hook saw decide this hop, under its row
        out += [f"{indent}↳ kernel: {safe(note_text(n))}" for n in h.event.notes]
    return out


class TextWriter:
    def __init__(self, out: TextIO):
        self.out = out
        self.count = 0

    def journey(self, j: Journey) -> None:
        if self.count:
            self.out.write("\n")
        self.out.write("\n".join(journey_lines(j)) + "\n")
        self.count += 1

    def close(self) -> None:
        self.out.flush()
