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
BEAT_LATE_S = 0.05   # s: the app's heartbeat (every BEAT_S) older than this: the UI thread is behind
UI_TURN_S = 0.005    # s the feeder then sleeps at each hand-off, so the UI thread has the GIL alone


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
        self.beat: Optional[float] = None   #: monotonic time of the app's last heartbeat (None: no app)
        self.turns = 0   #: hand-offs at which the UI thread was behind and got UI_TURN_S to itself

    @property
    def delivered(self) -> int:
        """Journeys handed to the app so far."""
        return self.pipeline.taken

    def stop(self) -> None:
        self.pipeline.stop()

    def _hand_off(self, now: float) -> None:
        """Let the UI thread take the GIL if it waits: each of its wake-ups on the way to answering a
        key would otherwise wait for Python's switch interval (5 ms). When its heartbeat is late (it
        waits for the GIL, or works through a batch), sleep a while: sleep(0) alone hands the GIL
        over and takes it back, and a 1,000-row intake took 50-80 ms instead of its ~31 ms of CPU."""
        beat = self.beat
        if beat is not None and now - beat > BEAT_LATE_S:
            self.turns += 1
            time.sleep(UI_TURN_S)
        else:
            time.sleep(0)

    def run(self) -> None:
        last_batch = last_status = last_yield = time.monotonic()
        problems: list[str] = []
        try:
            for finished in self.pipeline.steps():
                if finished:
                    self.outbox.extend(finished)
                now = time.monotonic()
                if now - last_yield >= YIELD_S:
                    self._hand_off(now)
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
