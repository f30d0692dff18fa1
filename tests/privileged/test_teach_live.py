"""`flowviz teach` on the live lab: each lesson end to end in Pilot, with predictions graded against
the packets the tracer saw; the fault a lesson makes is put right, and a lab teach built is taken down."""

from __future__ import annotations

import asyncio

import pytest

from livetools import fv_programs
from support import flowviz
from flowviz.lab.net import list_lab_netns
from flowviz.lab.state import LabState
from flowviz.lesson import bundled, load
from flowviz.teach import prepare
from flowviz.tui.teach import TeachApp
from uitools import right_choice, walk_lesson

pytestmark = pytest.mark.privileged


@pytest.fixture
def no_lab(root_unchanged):
    flowviz("lab", "down")
    yield
    leftover = list_lab_netns()
    flowviz("lab", "down")
    assert leftover == [], "teach left the lab it built"
    assert fv_programs() == [], "a tracer stayed loaded"


async def answer_all(app) -> tuple[int, int]:
    async with app.run_test(size=(160, 48)) as pilot:
        await walk_lesson(app, pilot, right_choice)
        return app.score


@pytest.mark.parametrize("name", bundled())
def test_each_lesson_runs_on_the_live_lab(name, no_lab):
    # prepared before the app runs, as the CLI does (pyroute2 will not run inside an event loop)
    session = prepare(load(name), want="live")
    assert session.source == "the live lab"
    for walk in session.walks:
        assert walk.journey is not None, f"{walk.part.title}: {walk.note}"
        assert walk.missed == [], f"{walk.part.title}: the live path missed {[s.at for s in walk.missed]}"
        for stop in walk.stops:   # the lesson's choices held the real answer: nothing had to be added
            assert stop.question is None or not stop.question.added, (walk.part.title, stop.step.at)
    assert LabState.load().faults == {}
    right, asked = asyncio.run(answer_all(TeachApp(session, step_s=0.01)))
    assert right == asked >= 2


def test_the_broken_snat_part_shows_the_reply_astray(no_lab):
    session = prepare(load("ingress"), want="live")
    broken = session.walks[2]
    assert broken.part.fault == "snat"
    j = broken.journey
    assert j.hops[0].event.ifname == "eth2"                      # out of the task's docker_gwbridge leg
    assert not any("ingress_sbox" in (h.event.netns or "") for h in j.hops)
    last = j.hops[-1]
    assert last.place == "client/eth0" and last.event.drop_reason == "NO_SOCKET"
    good = session.walks[1].journey
    assert any("ingress_sbox" in (h.event.netns or "") for h in good.hops)


def test_teach_text_on_the_lab_and_bad_lessons(no_lab, tmp_path):
    r = flowviz("teach", "modes", "--text")
    assert r.returncode == 0, r.stderr
    assert "from the live lab" in r.stdout and "skipped" not in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('title = "x"\n[[part]]\ntitle = "p"\nscenario = "nowhere"\nstep = []\n')
    r = flowviz("teach", str(bad))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "scenario 'nowhere'" in r.stderr
