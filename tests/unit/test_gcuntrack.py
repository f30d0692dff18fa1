"""flowviz._untrack takes a finished journey's records out of the garbage collector's lists; the
pure-Python fallback (not built, or FLOWVIZ_PURE_PYTHON=1) leaves them in. Values, and so every
output, are the same either way; likewise with the hot path compiled by mypyc (flowviz/native.py)
or run from its source."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from flowviz import gcuntrack
from flowviz.correlate import Correlator
from flowviz.sources.replay import ReplaySource
from support import sample, sample_captures

CAPTURES = sample_captures()
CORPUS = sorted(str(p) for p in (Path(__file__).parents[1] / "fuzz-corpus").iterdir())


class _Pair(NamedTuple):
    left: object
    right: object


def test_the_helper_is_built_here():
    assert gcuntrack.BUILT, "flowviz._untrack was not built: scripts/setup installs gcc and python3-dev for it"


def test_a_finished_journeys_records_are_untracked():
    src = ReplaySource([sample("swarm-ingress.pcapng")])
    journeys = list(Correlator(topology=src.topology).run(src.events()))
    hops = [h for j in journeys for h in j.hops]
    assert hops and any(h.changes for h in hops)
    for h in hops:
        records = [h, h.event, h.frame, h.transition, h.transition.changes, *h.changes, *h.frame.layers]
        assert not any(gc.is_tracked(r) for r in records), h
    assert all(gc.is_tracked(j) for j in journeys)   # the journey itself (a dataclass) is not a tuple


def test_only_tuples_are_untracked_and_what_they_hold_stays_alive():
    inner = _Pair("a", 1)
    held = {"key": [1, 2, 3]}   # mutable: stays tracked
    pair = gcuntrack.untrack(_Pair(inner, (held, ("deep", inner))))
    assert not gc.is_tracked(pair) and not gc.is_tracked(inner) and not gc.is_tracked(pair.right)
    assert gc.is_tracked(held) and gc.is_tracked(held["key"])
    del held
    gc.collect()   # referred to only from an untracked tuple: counts as referred to from outside
    assert pair.right[0] == {"key": [1, 2, 3]} and pair.right[1] == ("deep", _Pair("a", 1))
    assert gcuntrack.untrack(5) == 5 and gcuntrack.untrack("text") == "text"


def test_a_record_is_what_tuple_new_makes():
    """``record`` (C when built) is the hot path's way to make a NamedTuple without its constructor."""
    for make in (gcuntrack.record, gcuntrack._new):
        pair = make(_Pair, "a", [1])
        assert type(pair) is _Pair and pair == tuple.__new__(_Pair, ("a", [1])) and pair.right == [1]
        assert gc.is_tracked(pair)   # as tuple.__new__ leaves it: untracking is the correlator's choice
        assert make(tuple) == () and type(make(_Pair)) is _Pair   # no check of the field count: neither checks
    for bad in ((), (int, 1), ("not a class",)):
        try:
            gcuntrack.record(*bad)
        except TypeError:
            continue
        raise AssertionError(f"record{bad} did not refuse")


def test_a_correlator_whose_journeys_are_written_and_dropped_leaves_them_tracked():
    src = ReplaySource([sample("swarm-ingress.pcapng")])
    journeys = list(Correlator(topology=src.topology, untrack=False).run(src.events()))
    assert journeys and all(gc.is_tracked(h) for j in journeys for h in j.hops)


def test_journeys_are_untracked_where_they_are_kept_and_only_there():
    """replay and follow ask for untracking (keeps_journeys) in the TUI and with pictures to draw,
    which keep journeys; JSON or text alone writes each and drops it."""
    from flowviz.follow import keeps_journeys
    assert keeps_journeys("tui", []) and keeps_journeys("json", ["a picture"]) and keeps_journeys("text", ["a picture"])
    assert not keeps_journeys("json", []) and not keeps_journeys("text", [])


def _outputs(pure: bool) -> str:
    """Every sample capture's and fuzz-corpus file's JSON Lines and text output (or the error it
    gives), from a fresh interpreter; first what doctor says of the C helper and the compiled modules."""
    code = (
        "import io, sys\n"
        "from flowviz import gcuntrack, native\n"
        "from flowviz.correlate import Correlator\n"
        "from flowviz.pipeline import Pipeline\n"
        "from flowviz.render.jsonl import JsonLinesWriter\n"
        "from flowviz.render.text import TextWriter\n"
        "from flowviz.sources.replay import ReplaySource\n"
        "from flowviz.sources.doctor import _native_check, _untrack_check\n"
        "check, compiled = _untrack_check(), _native_check()   # what flowviz doctor says\n"
        "print('built', gcuntrack.BUILT, check.ok, check.detail.split(':')[0], compiled.ok,\n"
        "      sorted(set(native.in_use().values())))\n"
        "for path in sys.argv[1:]:\n"
        "    js, text = io.StringIO(), io.StringIO()\n"
        "    try:\n"
        "        src = ReplaySource([path])\n"
        "        Pipeline(src, Correlator(topology=src.topology), [JsonLinesWriter(js), TextWriter(text)]).run()\n"
        "        problems = [str(p) for p in src.problems]\n"
        "    except Exception as e:\n"
        "        problems = [f'{type(e).__name__}: {e}']\n"
        "    sys.stdout.write(path + '\\n' + js.getvalue() + text.getvalue() + repr(problems) + '\\n')\n"
    )
    env = dict(os.environ, FLOWVIZ_PURE_PYTHON="1" if pure else "0")
    r = subprocess.run([sys.executable, "-c", code, *CAPTURES, *CORPUS],
                       capture_output=True, text=True, env=env, timeout=300, check=True)
    return r.stdout


def test_the_pure_python_fallback_gives_the_same_output_on_every_sample_capture_and_doctor_says_which():
    """Both C parts (this helper, and the modules mypyc compiles: flowviz/native.py) against Python."""
    built, pure = _outputs(pure=False), _outputs(pure=True)
    assert built.startswith("built True True built True [True]\n")
    assert pure.startswith("built False False not in use False [False]\n")
    assert len(CAPTURES) >= 10 and built.count('"type": "journey"') > 20
    assert len(CORPUS) >= 5 and built.count("Error: ") + built.count("['") >= 1   # the corpus's errors, too
    assert built.split("\n", 1)[1] == pure.split("\n", 1)[1]
