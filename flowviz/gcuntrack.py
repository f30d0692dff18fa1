"""``untrack(obj)``: a finished journey's records out of the cyclic garbage collector's lists; and
``record(cls, *fields)``, which makes a record without its NamedTuple constructor.

Hops, events, frames and changes are NamedTuples, which CPython keeps tracking for as long as they
live (it stops tracking plain tuples of plain values, never tuple subclasses), so every collection
of the young generation walks all the journeys made since the last one: at 100k sightings/s in the
TUI that was 20-120 ms with the GIL held (scripts/bench-tui). flowviz._untrack (C, built by
``pip install``/scripts/setup when a compiler is there) untracks them; without it, or with
FLOWVIZ_PURE_PYTHON=1, ``untrack`` returns its argument unchanged. Either way every value, and so
every output, is the same (tests/unit/test_gcuntrack.py compares them on every sample capture).
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_c: Any = None
if os.environ.get("FLOWVIZ_PURE_PYTHON") != "1":   # =1: the fallback (tests compare the two)
    try:
        _c = importlib.import_module("flowviz._untrack")
    except ImportError:   # not built (no compiler or headers at install): the same output, slower
        pass


def _same(obj: T) -> T:
    return obj


def _new(cls: type, *fields: Any) -> Any:
    return tuple.__new__(cls, fields)   # type: ignore[call-overload]


#: stop tracking ``obj`` and every tuple inside it, and return ``obj``
untrack = _c.untrack if _c is not None else _same
#: ``record(cls, *fields)``: ``tuple.__new__(cls, fields)`` (a NamedTuple without its constructor, which
#: is Python code), made in C when the helper is built: the hot path (flowviz/native.py) builds
#: several records a sighting, every field given in the class's order
record: Callable[..., Any] = _c.record if _c is not None else _new
BUILT = _c is not None   #: whether the C helper is in use (flowviz doctor says)
