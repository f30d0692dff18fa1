"""Source → correlator → sinks: the one loop that drives every output.

``flowviz replay`` (text, JSON), ``follow`` (text, JSON, the TUI's feeder thread)
and the benchmarks all run a source through a correlator the same way:

* a sighting goes to :meth:`Correlator.feed`; ``None`` (a live source with
  nothing to say) lets idle journeys finish through :meth:`Correlator.expire`;
* every finished journey goes to each sink (``journey(j)``: a writer, a
  recorder) and is counted;
* it stops when the source ends, when ``count`` journeys were taken, when
  ``duration`` seconds have passed, or on :meth:`stop` (a signal handler, the
  UI). The last two ask the source to end, and what it gives until then is
  still taken (a live source: what its ring buffer held at the stop). Then the
  journeys still open are finished too (unless ``count`` was reached: those
  would be more than asked for);
* ``tick`` is called about every ``tick_s`` seconds (lost-event reports,
  the status line).

:meth:`steps` yields after every sighting, with the journeys it finished (often
none), so a caller with more to do between sightings (the TUI's feeder) keeps
control; :meth:`run` just drives it to the end.
"""

from __future__ import annotations

import gc
import time
from typing import Callable, Iterable, Iterator, Optional

from .correlate import Correlator
from .model import Journey


def tune_gc() -> None:
    """Collect garbage less often: the pipeline allocates many small objects without cycles, and
    collecting every 700 allocations cost 30% of replay time (scripts/bench-replay). The CLI and
    every benchmark call this, so the benchmarks measure what users run. The middle generation is
    collected every 5 young collections, not 50: it then holds at most ~500,000 objects, and the
    longest pause in scripts/bench-tui at 100,000 sightings/s went from 233-244 ms to 99-108 ms
    (the UI waits that long for a key), for 12% more time collecting in all; replay the same."""
    gc.set_threshold(100_000, 5, 100)


class Pipeline:
    def __init__(self, source, correlator: Correlator, sinks: Iterable = (), *, count: Optional[int] = None,
                 duration: Optional[float] = None, tick: Optional[Callable[[], None]] = None,
                 tick_s: float = 1.0):
        self.source = source
        self.correlator = correlator
        self.sinks = list(sinks)
        self.count = count
        self.deadline = time.monotonic() + duration if duration else None
        self.tick = tick
        self.tick_s = tick_s
        self.taken = 0            #: journeys handed to the sinks so far
        self._stopping = False

    @property
    def full(self) -> bool:
        return self.count is not None and self.taken >= self.count

    def stop(self) -> None:
        """End soon: from another thread or a signal handler (the source stops producing too)."""
        self._stopping = True
        self.source.stop()

    def steps(self, every: bool = True) -> Iterator[list[Journey]]:
        """The journeys each sighting finished (a list per sighting, often empty; ``every=False``: only
        the lists that are not), then the rest."""
        correlator, source = self.correlator, self.source
        last_tick = time.monotonic()
        for ev in source.events():
            out = correlator.expire(source.now_ns()) if ev is None else correlator.feed(ev)
            if out:
                yield self._take(out)
            elif every:
                yield out
            now = time.monotonic()
            if self.tick is not None and now - last_tick >= self.tick_s:
                last_tick = now
                self.tick()
            if self.full:
                break
            if not self._stopping and self.deadline is not None and now >= self.deadline:
                self.stop()
            # stopping, the source ends soon: what it still gives (a live source: what was in its ring
            # buffer at the stop, a followed packet's later hops among it) is taken first
        if not self.full:
            yield self._take(correlator.flush())

    def run(self, after_batch: Optional[Callable[[], None]] = None) -> int:
        """Drive the pipeline to its end; the number of journeys taken. ``after_batch`` runs after
        every sighting that finished journeys: flush the output, which may be a pipe someone reads
        while the input still streams."""
        for finished in self.steps(every=False):
            if finished and after_batch is not None:
                after_batch()
        return self.taken

    def _take(self, journeys: list[Journey]) -> list[Journey]:
        out = []
        for j in journeys:
            if self.full:
                break
            for sink in self.sinks:
                sink.journey(j)
            out.append(j)
            self.taken += 1
        return out


class Collected:
    """A sink that keeps every journey, in the order they finished (:attr:`journeys`)."""

    def __init__(self) -> None:
        self.journeys: list[Journey] = []

    def journey(self, j: Journey) -> None:
        self.journeys.append(j)

    def close(self) -> None:
        pass


def collect(source, correlator: Correlator, **kw) -> list[Journey]:
    """Every journey a source gives, through the correlator (``kw``: the Pipeline's stop conditions)."""
    out = Collected()
    Pipeline(source, correlator, [out], **kw).run()
    return out.journeys
