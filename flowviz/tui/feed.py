"""The feeder: a source through the correlator, on a thread of its own, into the app's queue.

The same loop for live and replay sources (the app never asks which it has).
Finished journeys go into :attr:`Feeder.outbox` (a deque: appends and pops
are thread-safe) and a JourneysReady at most every ``batch_s`` tells the app
to take them; the source is never made to wait for the UI.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Optional

from ..correlate import Correlator
from ..pipeline import Pipeline
from .messages import JourneysReady, SourceFinished, StatusChanged


YIELD_S = 0.002   # s between GIL hand-offs to the UI thread (scripts/bench-tui: the key latency)


class Feeder(threading.Thread):
    def __init__(self, source, correlator: Correlator, post: Callable, *, sinks=(),
                 count: Optional[int] = None, duration: Optional[float] = None,
                 batch_s: float = 0.3, status_s: float = 0.5):
        super().__init__(name="flowviz-feeder", daemon=True)
        self.source = source
        self.post = post
        self.pipeline = Pipeline(source, correlator, sinks,
                                 count=count, duration=duration)
        self.batch_s = batch_s
        self.status_s = status_s
        self.outbox: deque = deque()

    @property
    def delivered(self) -> int:
        """Journeys handed to the app so far."""
        return self.pipeline.taken

    def stop(self) -> None:
        self.pipeline.stop()

    def run(self) -> None:
        last_batch = last_status = last_yield = time.monotonic()
        problems: list[str] = []
        try:
            for finished in self.pipeline.steps():
                if finished:
                    self.outbox.extend(finished)
                now = time.monotonic()
                if now - last_yield >= YIELD_S:
                    # let the UI thread take the GIL if it waits: each of its wake-ups on the way to
                    # answering a key would otherwise wait for Python's switch interval (5 ms)
                    time.sleep(0)
                    last_yield = now
                if self.outbox and now - last_batch >= self.batch_s:
                    self.post(JourneysReady())
                    last_batch = now
                if now - last_status >= self.status_s:
                    self.post(StatusChanged(self.source.status()))
                    last_status = now
        except Exception as e:   # shown in the app's status line instead of killing the UI thread
            problems.append(f"{type(e).__name__}: {e}")
        finally:
            self.post(JourneysReady())
            problems += [str(p) for p in getattr(self.source, "problems", [])]
            self.post(StatusChanged(self.source.status()))
            self.post(SourceFinished(problems))
