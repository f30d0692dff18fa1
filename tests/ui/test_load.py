"""Under load: 50,000 synthetic events/s for 10 s, and the app still answers key presses.

The feeder thread correlates as fast as it can (the source never waits for the UI); the UI gets
coalesced batches of journeys and holds at most 10,000 of them.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import pytest

from flowviz.correlate import Correlator
from flowviz.model import HopEvent, LINKTYPE_ETHERNET
from flowviz.samples import swarm_variants
from flowviz.sources import SourceStatus

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

RATE, SECONDS = 50_000, 10.0


class SyntheticSource:
    """Swarm ingress journeys with fresh identities, produced at RATE sightings per second by a
    thread of their own into a bounded buffer, as the kernel's ring buffer would: what the
    consumer does not take in time is dropped and counted as lost."""

    kind = "synthetic"
    BUFFER = 200_000

    def __init__(self):
        self.problems = []
        self.offered = self.lost = self.taken = 0
        self._buf: deque = deque()
        self._stopped = threading.Event()
        self._producer = threading.Thread(target=self._produce, daemon=True)
        self._producer.start()

    def _produce(self) -> None:
        start = time.monotonic()
        variants = swarm_variants(10_000_000)
        while not self._stopped.is_set() and time.monotonic() - start < SECONDS:
            due = int((time.monotonic() - start) * RATE)
            while self.offered < due:
                ts = time.time_ns()
                for k, s in enumerate(next(variants)):
                    ev = HopEvent(ts + k * 1000, s.dev.name, s.dir, s.frame, LINKTYPE_ETHERNET,
                                  netns=s.dev.netns, mark=s.mark)
                    if len(self._buf) < self.BUFFER:
                        self._buf.append(ev)
                    else:
                        self.lost += 1
                self.offered += 30
            time.sleep(0.005)
        self._stopped.set()

    def events(self):
        buf = self._buf
        while not (self._stopped.is_set() and not buf):
            if not buf:
                time.sleep(0.01)
                yield None
                continue
            for _ in range(min(len(buf), 2000)):
                self.taken += 1
                yield buf.popleft()

    def now_ns(self) -> int:
        return time.time_ns()

    def status(self) -> SourceStatus:
        return SourceStatus("live", "synthetic", events=self.taken, lost=self.lost)

    def stop(self) -> None:
        self._stopped.set()
        self._buf.clear()

    def close(self) -> None:
        pass


async def test_keys_still_answer_under_load(make_app):
    from textual import events
    src = SyntheticSource()
    app = make_app(source=src, correlator=Correlator(window_ns=200_000_000), autoplay=True)
    async with app.run_test(size=(170, 50)) as pilot:
        await pilot.pause(3.0)   # load running
        assert app.journeys, "nothing arrived"
        # keys as the terminal driver delivers them, early and late in the load (when thousands of
        # packets are held); timed until the app has acted on them
        for key, char, changed, at in (("n", "n", lambda before: app.current.id != before, 0),
                                       ("plus", "+", lambda before: app.speed != before, 0),
                                       ("p", "p", lambda before: app.current.id != before, 5.0),
                                       ("minus", "-", lambda before: app.speed != before, 0)):
            await pilot.pause(at)
            before = app.current.id if key in ("n", "p") else app.speed
            t0 = time.monotonic()
            app.post_message(events.Key(key, char))
            while not changed(before) and time.monotonic() - t0 < 5.0:
                await pilot.pause(0.01)
            answered = time.monotonic() - t0
            assert changed(before), f"{key!r} not answered under load"
            print(f"{key!r} answered in {answered * 1000:.0f} ms with {len(app.journeys)} packets held")
            assert answered < 2.0
        # and through Pilot, which also waits for the app to go idle (it never quite does here)
        shown = app.query_one("#explainbox").display
        await pilot.press("e")
        assert app.query_one("#explainbox").display is not shown
        while app.feeder.is_alive() and time.monotonic() - t0 < SECONDS + 30:
            await pilot.pause(0.2)
        assert 0 < len(app.journeys) <= app.max_journeys
        if app.feeder.delivered > app.max_journeys:   # the cap was reached: the oldest fifth went at once
            assert len(app.journeys) >= app.max_journeys * 4 // 5
        assert app.query_one("#journeys").row_count == len(app.journeys)
        print(f"offered {src.offered} sightings in {SECONDS:g} s ({src.offered / SECONDS:,.0f}/s); correlated "
              f"{src.taken}, dropped {src.lost} (buffer full); {app.feeder.delivered} journeys made")
        assert src.offered >= RATE * SECONDS * 0.9   # the load really was offered
