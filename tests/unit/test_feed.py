"""The TUI's feeder thread: how it shares the GIL with the UI thread."""

from __future__ import annotations

from flowviz.correlate import Correlator


def test_the_feeder_leaves_the_gil_to_a_ui_thread_behind_its_heartbeat(monkeypatch):
    """At each hand-off the feeder sleeps UI_TURN_S when the app's heartbeat is older than
    BEAT_LATE_S (the UI thread waits for the GIL or works through a batch), else only sleep(0); with
    no app beating (None) it never waits."""
    from flowviz.tui import feed

    f = feed.Feeder(object(), Correlator(), lambda msg: None)   # never started: no source needed
    slept = []
    monkeypatch.setattr(feed.time, "sleep", slept.append)
    f._hand_off(100.0)
    f.beat = 100.0 - feed.BEAT_LATE_S / 2
    f._hand_off(100.0)
    f.beat = 100.0 - feed.BEAT_LATE_S * 2
    f._hand_off(100.0)
    assert slept == [0, 0, feed.UI_TURN_S] and f.turns == 1

