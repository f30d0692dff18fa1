"""The one loop from a source through the correlator to the sinks: what it takes, when it stops,
and whether the journeys still open are finished."""

from __future__ import annotations

from flowviz.correlate import Correlator
from flowviz.model import HopEvent
from flowviz.pipeline import Pipeline
from flowviz.samples import tcp_frame

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
SEC = 1_000_000_000


class Source:
    """Sightings of separate packets, one every 2 s of stream time (each finishes the previous journey)."""

    def __init__(self, n: int, idle: int = 0):
        self.items = [HopEvent(ts_ns=i * 2 * SEC, ifname="eth0", dir="tx", netns="c1",
                               data=tcp_frame(A, B, "10.0.0.1", "10.0.0.2", 40000 + i, 80, ip_id=i))
                      for i in range(n)] + [None] * idle
        self.stopped = False
        self.now = 0

    def events(self):
        for ev in self.items:
            if self.stopped:
                return
            if ev is not None:
                self.now = ev.ts_ns
            else:
                self.now += 2 * SEC
            yield ev

    def now_ns(self):
        return self.now

    def stop(self):
        self.stopped = True


class Sink:
    def __init__(self):
        self.got = []

    def journey(self, j):
        self.got.append(j.id)


def test_every_journey_reaches_every_sink_and_the_open_ones_are_finished():
    a, b = Sink(), Sink()
    p = Pipeline(Source(5), Correlator(), [a, b])
    assert p.run() == 5
    assert a.got == b.got == [1, 2, 3, 4, 5]


def test_idle_ticks_of_a_live_source_finish_journeys():
    p = Pipeline(Source(1, idle=1), Correlator(), [])
    steps = list(p.steps())
    assert [len(s) for s in steps] == [0, 1, 0]   # the sighting, the idle tick that finishes it, the flush


def test_count_stops_without_finishing_more():
    s = Sink()
    p = Pipeline(Source(10), Correlator(), [s], count=3)
    assert p.run() == 3 and s.got == [1, 2, 3]


def test_stop_ends_the_source_and_still_finishes_what_is_open():
    s = Sink()
    src = Source(10)
    p = Pipeline(src, Correlator(), [s])
    for i, _ in enumerate(p.steps()):
        if i == 2:
            p.stop()
    assert src.stopped and s.got == [1, 2, 3]


def test_duration_and_ticks(monkeypatch):
    import flowviz.pipeline as pipeline
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: next(clock))
    ticks = []
    p = Pipeline(Source(100), Correlator(), [], duration=5, tick=lambda: ticks.append(1), tick_s=2)
    p.run()
    assert 0 < p.taken < 100 and len(ticks) >= 1
