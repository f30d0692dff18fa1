"""Where HopEvents come from. Every source looks the same to the rest of flowviz.

A source's :meth:`Source.events` yields :class:`~flowviz.model.HopEvent` s,
and a live source may also yield ``None`` when nothing happened for a while,
so the consumer can let idle journeys finish (:class:`flowviz.pipeline.Pipeline`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Optional, Protocol

from ..errors import FlowvizError
from ..model import HopEvent


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """What the status line says about a source."""

    kind: str                 #: "live" or "replay"
    label: str                #: what it reads: files, or the hooks attached
    events: int = 0           #: sightings delivered so far
    lost: int = 0             #: sightings the kernel could not hand over (ring buffer full)
    shed: int = 0             #: flows not followed because the ring buffer was past half full when they began
    rate: float = 0.0         #: sightings per second, recently
    position: str = ""        #: replay: how far through the input
    notes: tuple[str, ...] = field(default_factory=tuple)


class Source(Protocol):
    kind: str
    #: problems met after output began (a truncated file): reported at the end
    problems: list[FlowvizError]

    def events(self) -> Iterator[Optional[HopEvent]]:
        """Sightings, roughly in time order; ``None`` means "nothing for now" (live)."""

    def now_ns(self) -> int:
        """The current time in the events' time base (replay: the last event's)."""

    def status(self) -> SourceStatus: ...

    def stop(self) -> None:
        """Ask :meth:`events` to end soon (from another thread or a signal handler)."""

    def close(self) -> None:
        """Release everything the source holds (BPF programs, files)."""
