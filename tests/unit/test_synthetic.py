"""The synthetic load source: a ring that fills by itself, read by whoever consumes it."""

from __future__ import annotations

import time

from flowviz.correlate import Correlator
from flowviz.sources.synthetic import SyntheticSource


def test_what_is_not_taken_in_time_is_lost_in_whole_pairs_and_everything_is_counted():
    src = SyntheticSource(rate=200_000, seconds=0.6, buffer=600)
    time.sleep(0.3)   # the consumer is late: the buffer fills and overflows
    events = [ev for ev in src.events() if ev is not None]
    pair = src._pair
    assert src.lost > 0 and src.lost % pair == 0
    assert src.offered == src.taken + src.lost == len(events) + src.lost
    assert len(events) % pair == 0
    journeys = list(Correlator(window_ns=50_000_000).run(iter(events)))
    assert len(journeys) == 2 * len(events) // pair   # every request and reply, none cut short
    assert {len(j.hops) for j in journeys} == {pair // 2}


def test_stop_ends_the_events_at_once():
    src = SyntheticSource(rate=1_000, seconds=30)
    it = src.events()
    next(it)
    src.stop()
    assert sum(1 for _ in it) < 2_000
