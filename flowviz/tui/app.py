"""The flowviz app: layout and routing. Drawing is in pathmap/panels, feeding in feed."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Optional

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Static

from ..model import Journey
from .feed import Feeder
from .messages import JourneysReady, SourceFinished, StatusChanged
from .panels import ExplainPanel, HopTable, JourneyList, PacketDetail, status_text
from .pathmap import PathMap

SPEEDS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)   # hops per second
INTAKE = 1000   # journeys taken into the list per message (keys are answered between two)
INTAKE_GAP = 0.002   # s: between two intakes of one burst
MIN_TIMED_STEP, MAX_TIMED_STEP = 0.05, 4.0  # s: timed playback keeps every hop visible, and moving
BEAT_S = 0.02   # s between the heartbeats that tell the feeder the UI thread keeps up (feed.BEAT_LATE_S)


class FlowvizApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "flowviz"
    BINDINGS = [
        Binding("space", "toggle_play", "play/pause", priority=True),
        Binding("left", "step(-1)", "◀ step", priority=True),
        Binding("right", "step(1)", "step ▶", priority=True),
        Binding("plus,equals_sign", "speed(1)", "faster"),
        Binding("minus", "speed(-1)", "slower"),
        Binding("n", "packet(1)", "next packet"),
        Binding("p", "packet(-1)", "prev packet"),
        Binding("t", "toggle_timing", "timing"),
        Binding("e", "toggle_explain", "explain"),
        Binding("b", "toggle_bytes", "bytes"),
        Binding("s", "save_svg", "save SVG"),
        Binding("f", "toggle_follow", "follow latest"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(self, source, correlator, *, filter_text: str = "everything", sinks=(),
                 count: Optional[int] = None, duration: Optional[float] = None, autoplay: bool = True,
                 follow_latest: bool = False, max_journeys: int = 10_000):
        super().__init__()
        self.feeder = Feeder(source, correlator, self.post_message, sinks=sinks, count=count,
                             duration=duration)
        self.filter_text = filter_text
        self.journeys: "OrderedDict[int, Journey]" = OrderedDict()
        self.max_journeys = max_journeys
        self.current: Optional[Journey] = None
        self.hop = 0
        self.playing = autoplay
        self.speed = 2.0
        self.follow = follow_latest
        self.timed = False   # False: even steps at `speed` hops/s; True: real time, scaled
        self.as_bytes = False   # the packet panel draws every hop's bytes, not only at the tunnel's ends
        self.finished = False
        self.problems: list[str] = []
        self._status = None
        self._timer = None
        self._closing = False
        self._intake_due = False
        self.unlisted = 0   # journeys that came faster than the list could hold them: never listed

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield JourneyList(id="journeys")
            with Vertical(id="right"):
                with VerticalScroll(id="mapbox"):
                    yield PathMap(id="map")
                yield HopTable(id="hops")
                with Horizontal(id="bottom"):
                    with VerticalScroll(id="detailbox"):
                        yield PacketDetail(id="detail")
                    with VerticalScroll(id="explainbox"):
                        yield ExplainPanel(id="explain")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#journeys").border_title = "packets"
        self.query_one("#mapbox").border_title = "path"
        self.query_one("#hops").border_title = "hops"
        self.query_one("#detailbox").border_title = "packet"
        self.query_one("#explainbox").border_title = "explain"
        self._timer = self.set_timer(self._delay(), self._tick, pause=not self.playing)
        self._update_status()
        self._beat()
        self._beats = self.set_interval(BEAT_S, self._beat)
        self.feeder.start()

    def _beat(self) -> None:
        self.feeder.beat = time.monotonic()

    def on_unmount(self) -> None:
        self._closing = True
        self.feeder.stop()
        self.feeder.join(timeout=3)

    # -- what the feeder sends -----------------------------------------------------------------

    def on_journeys_ready(self, msg: JourneysReady) -> None:
        """Take at most :data:`INTAKE` journeys and the rest after a timer, so keys typed meanwhile
        are answered in between (a whole 0.3 s batch at 100k sightings/s held the UI for up to
        90 ms). Journeys past what the list could hold are counted, never listed."""
        if self._closing:
            return
        outbox = self.feeder.outbox
        while len(outbox) > self.max_journeys:   # older than anything the list could keep
            outbox.popleft()
            self.unlisted += 1
        batch = []
        while outbox and len(batch) < INTAKE:
            batch.append(outbox.popleft())
        if not batch:
            return
        if outbox and not self._intake_due:   # the rest after a timer: the queue empties meanwhile, so a
            self._intake_due = True            # key already typed goes through the screen first
            self.set_timer(INTAKE_GAP, self._intake_more)
        for j in batch:
            self.journeys[j.id] = j
        table = self.query_one(JourneyList)
        if len(self.journeys) > self.max_journeys:
            # drop the oldest fifth at once: in one pass where the table allows, else redrawn
            keep = self.max_journeys * 4 // 5
            while len(self.journeys) > keep:
                self.journeys.popitem(last=False)
            gone = table.row_count + len(batch) - len(self.journeys)   # the oldest: the table's first rows
            if gone <= table.row_count and table.drop_first(gone):
                table.add(batch)
            else:
                table.clear()
                table.add(list(self.journeys.values()))
        else:
            table.add(batch)
        if self.current is None or self.current.id not in self.journeys:
            self._select(next(iter(self.journeys.values())))
        elif self.follow:
            self._select(next(reversed(self.journeys.values())))
        self._update_status()

    def _intake_more(self) -> None:
        self._intake_due = False
        self.post_message(JourneysReady())

    def on_status_changed(self, msg: StatusChanged) -> None:
        if self._closing:
            return
        self._status = msg.status
        self._update_status()

    def on_source_finished(self, msg: SourceFinished) -> None:
        if self._closing:
            return
        self.finished = True
        self._beats.stop()   # no feeder left to tell
        self.problems = list(msg.problems)
        self._update_status()

    # -- selection -------------------------------------------------------------------------------

    def _select(self, j: Journey, hop: int = 0) -> None:
        changed = self.current is None or self.current.id != j.id
        self.current = j
        self.hop = max(0, min(hop, len(j.hops) - 1))
        if changed:
            self.query_one(HopTable).show(j)
            jl = self.query_one(JourneyList)
            row = jl.get_row_index(str(j.id))
            if jl.cursor_row != row:
                jl.move_cursor(row=row, animate=False, scroll=True)
        self._draw()

    def _draw(self) -> None:
        if self._closing:
            return
        j, h = self.current, self.hop
        pathmap = self.query_one(PathMap)
        pathmap.show(j, h)
        box = self.query_one("#mapbox")
        if not (box.scroll_y <= pathmap.marker_line < box.scroll_y + box.scrollable_content_region.height):
            box.scroll_to(y=max(0, pathmap.marker_line - 2), animate=False)
        self.query_one(HopTable).point_at(h)
        self.query_one(PacketDetail).show(j, h, as_bytes=self.as_bytes)
        self.query_one(ExplainPanel).show(j, h)
        self._update_status()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self._closing or event.row_key is None or event.row_key.value is None:
            return
        if event.cursor_row != event.data_table.cursor_row:
            return   # stale: the cursor moved again (we move it as the packet steps) since this was sent
        if event.data_table.id == "journeys":
            j = self.journeys.get(int(event.row_key.value))
            if j is not None and (self.current is None or j.id != self.current.id):
                self._select(j)
        elif event.data_table.id == "hops" and self.current is not None:
            hop = int(event.row_key.value)
            if hop != self.hop:
                self.hop = hop
                self._draw()

    def _update_status(self) -> None:
        self.query_one("#status", Static).update(status_text(
            self._status, filter_text=self.filter_text, playing=self.playing, speed=self.speed,
            follow=self.follow, held=len(self.journeys), finished=self.finished, problems=self.problems,
            timed=self.timed, unlisted=self.unlisted))

    # -- keys --------------------------------------------------------------------------------------

    def _delay(self) -> float:
        """Seconds until the next step: 1/speed, or in timed mode the real gap to the next hop,
        scaled so that this journey's average gap takes 1/speed."""
        j = self.current
        if not self.timed or j is None or self.hop >= len(j.hops) - 1 or len(j.hops) < 2:
            return 1 / self.speed
        gap = j.hops[self.hop + 1].dt_ns - j.hops[self.hop].dt_ns
        mean = j.hops[-1].dt_ns / (len(j.hops) - 1) or 1
        return min(MAX_TIMED_STEP, max(MIN_TIMED_STEP, gap / mean / self.speed))

    def _schedule(self) -> None:
        self._timer.stop()
        self._timer = self.set_timer(self._delay(), self._tick, pause=not self.playing)

    def _tick(self) -> None:
        j = self.current
        if j is None:
            return
        if self.hop < len(j.hops) - 1:
            self.hop += 1
            self._draw()
        elif self.follow and j.id != next(reversed(self.journeys)):
            self._select(next(reversed(self.journeys.values())))
        else:
            self.action_toggle_play()   # at the end: stop, and space starts over
            return
        if self.playing:
            self._schedule()

    def action_toggle_play(self) -> None:
        self.playing = not self.playing
        if self.playing and self.current is not None and self.hop >= len(self.current.hops) - 1:
            self.hop = 0
            self._draw()
        self._schedule()
        self._update_status()

    def action_step(self, delta: int) -> None:
        if self.playing:
            self.action_toggle_play()
        if self.current is not None:
            self.hop = max(0, min(self.hop + delta, len(self.current.hops) - 1))
            self._draw()

    def action_speed(self, delta: int) -> None:
        i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 1
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, i + delta))]
        self._schedule()
        self._update_status()

    def action_toggle_timing(self) -> None:
        self.timed = not self.timed
        self._schedule()
        self._update_status()

    def action_packet(self, delta: int) -> None:
        if not self.journeys:
            return
        ids = list(self.journeys)
        i = ids.index(self.current.id) if self.current is not None and self.current.id in self.journeys else 0
        self._select(self.journeys[ids[max(0, min(len(ids) - 1, i + delta))]])

    def action_toggle_explain(self) -> None:
        box = self.query_one("#explainbox")
        box.display = not box.display

    def action_save_svg(self) -> None:
        """The current journey, with the reply to it (or the request it answers), as SVG in the
        working directory: flowviz-packet-N.svg, never over an existing file."""
        if self.current is None:
            return
        from ..errors import BadInput
        from ..render.svg import journey_with_reply, save_svg
        j = self.current
        try:
            path = save_svg(journey_with_reply(self.journeys.values(), j.id), f"flowviz-packet-{j.id}")
        except BadInput as e:
            self.notify(str(e), severity="error")
            return
        self.notify(f"saved {path}")

    def action_toggle_bytes(self) -> None:
        self.as_bytes = not self.as_bytes
        if self.current is not None:
            self._draw()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow and self.journeys:
            self._select(next(reversed(self.journeys.values())))
        self._update_status()
