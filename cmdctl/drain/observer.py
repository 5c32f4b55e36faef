"""What the engine tells whoever shows or records progress: the CLI's bars, the metrics.

Observers get results, not guesses: each outcome arrives as a `Finished` carrying the entry as
the run found it, the entry as the journal has it after the outcome, and the timing the engine
measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cmdctl.core import slots
from cmdctl.core.model import Entry
from cmdctl.drain.totals import Tally
from cmdctl.journal.entry import fold
from cmdctl.journal.events import Event


@dataclass(frozen=True, slots=True)
class Finished:
    """One entry got an outcome in this run."""

    entry: Entry  # as the run found it
    outcome: str  # a `cmdctl.drain.totals` name
    detail: str
    duration: float | None = None  # seconds from sending to confirmation / delivery (done)
    events: tuple[Event, ...] = ()  # what the journal records for it in this run, in order

    @property
    def after(self) -> Entry:
        """The entry as the journal has it once this run's events for it are folded in.

        Folded on demand: most observers never ask, and a drain reports 10,000 outcomes."""
        entry = self.entry
        for event in self.events:
            entry = fold(entry, event)
        return entry


#: `Finished(entry, outcome, detail, duration, events)`, built in half the time (a drain
#: reports one per command: `cmdctl.core.slots`).
new_finished: Callable[[Entry, str, str, float | None, tuple[Event, ...]], Finished]
new_finished = slots.constructor(Finished)


class Observer(Protocol):
    """What the engine tells whoever shows progress (the CLI); every method must be cheap."""

    def planned(self, entries: Sequence[Entry]) -> None:
        """These due entries will be worked on in this pass."""

    def step(self, device: str, text: str) -> None:
        """`device` is now doing `text` ("connecting", "sending 3", "retry 2 in 1.0s: …")."""

    def finished(self, done: Finished) -> None:
        """An entry got an outcome in this run."""

    def device_done(self, tally: Tally) -> None:
        """Nothing more will happen on this device in this pass."""


class NullObserver:
    """An observer that ignores everything."""

    def planned(self, entries: Sequence[Entry]) -> None:
        """Ignore."""

    def step(self, device: str, text: str) -> None:
        """Ignore."""

    def finished(self, done: Finished) -> None:
        """Ignore."""

    def device_done(self, tally: Tally) -> None:
        """Ignore."""
