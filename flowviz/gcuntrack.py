"""``untrack(obj)``: a finished journey's records out of the cyclic garbage collector's lists.

Hops, events, frames and changes are NamedTuples, which CPython keeps tracking for as long as they
live (it stops tracking plain tuples of plain values, never tuple subclasses), so every collection
of the young generation walks all the journeys made since the last one: at 100k sightings/s in the
TUI that was 20-120 ms with the GIL held (scripts/bench-tui). flowviz._untrack (C, built by
``pip install``/scripts/setup when a compiler is there) untracks them; without it, or with
FLOWVIZ_PURE_PYTHON=1, ``untrack`` returns its argument unchanged. Either way every value, and so
every output, is the same (tests/unit/test_gcuntrack.py compares them on every sample capture).
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

_untrack = None
if os.environ.get("FLOWVIZ_PURE_PYTHON") != "1":   # =1: the fallback (tests compare the two)
    try:
        from ._untrack import untrack as _untrack
    except ImportError:   # not built (no compiler or headers at install): the same output, more GC work
        pass


def _same(obj: T) -> T:
    return obj


#: stop tracking ``obj`` and every tuple inside it, and return ``obj``
untrack = _untrack if _untrack is not None else _same
BUILT = _untrack is not None   #: whether the C helper is in use (flowviz doctor says)
