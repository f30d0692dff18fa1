"""Lessons as data: reading and checking lesson files, placing steps on a journey, grading predictions
against what the journey did, and `flowviz teach` without root (the captures, saying so)."""

from __future__ import annotations

import pytest

from flowviz.errors import BadInput
from flowviz.lesson import bundled, load, parse, place
from flowviz.teach import prepare
from support import flowviz

MINIMAL = b'''
title = "t"
[[part]]
title = "p"
scenario = "swarm-ingress"
capture = "swarm-ingress.pcapng"
filter = { dport = 20229 }
[[part.step]]
at = { hop = "first" }
text = "x"
ask = "next-change"
question = "q?"
choices = ["snat", "encap"]
[[part.step]]
at = { netns = "ingress_sbox", dir = "tx" }
text = "y"
[[part.step]]
at = { change = "ipvs" }
text = "never on this path"
'''


def test_the_bundled_lessons_are_the_four_the_issue_asks_for_and_break():
    assert bundled() == ["bridge", "overlay", "ingress", "modes", "break"]
    for name in bundled():
        lesson = load(name)
        assert lesson.parts and all(p.steps for p in lesson.parts)


def test_lessons_may_name_exactly_the_faults_the_lab_makes():
    from flowviz.lab.faults import FAULTS
    from flowviz.reference import FAULTS as NAMED
    assert tuple(FAULTS) == NAMED


def test_a_prediction_missing_from_the_choices_is_added_and_graded_by_the_journey(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_bytes(MINIMAL)
    session = prepare(load(str(path)), want="capture")
    walk = session.walks[0]
    q = walk.stops[0].question
    assert q.added and q.choices == ["snat", "encap", "dnat"] and q.answers == {"route", "dnat"}
    assert q.right("dnat") and not q.right("snat")
    assert walk.journey.hops[walk.stops[1].hop].place == "node1:ingress_sbox/eth0"
    assert [s.text for s in walk.missed] == ["never on this path"]   # reported, not hidden


@pytest.mark.parametrize("old,new,said", [
    (b'scenario = "swarm-ingress"', b'scenario = "moon"', "scenario 'moon' is not one of"),
    (b'ask = "next-change"', b'ask = "guess"', "ask 'guess' is not one of"),
    (b'at = { hop = "first" }', b'at = { place = "x" }', "at takes hop, netns"),
    (b'at = { hop = "first" }', b'at = { change = "teleport" }', "not a change kind"),
    (b'choices = ["snat", "encap"]', b'choices = ["snat"]', "at least two choices"),
    (b'filter = { dport = 20229 }', b'filter = { dport = 99999 }', "filter: --dport 99999"),
    (b'title = "p"', b'title = "p"\nfault = "everything"', "fault 'everything' is not one of"),
    (b'title = "t"', b'title = "t"\ncolour = "red"', "unknown key 'colour'"),
    (b'text = "x"', b'text = "x', "not TOML"),
])
def test_a_bad_lesson_is_one_line_naming_the_place(old, new, said):
    assert old in MINIMAL
    with pytest.raises(BadInput) as e:
        parse(MINIMAL.replace(old, new), "mine.toml")
    assert "mine.toml" in str(e.value) and said in str(e.value) and "\n" not in str(e.value)


def test_teach_lists_lessons_and_bad_names_exit_2(tmp_path):
    r = flowviz("teach")
    assert r.returncode == 0 and "ingress" in r.stdout and "README.md" in r.stdout
    r = flowviz("teach", "nosuch")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no lesson named" in r.stderr
    r = flowviz("teach", str(tmp_path / "missing.toml"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_teach_text_from_the_captures_is_a_handout():
    r = flowviz("teach", "ingress", "--capture", "--text")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "from the bundled captures (asked for with --capture)" in out
    assert "2) dnat   <- the journey" in out and "1500 − 50 = 1450" in out
    assert "skipped" not in out and "1) client" in out               # the snat fault part: its recording
    assert out.count("? ") == sum(1 for p in load("ingress").parts for s in p.steps if s.ask)


def test_a_part_without_a_capture_is_skipped_on_the_captures_saying_why(tmp_path):
    path = tmp_path / "live-only.toml"
    path.write_bytes(MINIMAL.replace(b'capture = "swarm-ingress.pcapng"\n', b'fault = "mark"\n'))
    session = prepare(load(str(path)), want="capture")
    assert session.walks[0].journey is None and "needs the live lab" in session.walks[0].note
    r = flowviz("teach", str(path), "--capture", "--text")
    assert r.returncode == 0 and "(skipped: this part needs the live lab" in r.stdout


def test_place_keeps_the_steps_in_path_order():
    session = prepare(load("overlay"), want="capture")
    for walk in session.walks:
        hops = [s.hop for s in walk.stops]
        assert hops == sorted(hops) and not walk.missed
    j = session.walks[0].journey
    stops, missed = place(load("overlay").parts[0], j)
    assert [j.hops[s.hop].place for s in stops] == [
        "node1:web.1.x8k2m4n6p8q0/eth0", "node1:1-9a8b7c6d5e/vxlan0", "node1/eth0", "node2:1-9a8b7c6d5e/vxlan0",
        "node2:my_kafka1.1.f6nspi9w41ka9fkqs8a81i95b/eth1"] and missed == []
