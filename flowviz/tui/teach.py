"""``flowviz teach`` on a terminal: the packet moves along its real path and stops where the lesson says.

At each stop the story panel tells what happened there (the lesson's words, then flowviz's own
explanation of the hop) and may ask what happens next; the answer is checked against the journey
that was seen (flowviz.lesson). The path and packet panels are the ones ``follow`` shows; at an
encap or decap stop the packet panel draws the frame's bytes.
"""

from __future__ import annotations

from typing import Optional

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Static

from ..explain import explain
from ..lesson import at_text
from ..render.changes import changes_text
from ..sanitize import safe, safe_lines
from .panels import PacketDetail
from .pathmap import PathMap


class TeachApp(App):
    CSS = """
    #lesson { height: 1; background: $panel; }
    #main { height: 1fr; }
    #left { width: 3fr; }
    #mapbox { height: 1fr; border: round $accent; }
    #map { height: auto; }
    #detailbox { height: 1fr; border: round $secondary; }
    #storybox { width: 2fr; border: round $success; }
    """
    TITLE = "flowviz teach"
    BINDINGS = [
        Binding("space,enter,right", "go", "continue", priority=True),
        *(Binding(str(n), f"answer({n})", show=False) for n in range(1, 10)),
        Binding("b", "toggle_bytes", "bytes"),
        Binding("s", "save_svg", "save SVG"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, session, *, step_s: float = 0.35):
        super().__init__()
        self.session = session
        self.step_s = step_s
        self.walk_i = 0
        self.stop_i = -1            #: -1: the part's introduction
        self.hop = 0
        self.target: Optional[int] = None   #: the hop the packet is moving to
        self.answers: dict[tuple[int, int], str] = {}
        self.as_bytes = False
        self.done = False
        self._timer = None

    # -- what is shown -------------------------------------------------------------------------

    @property
    def walk(self):
        return self.session.walks[self.walk_i]

    @property
    def stop(self):
        return self.walk.stops[self.stop_i] if self.stop_i >= 0 else None

    @property
    def question(self):
        s = self.stop
        return s.question if s is not None and self.target is None else None

    @property
    def score(self) -> tuple[int, int]:
        """(right, asked) so far."""
        right = 0
        for (w, s), choice in self.answers.items():
            right += self.session.walks[w].stops[s].question.right(choice)
        return right, len(self.answers)

    def compose(self) -> ComposeResult:
        yield Static(id="lesson")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                with VerticalScroll(id="mapbox"):
                    yield PathMap(id="map")
                with VerticalScroll(id="detailbox"):
                    yield PacketDetail(id="detail")
            with VerticalScroll(id="storybox"):
                yield Static(id="story")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#mapbox").border_title = "path"
        self.query_one("#detailbox").border_title = "packet"
        self.query_one("#storybox").border_title = "lesson"
        self._draw()

    def _draw(self) -> None:
        walk = self.walk
        n_stops = len(walk.stops)
        where = ("introduction" if self.stop_i < 0 else f"stop {self.stop_i + 1} of {n_stops}") if not self.done \
            else "the end"
        right, asked = self.score
        self.query_one("#lesson", Static).update(Text(
            f"{safe(self.session.lesson.title)}  │ part {self.walk_i + 1}/{len(self.session.walks)}: "
            f"{safe(walk.part.title)} │ {where} │ predicted {right} of {asked} │ from {safe(self.session.source)}"))
        j = walk.journey
        self.query_one(PathMap).show(j, self.hop)
        forced = self.as_bytes or (self.stop is not None and self.target is None and self.stop.step.show == "bytes")
        self.query_one(PacketDetail).show(j, self.hop, as_bytes=forced)
        self.query_one("#story", Static).update(self._story())

    def _story(self) -> Text:
        out = Text()
        walk = self.walk
        if self.done:
            right, asked = self.score
            out.append("That was the lesson.\n\n", style="bold")
            out.append(f"You predicted {right} of {asked} steps as the real packets took them.\n\n")
            out.append("Press q to leave, s to save the last journey as SVG for slides.", style="dim")
            return out
        out.append(f"{safe(walk.part.title)}\n\n", style="bold")
        if self.target is not None:
            out.append("The packet moves on …", style="dim")
            return out
        if self.stop_i < 0:
            if walk.part.intro:
                out.append(safe_lines(walk.part.intro) + "\n\n")
            if walk.journey is None:
                out.append(f"(skipped: {safe(walk.note)})\n\n", style="yellow")
            else:
                out.append(f"The packet: {safe(walk.journey.summary())}, {len(walk.journey.hops)} hops.\n\n",
                           style="cyan")
            out.append("space: continue", style="dim")
            return out
        stop, j = self.stop, walk.journey
        h = j.hops[stop.hop]
        out.append(f"hop {h.seq}  {safe(h.place)} {h.event.dir or '?'}\n", style="bold cyan")
        out.append(f"{safe(changes_text(h, 'first sighting'))}\n\n", style="cyan")
        out.append(safe_lines(stop.step.text) + "\n\n")
        for para in explain(h, j)[:1]:
            out.append(safe(para) + "\n\n", style="dim")
        q = stop.question
        if q is not None:
            out.append(f"? {safe(q.text)}\n", style="bold yellow")
            picked = self.answers.get((self.walk_i, self.stop_i))
            for k, c in enumerate(q.choices, start=1):
                mark = ""
                if picked is not None and q.right(c):
                    mark = "  ✔"
                elif picked == c:
                    mark = "  ✘"
                out.append(f"  {k}) {safe(c)}{mark}\n", style="bold" if picked == c else "")
            if picked is None:
                out.append(f"\nanswer with 1–{len(q.choices)}", style="dim")
                return out
            out.append("\nRight. " if q.right(picked) else "\nNot this time. ",
                       style="bold green" if q.right(picked) else "bold red")
            out.append(f"What the packet did: {safe(q.truth)}\n")
        if self.stop_i == len(walk.stops) - 1:
            for step in walk.missed:
                out.append(f"\n(This packet never reached {safe(at_text(step.at))}: "
                           "its path differs from the lesson's.)\n", style="yellow")
        out.append("\nspace: continue", style="dim")
        return out

    # -- keys -----------------------------------------------------------------------------------

    def action_answer(self, n: int) -> None:
        q = self.question
        if q is None or (self.walk_i, self.stop_i) in self.answers or not 1 <= n <= len(q.choices):
            return
        self.answers[(self.walk_i, self.stop_i)] = q.choices[n - 1]
        self._draw()

    def action_go(self) -> None:
        if self.done:
            return
        if self.target is not None:   # moving: jump to the stop
            self.hop = self.target
            self._arrive()
            return
        q = self.question
        if q is not None and (self.walk_i, self.stop_i) not in self.answers:
            self.notify(f"First your prediction: 1–{len(q.choices)}")
            return
        walk = self.walk
        if walk.journey is not None and self.stop_i + 1 < len(walk.stops):
            self.stop_i += 1
            self.target = self.stop.hop
            if self.target == self.hop:
                self._arrive()
            else:
                self._draw()
                self._timer = self.set_interval(self.step_s, self._tick)
            return
        if self.walk_i + 1 < len(self.session.walks):
            self.walk_i += 1
            self.stop_i, self.hop = -1, 0
        else:
            self.done = True
        self._draw()

    def _tick(self) -> None:
        if self.target is None:
            return
        if self.hop < self.target:
            self.hop += 1
        if self.hop >= self.target:
            self._arrive()
        else:
            self._draw()

    def _arrive(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.target = None
        self._draw()

    def action_toggle_bytes(self) -> None:
        self.as_bytes = not self.as_bytes
        self._draw()

    def action_save_svg(self) -> None:
        from ..errors import BadInput
        from ..render.svg import save_svg
        j = self.walk.journey
        if j is None:
            return
        try:
            path = save_svg([j], f"flowviz-{self.session.lesson.name}-part{self.walk_i + 1}")
        except BadInput as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"saved {path}")
