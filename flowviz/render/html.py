"""A journey as one self-contained HTML page: the SVG picture, and a packet that steps along it with
the arrow keys (space plays, Home and End jump), its caption saying where it is and what changed.

Nothing is fetched: the picture, the hops and the script are all in the file. Captions are set as
text (never parsed as HTML), and the hops' JSON cannot close its script element.
"""

from __future__ import annotations

import html
import json
from typing import Iterable

from ..model import Journey
from . import packet_label
from .svg import LANE_W, ROW_H, drawing_of

STYLE = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; margin: 0; background: #fafafa; color: #222; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ccc; padding: 8px 16px; z-index: 1; }
h1 { font-size: 17px; margin: 0 0 4px 0; }
#caption { font-family: DejaVu Sans Mono, Menlo, monospace; font-size: 14px; margin: 0; min-height: 1.3em; }
.keys { color: #777; font-size: 12px; margin: 4px 0 0 0; }
main { padding: 12px; }
#packet, #cursor { transition: transform 0.35s ease; }
"""

SCRIPT = """
(function () {
  const hops = JSON.parse(document.getElementById('hops').textContent);
  const svg = document.querySelector('main svg');
  const NS = 'http://www.w3.org/2000/svg';
  const dot = document.createElementNS(NS, 'circle');
  dot.setAttribute('id', 'packet');
  dot.setAttribute('r', '9');
  dot.setAttribute('fill', '#e74c3c');
  dot.setAttribute('stroke', '#7b241c');
  dot.setAttribute('stroke-width', '2');
  svg.appendChild(dot);
  const bar = document.createElementNS(NS, 'rect');   // the current row, behind everything but the paper
  bar.setAttribute('id', 'cursor');
  bar.setAttribute('x', '0');
  bar.setAttribute('width', svg.getAttribute('width'));
  bar.setAttribute('height', 'ROW_H');
  bar.setAttribute('fill', '#f7dc6f');
  bar.setAttribute('opacity', '0.45');
  svg.insertBefore(bar, svg.querySelector('rect').nextSibling);
  const caption = document.getElementById('caption');
  let at = 0, timer = null;
  function show(k) {
    at = Math.max(0, Math.min(hops.length - 1, k));
    const h = hops[at];
    dot.setAttribute('transform', 'translate(' + (h.x - OFFSET) + ',' + h.y + ')');
    dot.setAttribute('fill', h.wrapped ? '#1f5fbf' : '#e74c3c');
    bar.setAttribute('transform', 'translate(0,' + (h.y - ROW_H / 2) + ')');
    caption.textContent = (at + 1) + '/' + hops.length + '  ' + h.caption;
    document.body.dataset.hop = String(at);
    dot.scrollIntoView({block: 'nearest', inline: 'nearest'});
  }
  function play() {
    if (timer) { clearInterval(timer); timer = null; return; }
    if (at >= hops.length - 1) show(0);
    timer = setInterval(function () { if (at >= hops.length - 1) play(); else show(at + 1); }, 600);
  }
  document.addEventListener('keydown', function (e) {
    const moves = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};
    if (e.key in moves) show(at + moves[e.key]);
    else if (e.key === 'Home') show(0);
    else if (e.key === 'End') show(hops.length - 1);
    else if (e.key === ' ') play();
    else return;
    e.preventDefault();
  });
  show(0);
})();
"""


def journeys_html(journeys: Iterable[Journey]) -> str:
    journeys = [j for j in journeys if j.hops]
    drawing, points = drawing_of(journeys, [])
    svg = drawing.as_svg()
    svg = svg[svg.index("<svg"):]   # inline: no XML declaration
    title = html.escape(f"flowviz: {packet_label(journeys[0])}" if journeys else "flowviz")
    data = json.dumps(points, ensure_ascii=True).replace("</", "<\\/")
    script = SCRIPT.replace("OFFSET", str((LANE_W - 22) / 2 + 12)).replace("ROW_H", str(ROW_H))
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n"
            '<p id="caption"></p>\n<p class="keys">← → step · Home / End · space plays</p>\n</header>\n'
            f'<main>\n{svg}\n</main>\n<script id="hops" type="application/json">{data}</script>\n'
            f"<script>{script}</script>\n</body>\n</html>\n")
