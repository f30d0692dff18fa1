"""The path map: the namespaces a journey crosses as boxes in path order, devices as ports,
and the packet as a marker that moves hop by hop.

Boxes flow left to right and wrap to the widget's width; a connector between
two boxes says how the packet got across (veth, route, vxlan). Inside the
tunnel the marker is drawn wrapped in its outer header: ``[VXLAN 4096 ●]``.
All names are untrusted text: they go into Text objects, never into markup.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.widget import Widget

from ..model import ChangeKind, Hop, Journey
from ..render import safe

ROLE_STYLE = {"container": "green", "ingress_sbox": "yellow", "overlay": "magenta", "host": "cyan",
              "client": "bright_blue", "underlay": "blue"}
MIN_BOX, MAX_BOX, GAP = 22, 34, 9


def segments(j: Journey) -> list[tuple[Optional[str], list[int]]]:
    """Consecutive hops in one namespace form one box: [(netns, [hop index, ...]), ...]."""
    out: list[tuple[Optional[str], list[int]]] = []
    for i, h in enumerate(j.hops):
        if out and out[-1][0] == h.event.netns:
            out[-1][1].append(i)
        else:
            out.append((h.event.netns, [i]))
    return out


def connector(hop: Hop) -> str:
    """How the packet reached the first hop of a box."""
    kinds = hop.transition.kinds()
    for kind, label in ((ChangeKind.ENCAP, "vxlan"), (ChangeKind.DECAP, "decap"), (ChangeKind.VETH, "veth"),
                        (ChangeKind.ROUTE, "route"), (ChangeKind.BRIDGE, "bridge")):
        if kind in kinds:
            return label
    return ""


def _style_for(netns: Optional[str], mode: Optional[str]) -> str:
    if netns is None:
        return "white"
    tail = netns.split(":")[-1]
    if "ingress_sbox" in tail:
        return ROLE_STYLE["ingress_sbox"]
    if tail.startswith("1-"):
        return ROLE_STYLE["overlay"]
    if mode:
        return ROLE_STYLE["container"]
    if tail in ("host", "node1", "node2") or tail.startswith("node"):
        return ROLE_STYLE["host"]
    return ROLE_STYLE.get(tail, "white")


class PathMap(Widget):
    """Renders one journey with the packet at ``hop``."""

    DEFAULT_CSS = "PathMap { height: auto; min-height: 8; }"

    def __init__(self, **kw):
        super().__init__(**kw)
        self.journey: Optional[Journey] = None
        self.hop = 0
        self.marker_line = 0   #: the line the packet is drawn on (for scrolling it into view)

    def show(self, journey: Optional[Journey], hop: int) -> None:
        self.journey, self.hop = journey, hop
        self._lines(self.size.width or 120)   # sets marker_line now, before the next paint
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:
        return max(1, len(self._lines(width)))

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.size.width or 120))

    # -- drawing ----------------------------------------------------------------------------

    def _device_line(self, j: Journey, i: int, inner: int) -> Text:
        h = j.hops[i]
        vx = h.frame.vxlan
        if i == self.hop:
            marker = f"[VXLAN {vx.vni} ●]" if vx is not None else "●"
            style = "bold reverse"
        else:
            marker = "·" if i < self.hop else " "
            style = "dim" if i > self.hop else ""
        name = safe(h.event.ifname)
        d = h.event.dir or "?"
        tunnel = f" in VXLAN {vx.vni}" if vx is not None and i != self.hop else ""
        text = f"{marker} {name} {d}{tunnel}"
        return Text(text[:inner].ljust(inner), style=style)

    def _box(self, j: Journey, netns: Optional[str], idxs: list[int], inner: int) -> list[Text]:
        mode = j.hops[idxs[0]].event.mode
        style = _style_for(netns, mode)
        title = safe(netns) if netns else "(namespace unknown)"
        title = title if len(title) <= inner - 2 else title[: inner - 3] + "…"
        top = Text("┌─", style=style) + Text(title, style=f"bold {style}") + \
            Text("─" * max(0, inner - len(title) - 1) + "┐", style=style)
        lines = [top]
        if mode:
            m = safe(mode)
            lines.append(Text("│", style=style) + Text(f" {m}"[:inner].ljust(inner), style="italic dim") +
                         Text("│", style=style))
        for i in idxs:
            lines.append(Text("│", style=style) + self._device_line(j, i, inner) + Text("│", style=style))
        lines.append(Text("└" + "─" * inner + "┘", style=style))
        return lines

    def _lines(self, width: int) -> list[Text]:
        j = self.journey
        if j is None or not j.hops:
            return [Text("no packet selected", style="dim")]
        segs = segments(j)
        longest = max(len(safe(j.hops[i].event.ifname)) for _, idxs in segs for i in idxs) + 8
        title = max(len(safe(ns or "")) for ns, _ in segs) + 3
        inner = max(MIN_BOX, min(MAX_BOX, max(longest, title)))
        per_row = max(1, (width + GAP) // (inner + 2 + GAP))
        out: list[Text] = []
        for row_start in range(0, len(segs), per_row):
            row = segs[row_start:row_start + per_row]
            boxes = [self._box(j, ns, idxs, inner) for ns, idxs in row]
            height = max(len(b) for b in boxes)
            for b in boxes:
                while len(b) < height:
                    b.insert(len(b) - 1, Text("│" + " " * inner + "│", style="dim"))
            for _, idxs in row:
                if self.hop in idxs:   # border, the mode line if there is one, then the devices
                    self.marker_line = len(out) + 1 + bool(j.hops[idxs[0]].event.mode) + idxs.index(self.hop)
            for line in range(height):
                text = Text()
                for k, b in enumerate(boxes):
                    if k:
                        label = connector(j.hops[row[k][1][0]]) if line == 1 else ""
                        if line == 1:
                            arrow = f"─{label}─▶" if label else "──▶"
                            text.append(arrow.center(GAP, "─")[:GAP], style="bold")
                        else:
                            text.append(" " * GAP)
                    text.append_text(b[line])
                out.append(text)
            if row_start + per_row < len(segs):
                nxt = connector(j.hops[segs[row_start + per_row][1][0]])
                out.append(Text(f"  ↳ {nxt}" if nxt else "  ↳", style="bold"))
        return out
