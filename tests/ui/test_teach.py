"""`flowviz teach` in the TUI, driven with Pilot over the bundled captures: every lesson end to end,
predictions included, graded against the journey that was read (not a script)."""

from __future__ import annotations

import pytest

from flowviz.lesson import bundled, load
from flowviz.teach import prepare
from flowviz.tui.teach import TeachApp
from uitools import right_choice, walk_lesson, wrong_choice

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("name", bundled())
async def test_every_lesson_runs_end_to_end_on_the_captures(name):
    session = prepare(load(name), want="capture")
    app = TeachApp(session, step_s=0.01)
    async with app.run_test(size=(160, 48)) as pilot:
        await walk_lesson(app, pilot, right_choice)
        right, asked = app.score
        assert asked == right == sum(1 for w in session.walks for s in w.stops if s.question)
        assert asked >= 2
        assert "You predicted" in str(app.query_one("#story").render())


async def test_a_prediction_is_graded_against_the_real_journey():
    session = prepare(load("ingress"), want="capture")
    assert "asked for with --capture" in session.source
    app = TeachApp(session, step_s=0.01)
    async with app.run_test(size=(160, 48)) as pilot:
        assert app.stop_i == -1 and "routing mesh makes that port answer" in str(app.query_one("#story").render())
        await pilot.press("space")                       # to the first stop: the client's SYN
        await pilot.pause()
        q = app.question
        assert q.text == "What happens to the packet first, on node1?"
        assert q.answers == {"route", "dnat"}            # what hop 2 of the capture did
        await pilot.press("space")                       # no answer yet: it waits for one
        assert app.stop_i == 0
        await pilot.press(str(q.choices.index("deliver") + 1))
        story = str(app.query_one("#story").render())
        assert "Not this time" in story and "dnat 192.168.21.192:20229→172.18.0.2:20229" in story
        await pilot.press("2")                           # one answer per question
        assert app.answers[(0, 0)] == "deliver" and app.score == (0, 1)
        await pilot.press("space")
        await pilot.pause(0.3)
        assert app.hop == app.stop.hop and app.walk.journey.hops[app.hop].place == "node1/docker_gwbridge"
        await pilot.press(str(right_choice(app.question)))
        assert "Right." in str(app.query_one("#story").render()) and app.score == (1, 2)


async def test_the_encap_stop_draws_the_bytes_and_the_fault_part_reads_its_recording():
    session = prepare(load("ingress"), want="capture")
    astray = session.walks[2].journey   # pcaps/fault-snat.pcapng: recorded by scripts/record-faults
    assert astray.hops[0].event.ifname == "eth2" and astray.hops[-1].event.drop_reason == "NO_SOCKET"
    app = TeachApp(session, step_s=0.01)
    async with app.run_test(size=(160, 48)) as pilot:
        while not (app.stop is not None and app.stop.step.show == "bytes" and app.target is None):
            if app.question is not None and (app.walk_i, app.stop_i) not in app.answers:
                await pilot.press(str(wrong_choice(app.question)))
            await pilot.press("space")
            await pilot.pause()
        detail = str(app.query_one("#detail").render())
        assert "1500 − 50 = 1450" in detail and "VXLAN adds 50 bytes" in detail
        await walk_lesson(app, pilot, wrong_choice)
        assert app.score[0] == 0
