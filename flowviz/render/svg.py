"""A journey as a picture for slides: SVG, drawn with drawsvg.

Namespaces are columns (boxes, in the order the packet first enters them, headed by node and
role); time runs down, one row per sighting. Each sighting is a device in its namespace's box,
arrows follow the packet from device to device, and what changed is written beside the row, in
the colour of its kind. Between encapsulation and decapsulation the rows sit inside a tunnel band
and every device box is drawn wrapped: the outer packet around the inner one. A request and the
reply to it share the columns, the reply below the request.

Names come from captures and kernels: drawsvg escapes them as text, and control characters are
made visible first (sanitize.safe).
"""

from __future__ import annotations

import os
from typing import Iterable, Optional

from ..model import ChangeKind, Journey
from ..sanitize import safe
from . import new_file, packet_label, role_text
from .changes import change_text

K = ChangeKind
LANE_W, LANE_GAP, ROW_H, HEAD_H, MARGIN = 168, 14, 30, 50, 16
CHAR_W = 6.7   #: about how wide a character of the 11 px monospace font is
FONT = "DejaVu Sans Mono, Menlo, Consolas, monospace"

#: one colour per kind of change, as the TUI's badges
KIND_COLOUR = {
    K.DNAT: "#b8860b", K.IPVS: "#b8860b", K.SNAT: "#d2691e", K.MARK: "#8e44ad", K.ENCAP: "#1f5fbf",
    K.DECAP: "#138d90", K.DROP: "#c0392b", K.ROUTE: "#555555", K.DELIVER: "#1e8449", K.VETH: "#888888",
    K.BRIDGE: "#888888",
}
#: namespace boxes, by the node they belong to (in order of appearance)
NODE_FILLS = ("#eef3fb", "#eef8ef", "#fbf3e8", "#f4eefa", "#f3f3f3")
TUNNEL_FILL, TUNNEL_STROKE = "#dce8fa", "#1f5fbf"


def _node(netns: str) -> str:
    return netns.split(":", 1)[0]


def _role(netns: str) -> str:
    return netns.split(":", 1)[1] if ":" in netns else "host namespace"


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def journeys_svg(journeys: Iterable[Journey]) -> str:
    """The journeys (a request, and the reply to it when there is one) as one SVG document."""
    return drawing_of(journeys, [])[0].as_svg()


def drawing_of(journeys: Iterable[Journey], points: list) -> tuple:
    """The drawsvg Drawing of the journeys; ``points`` gets each sighting's centre and caption, in order."""
    import drawsvg as dw

    journeys = [j for j in journeys if j.hops]
    lanes: list[str] = []
    for j in journeys:
        for h in j.hops:
            ns = safe(h.event.netns or "?")
            if ns not in lanes:
                lanes.append(ns)
    rows = sum(len(j.hops) for j in journeys) + len(journeys)   # a title row per journey
    note_w = 40 + CHAR_W * max(4 + len(_note_text(j, i)) for j in journeys for i in range(len(j.hops)))
    width = MARGIN * 2 + len(lanes) * (LANE_W + LANE_GAP) + max(300, note_w)
    height = MARGIN * 2 + HEAD_H + rows * ROW_H + 10
    d = dw.Drawing(width, height, font_family=FONT)
    d.append(dw.Rectangle(0, 0, width, height, fill="white"))
    arrow = dw.Marker(-0.1, -0.5, 0.9, 0.5, scale=6, orient="auto")
    arrow.append(dw.Lines(-0.1, 0.5, -0.1, -0.5, 0.9, 0, fill="#333333", close=True))

    x_of = {ns: MARGIN + i * (LANE_W + LANE_GAP) for i, ns in enumerate(lanes)}
    nodes: list[str] = []
    for ns in lanes:
        if _node(ns) not in nodes:
            nodes.append(_node(ns))
    top, bottom = MARGIN, height - MARGIN
    for ns in lanes:   # the namespace boxes, full height
        x = x_of[ns]
        fill = NODE_FILLS[nodes.index(_node(ns)) % len(NODE_FILLS)]
        d.append(dw.Rectangle(x, top + 22, LANE_W, bottom - top - 22, rx=8, fill=fill, stroke="#9aa5b1"))
        d.append(dw.Text(_fit(_role(ns), 22), 11, x + LANE_W / 2, top + 38, text_anchor="middle", fill="#444444"))
    run_start = 0
    for i, ns in enumerate(lanes):   # one heading per node over its neighbouring namespaces
        if i + 1 == len(lanes) or _node(lanes[i + 1]) != _node(ns):
            x0, x1 = x_of[lanes[run_start]], x_of[ns] + LANE_W
            d.append(dw.Line(x0 + 4, top + 18, x1 - 4, top + 18, stroke="#5d6d7e", stroke_width=2))
            d.append(dw.Text(_fit(_node(ns), int((x1 - x0) / 8)), 13, (x0 + x1) / 2, top + 13, text_anchor="middle",
                             font_weight="bold"))
            run_start = i + 1
    notes_x = MARGIN + len(lanes) * (LANE_W + LANE_GAP) + 6

    y = top + HEAD_H
    for j in journeys:
        y = _journey(d, dw, j, x_of, y, notes_x, arrow, points)
    return d, points


def _tunnel_rows(j: Journey) -> list[int]:
    return [i for i, h in enumerate(j.hops) if h.frame.vxlan is not None]


def _journey(d, dw, j: Journey, x_of: dict, y: float, notes_x: float, arrow, points: list) -> float:
    """Draw one journey from row ``y``; the ``y`` after it."""
    title = f"packet {j.id} ({role_text(j)}): {safe(packet_label(j))}, {len(j.hops)} hops"
    d.append(dw.Text(title, 13, MARGIN + 4, y + ROW_H * 0.65, font_weight="bold"))
    y += ROW_H
    tunnel = _tunnel_rows(j)
    if tunnel:   # the band first, so devices and arrows are drawn over it
        t0, t1 = y + tunnel[0] * ROW_H + 2, y + (tunnel[-1] + 1) * ROW_H - 2
        d.append(dw.Rectangle(MARGIN - 6, t0, d.width - 2 * MARGIN + 12, t1 - t0, rx=10, fill=TUNNEL_FILL,
                              stroke=TUNNEL_STROKE, stroke_width=2, stroke_dasharray="6,3", fill_opacity=0.75))
    prev: Optional[tuple[float, float]] = None
    for i, h in enumerate(j.hops):
        ns = safe(h.event.netns or "?")
        cx, cy = x_of[ns] + LANE_W / 2, y + i * ROW_H + ROW_H / 2
        wrapped = h.frame.vxlan is not None
        if prev is not None:
            px, py = prev
            if abs(px - cx) < 1:
                d.append(dw.Line(px, py + 9, cx, cy - 11, stroke="#333333", stroke_width=1.4, marker_end=arrow))
            else:
                sx = px + (LANE_W / 2 - 10 if cx > px else -(LANE_W / 2 - 10))
                ex = cx - (LANE_W / 2 - 10 if cx > px else -(LANE_W / 2 - 10))
                d.append(dw.Line(sx, py, ex, cy, stroke="#333333", stroke_width=1.4, marker_end=arrow))
        _device(d, dw, h, cx, cy, wrapped)
        points.append({"x": round(cx, 1), "y": round(cy, 1), "wrapped": wrapped,
                       "caption": f"packet {j.id}, hop {h.seq}: {safe(h.place)} {h.event.dir or '?'} · "
                                  + _note_text(j, i)})
        _notes(d, dw, j, i, notes_x, cy)
        prev = (cx, cy)
    return y + len(j.hops) * ROW_H


def _device(d, dw, h, cx: float, cy: float, wrapped: bool) -> None:
    w, hh = LANE_W - 22, 18
    drop = any(c.kind is K.DROP for c in h.changes)
    if wrapped:   # the outer packet around the inner one
        d.append(dw.Rectangle(cx - w / 2 - 4, cy - hh / 2 - 4, w + 8, hh + 8, rx=7, fill=TUNNEL_STROKE))
    d.append(dw.Rectangle(cx - w / 2, cy - hh / 2, w, hh, rx=5, fill="#fdecea" if drop else "white",
                          stroke="#c0392b" if drop else "#5d6d7e"))
    label = f"{safe(h.event.ifname)} {h.event.dir or '?'}"
    d.append(dw.Text(_fit(label, 20), 11, cx, cy + 4, text_anchor="middle"))


def _note_parts(j: Journey, i: int) -> list[tuple[str, Optional[ChangeKind]]]:
    """What changed at hop ``i``, as (text, kind) pieces: the changes, and inside the tunnel the wrapper."""
    h = j.hops[i]
    out: list[tuple[str, Optional[ChangeKind]]] = []
    for c in h.changes:
        text = change_text(c)
        if c.kind is K.ENCAP:
            text += f": {h.frame.tuple_text()}"
        out.append((safe(text), c.kind))
    if not out:
        out.append(("first sighting", None))
    if h.frame.vxlan is not None and not h.transition.has(K.ENCAP):
        out.append((f"(inside VXLAN {h.frame.vxlan.vni})", None))
    return out


def _note_text(j: Journey, i: int) -> str:
    return ", ".join(text for text, _ in _note_parts(j, i))


def _notes(d, dw, j: Journey, i: int, x: float, cy: float) -> None:
    """What changed at this hop, beside its row: the rewrites bold in their colour, crossings grey."""
    d.append(dw.Text(str(j.hops[i].seq), 11, x + 14, cy + 4, text_anchor="end", fill="#999999"))
    t = dw.Text("", 11, x + 24, cy + 4, **{"xml:space": "preserve"})   # the separators' spaces count
    for n, (text, kind) in enumerate(_note_parts(j, i)):
        quiet = kind is None or kind in (K.VETH, K.BRIDGE)
        t.append(dw.TSpan((", " if n and kind is not None else "  " if n else "") + text,
                          fill=KIND_COLOUR.get(kind, "#888888"), font_weight="normal" if quiet else "bold"))
    d.append(t)


def journey_with_reply(journeys: Iterable[Journey], which: Optional[int] = None) -> list[Journey]:
    """What to draw: packet ``which`` (else the first request) with the first reply to it; or, when
    ``which`` is a reply, the request it answers first."""
    by_id = {j.id: j for j in journeys}
    if which is None:
        first = next((j for j in by_id.values() if j.reply_to is None), next(iter(by_id.values()), None))
    else:
        first = by_id.get(which)
    if first is None:
        return []
    if first.reply_to in by_id:
        return [by_id[first.reply_to], first]
    reply = next((j for j in by_id.values() if j.reply_to == first.id), None)
    return [first] + ([reply] if reply is not None else [])


def save_svg(journeys: list[Journey], stem: str, directory: str = ".") -> str:
    """Write ``stem.svg`` (or ``stem-2.svg``, ... when that exists) in ``directory``; its path."""
    from ..errors import BadInput
    for n in range(1, 1000):
        path = os.path.join(directory, f"{stem}.svg" if n == 1 else f"{stem}-{n}.svg")
        try:
            with new_file(path, "save", "pictures") as f:
                f.write(journeys_svg(journeys).encode())
            return path
        except BadInput:
            if not os.path.exists(path):
                raise
    raise BadInput(f"save {stem}.svg: a thousand files of that name exist already")


class PictureWriter:
    """A sink: keeps the journeys, and at close writes the first request (with its reply) as SVG, or
    with another ``render`` (render/html.py's page, where the packet steps along the picture)."""

    def __init__(self, path: str, *, render=None, option: str = "--svg"):
        self.path = path
        self.render = render or journeys_svg
        self._out = new_file(path, option, "pictures")   # made first: a bad path fails before anything runs
        self.journeys: list[Journey] = []
        self.written = False

    def journey(self, j: Journey) -> None:
        if len(self.journeys) < 10_000:
            self.journeys.append(j)

    def close(self) -> None:
        if self._out.closed:
            return
        picked = journey_with_reply(self.journeys)
        if picked:
            self._out.write(self.render(picked).encode())
            self.written = True
        self._out.close()
        if not self.written:   # nothing to draw: no empty file left behind
            os.unlink(self.path)

    def discard(self) -> None:
        """Remove the file this writer created (only ever one it made itself: O_EXCL)."""
        if not self._out.closed:
            self._out.close()
            os.unlink(self.path)
