"""Under load: 50,000 synthetic sightings/s for 10 s, and the app still answers key presses.

The feeder thread correlates as fast as it can (the source never waits for the UI); the UI gets
coalesced batches of journeys and holds at most 10,000 of them. How fast keys are answered is a
figure scripts/bench-tui prints; this test checks that they are answered at all (a hang guard).
"""

from __future__ import annotations

import time

import pytest

from flowviz.correlate import Correlator
from flowviz.sources.synthetic import SyntheticSource

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

RATE, SECONDS = 50_000, 10.0
HANG = 15.0   # seconds: a key not acted on by then is a hung UI, not a slow one


async def answered(app, pilot, key: str, char: str, changed) -> bool:
    from textual import events
    t0 = time.monotonic()
    app.post_message(events.Key(key, char))   # as the terminal driver delivers keys
    while not changed() and time.monotonic() - t0 < HANG:
        await pilot.pause(0.01)
    return changed()


async def test_keys_still_answer_under_load(make_app):
    src = SyntheticSource(RATE, SECONDS)
    app = make_app(source=src, correlator=Correlator(window_ns=200_000_000), autoplay=True)
    async with app.run_test(size=(170, 50)) as pilot:
        await pilot.pause(3.0)   # load running
        assert app.journeys, "nothing arrived"
        before = app.current.id
        assert await answered(app, pilot, "n", "n", lambda: app.current.id != before)
        speed = app.speed
        assert await answered(app, pilot, "plus", "+", lambda: app.speed != speed)
        await pilot.pause(4.0)   # thousands of packets held by now
        before = app.current.id
        assert await answered(app, pilot, "p", "p", lambda: app.current.id != before)
        shown = app.query_one("#explainbox").display
        await pilot.press("e")   # and through Pilot
        assert app.query_one("#explainbox").display is not shown
        t0 = time.monotonic()
        while app.feeder.is_alive() and time.monotonic() - t0 < SECONDS + 60:
            await pilot.pause(0.2)
        assert src.offered >= RATE * SECONDS * 0.9   # the load really was offered
        assert 0 < len(app.journeys) <= app.max_journeys
        if app.feeder.delivered > app.max_journeys:   # the cap was reached: the oldest fifth went at once
            assert len(app.journeys) >= app.max_journeys * 4 // 5
        assert app.query_one("#journeys").row_count == len(app.journeys)


async def test_the_oldest_rows_go_in_one_pass_and_the_list_stays_the_journeys(make_app, monkeypatch):
    """Past max_journeys the oldest fifth leaves the list (DataTable rows dropped in one pass, not
    the list drawn again): the rows are the journeys held, in order, and the cursor stays on the
    journey it was on."""
    from flowviz.tui.panels import JourneyList
    one_pass = []
    drop_first = JourneyList.drop_first

    def spied(table, n):
        one_pass.append(drop_first(table, n))
        return one_pass[-1]
    monkeypatch.setattr(JourneyList, "drop_first", spied)
    src = SyntheticSource(800, 4.0)   # a few journeys a batch: fewer than the list holds
    app = make_app(source=src, correlator=Correlator(window_ns=50_000_000))
    app.max_journeys = 40
    async with app.run_test(size=(170, 50)) as pilot:
        await pilot.pause(0.5)
        t0 = time.monotonic()
        while app.feeder.is_alive() and time.monotonic() - t0 < 60:
            await pilot.pause(0.1)
        await pilot.pause(0.5)
        table = app.query_one("#journeys")
        assert app.feeder.delivered > 3 * app.max_journeys and one_pass and all(one_pass)
        assert [row.key.value for row in table.ordered_rows] == [str(i) for i in app.journeys]
        assert 32 <= len(app.journeys) <= 40
        row = table.cursor_coordinate.row
        assert table.ordered_rows[row].key.value == str(app.current.id)


async def test_a_burst_is_listed_a_chunk_a_message_and_what_the_list_cannot_hold_is_counted(make_app, monkeypatch):
    """More journeys at once than the list holds: the ones that could never be listed are counted
    (status line), the rest are taken INTAKE at a time, a timer apart, so keys queued meanwhile are answered in
    between; the table's size follows its rows without measuring them."""
    import dataclasses

    from textual import events

    from flowviz.tui import app as app_module
    from flowviz.tui.app import FlowvizApp
    from flowviz.tui.messages import JourneysReady
    intake = 10   # small chunks: many of them, as a real burst makes with INTAKE
    monkeypatch.setattr(app_module, "INTAKE", intake)
    app = make_app("swarm-ingress.pcapng")
    app.max_journeys = 30 * intake
    async with app.run_test(size=(170, 50)) as pilot:
        while app.feeder.is_alive():
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        assert app.journeys, "the source gave nothing to copy"
        model = next(iter(app.journeys.values()))
        first = max(app.journeys) + 1
        burst = 40 * intake + 7
        app.feeder.outbox.extend(dataclasses.replace(model, id=first + i) for i in range(burst))
        def outbox_at(method: str) -> list:
            """The outbox's length each time FlowvizApp.<method> runs, before it does."""
            seen, real = [], getattr(FlowvizApp, method)

            def spied(self, *args):
                seen.append(len(self.feeder.outbox))
                return real(self, *args)
            monkeypatch.setattr(FlowvizApp, method, spied)
            return seen
        taken, waiting_at_key = outbox_at("on_journeys_ready"), outbox_at("action_speed")
        speed = app.speed
        app.post_message(JourneysReady())
        app.post_message(events.Key("plus", "+"))   # queued behind the burst, as a key typed then
        for _ in range(600):   # until the burst is all listed (a timer apart: slow on a busy machine)
            if not app.feeder.outbox and app.speed != speed:
                break
            await pilot.pause(0.05)
        assert app.speed != speed
        assert waiting_at_key and waiting_at_key[0] > 0   # answered before the burst was all listed
        assert not app.feeder.outbox
        assert len(taken) >= 3 and taken[0] > taken[1] > taken[2]   # a chunk at a time
        assert app.unlisted == burst - app.max_journeys   # older than the list could ever hold
        assert list(app.journeys)[-1] == first + burst - 1   # the newest are listed
        table = app.query_one("#journeys")
        assert table.row_count == len(app.journeys)
        assert [row.key.value for row in table.ordered_rows] == [str(i) for i in app.journeys]
        assert table.virtual_size.height == table.row_count + 1   # the header's line
        from textual.widgets import DataTable   # line → row as Textual's own list has it
        lines = table._y_offsets
        assert [lines[y] for y in range(len(lines))] == DataTable._y_offsets.fget(table)
        status = str(app.query_one("#status").render())
        assert f"({app.unlisted} came too fast to list)" in status


async def test_a_batch_of_rows_leaves_the_table_as_add_row_does(make_app):
    """JourneyList.add does add_row's bookkeeping once a batch: the rows, cells, keys, positions,
    size and cursor are what Textual's own add_row, one row at a time, makes of the same journeys."""
    import dataclasses

    from flowviz.tui.panels import JourneyList
    app = make_app("swarm-ingress.pcapng")
    async with app.run_test(size=(170, 50)) as pilot:
        while app.feeder.is_alive():
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        model = next(iter(app.journeys.values()))
        batch = [dataclasses.replace(model, id=10_000 + i, reply_to=i if i % 3 == 0 else None,
                                     incomplete=i % 4 == 0) for i in range(50)]
        ours, theirs = JourneyList(id="ours"), JourneyList(id="theirs")
        await app.screen.mount(ours, theirs)
        await pilot.pause()
        one_by_one = []
        ours.add_row = lambda *cells, **kw: one_by_one.append(kw)   # the fallback, not taken here
        ours.add(batch[:1])   # from empty: the cursor gets its first cell
        ours.add(batch[1:])
        assert not one_by_one
        del ours.add_row
        for j in batch:
            theirs.add_row(*JourneyList._cells(j), key=str(j.id))
        await pilot.pause(0.2)

        def state(t: JourneyList):
            rows = t.ordered_rows
            return ([(r.key.value, r.height, r.label, r.auto_height) for r in rows],
                    [[str(c) for c in t.get_row(r.key)] for r in rows],
                    [t.get_row_index(r.key) for r in rows], t.row_count, t.virtual_size, t.cursor_coordinate,
                    sorted(k.value for k in t._new_rows))
        assert state(ours) == state(theirs)
        cells = [str(c) for c in ours.get_row("10000")]
        assert cells[:2] == ["10000", "↩ 0"] and cells[3] == f"{len(model.hops)}!" and "→" in cells[2]
        assert ours.render_line(1) == theirs.render_line(1) and ours.render_line(50) == theirs.render_line(50)


class _Idle:
    """A live-like source with nothing to say until end() (an idle tick every 10 ms meanwhile)."""
    kind = "live"
    problems: list = []

    def __init__(self):
        self.ended = False

    def events(self):
        while not self.ended:
            time.sleep(0.01)
            yield None

    def end(self):
        self.ended = True

    stop = close = end

    def now_ns(self):
        return time.time_ns()

    def status(self):
        from flowviz.sources import SourceStatus
        return SourceStatus("live", "idle")


async def test_the_app_beats_while_the_feeder_runs_and_stops_after(make_app):
    """The heartbeat the feeder reads (feed.BEAT_LATE_S) comes every BEAT_S while the source may
    still give journeys; once it has finished there is nobody to tell, and the app's timer stops."""
    from flowviz.tui.app import BEAT_S

    src = _Idle()
    app = make_app(source=src, correlator=Correlator())
    async with app.run_test(size=(170, 50)) as pilot:
        first = app.feeder.beat
        assert first is not None
        await pilot.pause(BEAT_S * 5)
        assert app.feeder.beat > first
        src.end()
        while not app.finished:
            await pilot.pause(0.05)
        last = app.feeder.beat
        await pilot.pause(BEAT_S * 5)
        assert app.feeder.beat == last
