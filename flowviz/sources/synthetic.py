"""Synthetic sightings at a set rate: swarm ingress journeys with fresh identities.

A producer thread fills a bounded buffer at ``rate`` sightings per second, the
way the kernel fills the ring buffer: what the consumer does not take in
time is dropped and counted as lost, a whole request/reply pair at a time (the
kernel sheds whole flows). As with the kernel's ring, the buffer holds no
Python objects: the producer only counts what is due, and the consumer makes
each sighting's event when it takes it, as the live source decodes a ring
record. (A producer making 100,000 event objects a second was a third Python
thread competing for the GIL, which the live source does not have.) For load
tests and benchmarks of what consumes sources (the TUI, the correlator).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Iterator, Optional

from ..model import LINKTYPE_ETHERNET, HopEvent
from . import SourceStatus


class SyntheticSource:
    kind = "synthetic"

    def __init__(self, rate: int = 50_000, seconds: float = 10.0, buffer: int = 200_000):
        from ..samples import swarm_variants
        self.rate, self.seconds, self.buffer = rate, seconds, buffer
        self.problems: list = []
        self.offered = self.lost = self.taken = 0
        variants = swarm_variants(10_000_000)
        first = next(variants)
        self._pair = len(first)   # sightings of one request/reply pair
        self._variants = itertools.chain([first], variants)
        self._pending = 0                   # sightings buffered: offered, not yet taken
        self._lock = threading.Lock()
        self._stopped = threading.Event()   # the producer is done (its time is up, or stop())
        self._halted = False                # stop(): events() ends now, whatever is still buffered
        self._producer = threading.Thread(target=self._produce, name="flowviz-synthetic", daemon=True)
        self._producer.start()

    def _produce(self) -> None:
        start = time.monotonic()
        while not self._stopped.is_set() and time.monotonic() - start < self.seconds:
            due = int((time.monotonic() - start) * self.rate) // self._pair * self._pair
            with self._lock:
                while self.offered < due:
                    if self._pending + self._pair <= self.buffer:
                        self._pending += self._pair
                    else:
                        self.lost += self._pair
                    self.offered += self._pair
            time.sleep(0.005)
        self._stopped.set()

    def events(self) -> Iterator[Optional[HopEvent]]:
        while not self._halted and not (self._stopped.is_set() and not self._pending):
            with self._lock:
                take = min(self._pending, 2000 // self._pair * self._pair)   # whole pairs
                self._pending -= take
            if not take:
                time.sleep(0.01)
                yield None
                continue
            for _ in range(take // self._pair):
                ts = time.time_ns()
                for k, s in enumerate(next(self._variants)):
                    if self._halted:
                        return
                    self.taken += 1
                    yield HopEvent(ts + k * 1000, s.dev.name, s.dir, s.frame, LINKTYPE_ETHERNET,
                                   netns=s.dev.netns, mark=s.mark)

    def now_ns(self) -> int:
        return time.time_ns()

    def status(self) -> SourceStatus:
        return SourceStatus("live", f"synthetic, {self.rate:,}/s", events=self.taken, lost=self.lost)

    def stop(self) -> None:
        self._halted = True
        self._stopped.set()

    def close(self) -> None:
        self.stop()
