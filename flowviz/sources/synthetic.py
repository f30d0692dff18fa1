"""Synthetic sightings at a set rate: swarm ingress journeys with fresh identities.

A producer thread fills a bounded buffer at ``rate`` sightings per second, the
way the kernel fills the ring buffer: what the consumer does not take in
time is dropped and counted as lost. For load tests and benchmarks of what
consumes sources (the TUI, the correlator).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Iterator, Optional

from ..model import LINKTYPE_ETHERNET, HopEvent
from . import SourceStatus


class SyntheticSource:
    kind = "synthetic"

    def __init__(self, rate: int = 50_000, seconds: float = 10.0, buffer: int = 200_000):
        self.rate, self.seconds, self.buffer = rate, seconds, buffer
        self.problems: list = []
        self.offered = self.lost = self.taken = 0
        self._buf: deque = deque()
        self._stopped = threading.Event()   # the producer is done (its time is up, or stop())
        self._halted = False                # stop(): events() ends now, whatever is still buffered
        self._producer = threading.Thread(target=self._produce, name="flowviz-synthetic", daemon=True)
        self._producer.start()

    def _produce(self) -> None:
        from ..samples import swarm_variants
        start = time.monotonic()
        variants = swarm_variants(10_000_000)
        while not self._stopped.is_set() and time.monotonic() - start < self.seconds:
            due = int((time.monotonic() - start) * self.rate)
            while self.offered < due:
                ts = time.time_ns()
                for k, s in enumerate(next(variants)):
                    ev = HopEvent(ts + k * 1000, s.dev.name, s.dir, s.frame, LINKTYPE_ETHERNET,
                                  netns=s.dev.netns, mark=s.mark)
                    if len(self._buf) < self.buffer:
                        self._buf.append(ev)
                    else:
                        self.lost += 1
                    self.offered += 1
            time.sleep(0.005)
        self._stopped.set()

    def events(self) -> Iterator[Optional[HopEvent]]:
        buf = self._buf
        while not self._halted and not (self._stopped.is_set() and not buf):
            if not buf:
                time.sleep(0.01)
                yield None
                continue
            for _ in range(min(len(buf), 2000)):
                if self._halted:
                    return
                self.taken += 1
                yield buf.popleft()

    def now_ns(self) -> int:
        return time.time_ns()

    def status(self) -> SourceStatus:
        return SourceStatus("live", f"synthetic, {self.rate:,}/s", events=self.taken, lost=self.lost)

    def stop(self) -> None:
        self._halted = True
        self._stopped.set()

    def close(self) -> None:
        self.stop()
