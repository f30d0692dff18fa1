"""Journeys that lost sightings in the ring buffer say so (#12): the kernel flags the next event of
an skb whose sighting it could not hand over, and the live source reports losses as they happen, so a
journey open then whose end never arrived is marked too; never a shorter path shown as whole."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowviz.correlate import Correlator
from flowviz.model import FREE, LOST, HopEvent
from flowviz.render.jsonl import journey_object
from flowviz.render.pcapng import PcapngRecorder
from flowviz.render.text import journey_lines
from flowviz.sources.replay import ReplaySource
from test_correlate import SYN, T0, ev

PATH = ["c1/eth0", "host/vethA", "host/vethB", "c2/eth0"]


def sightings(skb=0x10, gap_at=None):
    out = []
    for i, place in enumerate(PATH):
        out.append(ev(i, place, "rx" if i % 2 else "tx", SYN, skb=skb, gap=(i == gap_at)))
    return out


def free(i, skb=0x10, gap=False):
    return HopEvent(T0 + i * 1000, "", FREE, b"", skb=skb, gap=gap)


def lost(i):
    return HopEvent(T0 + i * 1000, "", LOST, b"")


def one(events):
    js = list(Correlator().run(events))
    assert len(js) == 1
    return js[0]


def test_a_whole_journey_is_complete():
    j = one(sightings() + [free(9)])
    assert not j.incomplete and "incomplete" not in journey_object(j)


def test_a_hole_the_kernel_reported_marks_it():
    evs = sightings(gap_at=2)
    del evs[1]   # what was lost before the flagged sighting
    j = one(evs + [free(9)])
    assert j.incomplete and journey_object(j)["incomplete"] is True
    assert "INCOMPLETE" in journey_lines(j)[0]


def test_losses_while_open_mark_it_unless_its_end_came_after():
    evs = sightings()
    assert one(evs[:3] + [lost(5)]).incomplete                     # its tail may be what was lost
    assert not one(evs + [lost(5), free(9)]).incomplete            # the end came, with no gap: whole
    assert one(evs + [lost(5), free(9, gap=True)]).incomplete      # the end says a sighting went missing
    assert not one([lost(0)] + evs + [free(9)]).incomplete         # losses before it do not touch it


def test_a_recording_keeps_the_mark(tmp_path):
    j = one(sightings()[:3] + [lost(5)])
    rec = PcapngRecorder(str(tmp_path / "r.pcapng"))
    rec.journey(j)
    rec.close()
    src = ReplaySource([rec.path])
    again = list(Correlator(topology=src.topology).run(src.events()))
    assert len(again) == 1 and again[0].incomplete


def test_the_status_line_shows_shed_flows_apart_from_lost_sightings():
    from flowviz.sources import SourceStatus
    from flowviz.tui.panels import status_text

    def line(**counts):
        st = SourceStatus("live", "6 raw tracepoints", events=100, **counts)
        return status_text(st, filter_text="dport 20229", playing=True, speed=4.0, follow=True, held=3,
                           finished=False, problems=[]).plain
    assert "lost 0" in line() and "shed" not in line()
    both = line(lost=7, shed=3)
    assert "lost 7" in both and "shed 3 flows" in both


def test_a_compact_sighting_takes_its_skbs_last_bytes():
    """The kernel sends a sighting whose bytes did not change without them; the live source gives it
    the skb's last bytes, forgets them at its end, and, had it none, marks the gap."""
    from flowviz.sources.records import FV_EV_COMPACT, FV_EV_GAP, SNAPS_MAX, Records

    src = Records(0, None, {})
    assert src.bytes_of(1, b"frame", 0, False) == (b"frame", 0)
    assert src.bytes_of(1, b"", FV_EV_COMPACT, False) == (b"frame", FV_EV_COMPACT)
    assert src.bytes_of(1, b"other", 0, False) == (b"other", 0)
    assert src.bytes_of(1, b"", FV_EV_COMPACT, True) == (b"other", FV_EV_COMPACT)   # its end: forgotten
    assert src.bytes_of(1, b"", FV_EV_COMPACT, False) == (b"", FV_EV_COMPACT | FV_EV_GAP)
    assert src.compact == 3 and src.snaps == {}
    for skb in range(SNAPS_MAX + 10):
        src.bytes_of(skb, b"x", 0, False)
    assert len(src.snaps) == SNAPS_MAX and 0 not in src.snaps and SNAPS_MAX + 9 in src.snaps


class _Ring:
    """A kernel ring buffer as libbpf's consume hands it over: records to the callback, in order, until
    it is empty or the callback returns a negative number (that record taken, the rest left)."""

    def __init__(self, src, records: int):
        import ctypes
        self.src, self.left, self.takes = src, records, []
        self.rec = ctypes.create_string_buffer(b"x" * 24)

    def ring_buffer_consume(self):
        import ctypes
        taken = 0
        while self.left:
            self.left -= 1
            taken += 1
            if self.src._on_event(None, ctypes.addressof(self.rec), 24) < 0:
                break
        self.takes.append(taken)

    made: int = -1   #: bytes the programs put in (fv_ring_use[0]); -1: the map is not there

    def __getitem__(self, name):
        if name == "fv_ring_use" and self.made >= 0:
            return _Use(self.made)
        raise KeyError(name)   # the lost count: the source's own (_lost), set by the test


class _Use:
    """fv_ring_use as bcc hands it over: [c_int(0)].value, the bytes the programs put in."""

    def __init__(self, made: int):
        self.made = made

    def __getitem__(self, key):
        from types import SimpleNamespace
        assert key.value == 0
        return SimpleNamespace(value=self.made)


class _Mapped(_Ring):
    """The same ring as flowviz.sources.ringbuf.MappedRing hands it over: at most ``limit`` a take."""

    def take(self, limit: int):
        n = min(self.left, limit)
        self.left -= n
        self.takes.append(n)
        return [b"x" * 24] * n, n * 32


def _ringed_source(monkeypatch, records: int, reader: str):
    """A LiveSource with its bookkeeping alone (nothing attached) over a ring of ``records`` that
    ``reader`` takes from; the waits between takes are recorded instead of slept."""
    from flowviz.sources import live
    from flowviz.sources.live import LiveSource

    waits: list = []
    monkeypatch.setattr(live.time, "sleep", waits.append)
    src = LiveSource.__new__(LiveSource)
    src._pending, src._stopped, src.delivered = [], False, 0
    src._read_bytes = src._told = 0
    src._lost = 0
    src._tell_read = lambda: None
    src.convert = lambda raw: HopEvent(1, "eth0", "rx", raw)
    ring = src.bpf = (_Mapped if reader == "mapped" else _Ring)(src, records)
    src._ring = ring if reader == "mapped" else None
    return src, ring, waits


@pytest.mark.parametrize("reader", ["mapped", "libbpf"])
def test_a_take_stops_at_poll_max_and_a_loss_is_marked_until_a_take_drained_the_ring(monkeypatch, reader):
    """Under load a poll kept converting while the kernel kept producing; now a take stops at
    POLL_MAX and the batch is correlated first, and the next take comes at once (no wait of POLL_S:
    the ring holds more). A loss counted while records committed before it may still wait in the
    ring is marked after each batch until one take drained the ring."""
    from flowviz.model import LOST
    from flowviz.sources import live

    monkeypatch.setattr(live, "POLL_MAX", 100)
    monkeypatch.setattr(live, "POLL_S", 0.001)
    src, ring, waits = _ringed_source(monkeypatch, 250, reader)
    out = []
    for got in src.events():
        if got is None:   # the ring is empty
            break
        if len(out) == 0:
            src._lost = 3   # counted while the first batch is correlated
        out.append(got.dir)
    assert ring.takes == [100, 100, 50, 0] and waits == [0.001, 0.001]   # before the first, and after 50
    marks = [i for i, d in enumerate(out) if d == LOST]
    # the loss was read before the second take, which stopped at POLL_MAX: a marker after its batch,
    # and again after the third's, which drained the ring; none after that
    assert marks == [200, 251] and len(out) == 252
    assert src.delivered == 250 and (reader == "libbpf" or src._read_bytes == 250 * 32)


@pytest.mark.parametrize("reader", ["mapped", "libbpf"])
def test_an_empty_ring_is_looked_at_less_often_and_a_sighting_brings_the_pace_back(monkeypatch, reader):
    """The kernel wakes no one: the follower looks every POLL_S while sightings come, and waits twice
    as long after each empty look, up to POLL_IDLE_S."""
    from flowviz.sources import live

    monkeypatch.setattr(live, "POLL_S", 0.01)
    monkeypatch.setattr(live, "POLL_IDLE_S", 0.05)
    src, ring, waits = _ringed_source(monkeypatch, 0, reader)
    got = src.events()
    assert [next(got) for _ in range(5)] == [None] * 5
    ring.left = 2
    assert [next(got).dir for _ in range(2)] == ["rx", "rx"] and next(got) is None
    assert waits == [0.01, 0.02, 0.04, 0.05, 0.05, 0.05, 0.01]


def test_the_cpu_budget_owes_a_wait_only_past_its_share():
    """follow --cpu: the follower waits before its next take until its CPU time is within the share
    of the wall time since the window began; the next window begins when that wait ends."""
    from flowviz.sources.live import CpuBudget
    now = {"wall": 90.0, "cpu": 2.0}
    b = CpuBudget(0.25, clock=lambda: now["wall"], used=lambda: now["cpu"])
    now["wall"], now["cpu"] = 100.0, 10.0      # 8 s of CPU before the first take (starting up): not counted
    assert b.owed() == 0.0
    now["wall"], now["cpu"] = 100.4, 10.1      # 0.1 s of CPU in 0.4 s: exactly a quarter
    assert b.owed() == pytest.approx(0.0)
    now["cpu"] = 10.3                           # 0.3 s of CPU in 0.4 s: 1.2 s of wall time it should have taken
    assert b.owed() == pytest.approx(0.8)
    now["wall"] = 101.2                         # waited: within the share, and a window is over
    assert b.owed() == pytest.approx(0.0)
    now["wall"], now["cpu"] = 101.6, 10.4      # the new window: 0.1 s of CPU in 0.4 s
    assert b.owed() == pytest.approx(0.0)
    now["cpu"] = 10.8                           # 0.5 s in 0.4 s
    assert b.owed() == pytest.approx(1.6)


@pytest.mark.parametrize("reader", ["mapped", "libbpf"])
def test_over_its_cpu_budget_the_follower_waits_before_it_takes(monkeypatch, reader):
    """What the budget owes is waited, in naps a stop can cut short, before the next take; the
    waiting is counted for the end's report."""
    from flowviz.sources import live

    monkeypatch.setattr(live, "POLL_S", 0.01)
    src, ring, waits = _ringed_source(monkeypatch, 3, reader)
    owed = iter([0.12, 0.0])

    class Budget:
        waited = 0.0

        def owed(self):
            return next(owed)

    src.budget = Budget()
    got = src.events()
    assert [next(got).dir for _ in range(3)] == ["rx"] * 3
    assert waits == [0.01, 0.05, 0.05, pytest.approx(0.02)]   # the poll, then the budget's naps, then the take
    assert ring.takes[0] == 3 and src.budget.waited == pytest.approx(0.12)


def test_the_cpu_budget_counts_only_the_thread_that_takes():
    """The TUI draws on another thread: CPU that thread uses is not the follower's, and must not make it
    owe a wait (a drawing that used up the share alone would owe one that only grew)."""
    import threading
    import time
    from flowviz.sources.live import CpuBudget
    b = CpuBudget(0.01)
    assert b.owed() == 0.0   # the window begins
    spun = threading.Event()

    def draw():   # another thread, busy for 0.3 s of CPU
        t = time.thread_time()
        while time.thread_time() - t < 0.3:
            pass
        spun.set()

    threading.Thread(target=draw).start()
    assert spun.wait(30)
    assert b.owed() == 0.0   # this thread slept meanwhile: nothing owed, whatever the other used


@pytest.mark.parametrize("asked,flt,netns,share", [
    (None, {}, None, (0.10, True)),                   # following everything: the default share
    (None, {}, "web", (None, False)),                 # a namespace picked: its flows, whole
    (None, {"dport": 80}, None, (None, False)),       # a filter: the flows asked for, whole
    (None, {"expr": "tcp"}, None, (None, False)),
    (25.0, {}, None, (0.25, False)),                  # asked for
    (5.0, {"dport": 80}, None, (0.05, False)),
    (100.0, {}, None, (None, False)),                 # 100: no limit
])
def test_following_everything_keeps_a_cpu_share_unless_asked_otherwise(asked, flt, netns, share):
    from flowviz.filter import FlowFilter
    from flowviz.follow import ALL_CPU_PERCENT, cpu_share
    helped = subprocess.run([sys.executable, "-m", "flowviz", "follow", "--help"], capture_output=True,
                            text=True).stdout
    assert f"the default is {ALL_CPU_PERCENT:g};" in " ".join(helped.split())   # as `follow --help` says
    got = cpu_share(asked, FlowFilter(**flt), netns)
    assert (pytest.approx(got[0]) if got[0] is not None else None, got[1]) == share


@pytest.mark.parametrize("reader", ["mapped", "libbpf"])
def test_stopped_the_follower_takes_what_the_ring_held_then_and_ends(monkeypatch, reader):
    """A stop (^C, --duration) while the ring still holds sightings, as it does under a budget: those
    were made before the stop, and a followed packet's later hops may be among them. They are taken
    at once (the budget's wait is not waited), what came after is not waited for, and the sightings end."""
    from flowviz.sources import live

    monkeypatch.setattr(live, "POLL_MAX", 100)
    src, ring, waits = _ringed_source(monkeypatch, 250, reader)
    owing = []

    class Budget:
        waited = 0.0

        def owed(self):
            owing.append(1)
            return 0.0 if len(owing) == 1 else 10.0   # over budget after the first take

    src.budget = Budget()
    got = src.events()
    first = [next(got) for _ in range(100)]
    ring.made = 250 * 32   # all 250 put in by now (32 ring bytes each)
    src.stop()
    ring.left += 500       # sighted after the stop: more than one take
    rest = list(got)       # it ends
    # the two takes that reach the stop's bytes (100 a take: the second runs 50 past them), no more
    assert len(first) + len(rest) == 300 and all(e.dir == "rx" for e in rest) and ring.left == 450
    assert len(owing) == 1 and src.budget.waited == 0.0 and waits == [live.POLL_S]   # never waited again


def test_a_stopped_pipeline_takes_what_the_source_still_gives():
    """Pipeline.stop (a signal handler, the UI, --duration) asks the source to end and takes what it
    gives until it does, then finishes the journeys still open."""
    from flowviz.pipeline import Pipeline
    from test_correlate import SYN, T0, ev

    class Source:
        kind = "live"
        stopped = False

        def events(self):
            for i, (place, d) in enumerate((("c1/eth0", "tx"), ("u/p-c1", "rx"), ("u/p-n1", "tx"))):
                yield ev(i, place, d, SYN)
                if i == 0:
                    pipeline.stop()   # more was already made
            assert self.stopped

        def now_ns(self):
            return T0

        def stop(self):
            self.stopped = True

    pipeline = Pipeline(Source(), Correlator())
    journeys = [j for step in pipeline.steps() for j in step]
    assert [[h.event.place for h in j.hops] for j in journeys] == [["c1/eth0", "u/p-c1", "u/p-n1"]]


def test_a_stop_that_cannot_take_the_rest_in_time_marks_the_open_journeys(monkeypatch):
    """The rest of the ring is taken for at most DRAIN_S (the TUI waits 3 s for the feeder): what is
    left then counts as lost, so the journeys still open are marked, not shown short."""
    from flowviz.model import LOST
    from flowviz.sources import live

    monkeypatch.setattr(live, "POLL_MAX", 100)
    monkeypatch.setattr(live, "DRAIN_S", 0.0)
    src, ring, _ = _ringed_source(monkeypatch, 250, "mapped")
    got = src.events()
    assert [next(got).dir for _ in range(100)] == ["rx"] * 100
    ring.made = 250 * 32
    src.stop()
    assert [e.dir for e in got] == [LOST]


def test_the_status_line_says_the_follower_keeps_to_a_cpu_share(monkeypatch):
    """The TUI shows no start-up line: its status line says why new flows are shed on a busy host."""
    import time
    from flowviz.sources.live import CpuBudget
    src, _, _ = _ringed_source(monkeypatch, 0, "mapped")
    src.attached, src.tracepoints, src.notices = ["a", "b"], "raw", []
    src._refused, src._rate, src._rate_mark = (3, 0), 0.0, (time.monotonic(), 0)
    assert src.status().label == "2 raw tracepoints" and src.status().shed == 3
    src.budget = CpuBudget(0.1, default=True)
    assert src.status().label == "2 raw tracepoints, within 10% of a CPU"
