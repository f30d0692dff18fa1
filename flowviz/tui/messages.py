"""Every message the TUI passes, in one place.

Worker threads only post these (``post_message`` is thread-safe) and never
touch widgets. Frequent ones are coalesced: journeys wait in the feeder's
outbox and one JourneysReady stands for all of them; a newer status replaces
an older one still waiting in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from ..sources import SourceStatus


@dataclass
class JourneysReady(Message):
    """The feeder's outbox has journeys: take them all. Carries nothing, so a newer one replaces
    an older one still queued, and a busy source cannot pile work up in front of key presses."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, JourneysReady)


@dataclass
class StatusChanged(Message):
    status: SourceStatus

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusChanged)


@dataclass
class SourceFinished(Message):
    """The source has nothing more to give (end of the files, --count, --duration, or stopped)."""

    problems: list[str] = field(default_factory=list)
