"""What a run did, per device and in total, and the exit code that follows from it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cmdctl.core.errors import ExitCode
from cmdctl.core.natural import natural_key

#: Outcomes a run can give one entry, in recap-table order.
CONFIRMED = "confirmed"
DELIVERED = "delivered"
FAILED = "failed"  # rejected, mismatch, gave up after max attempts
UNKNOWN = "unknown"  # non-idempotent, interrupted after it may have been sent
UNREACHABLE = "unreachable"  # device could not be reached; the entry stays queued (or gave up)
SKIPPED = "skipped"  # not run: the run stopped first, or the device failed before it
EXPIRED = "expired"
OUTCOMES = (CONFIRMED, DELIVERED, FAILED, UNKNOWN, UNREACHABLE, SKIPPED, EXPIRED)


@dataclass(slots=True)
class Tally:
    """One device's counts in one run (mutable while the run goes on)."""

    device: str
    counts: dict[str, int] = field(default_factory=dict)
    retried: int = 0  # extra connection attempts within the run
    error: str | None = None  # the last failure, one line, naming the cause
    seconds: float = 0.0  # wall time spent on the device

    def add(self, outcome: str, n: int = 1) -> None:
        """Count `n` entries with `outcome`."""
        self.counts[outcome] = self.counts.get(outcome, 0) + n

    def get(self, outcome: str) -> int:
        """How many entries ended with `outcome`."""
        return self.counts.get(outcome, 0)

    @property
    def ok(self) -> bool:
        """True when nothing on this device failed, expired unrun, was lost to an outage or is
        in doubt."""
        return not any(self.get(name) for name in (FAILED, UNKNOWN, UNREACHABLE, EXPIRED))

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        out: dict[str, object] = {"device": self.device}
        out.update({name: self.get(name) for name in OUTCOMES})
        out["retried"] = self.retried
        out["error"] = self.error
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass(slots=True)
class Totals:
    """A whole run: per-device tallies plus why it stopped."""

    devices: dict[str, Tally] = field(default_factory=dict)
    recovered: int = 0  # RUNNING entries of a dead process put back (or marked unknown)
    left: int = 0  # due entries not taken (time ran out, or stopped by a signal)
    superseded: int = 0  # entries a newer one for the same entity replaced (coalescing)
    held: int = 0  # entries left pending because their batch crossed its failure threshold
    interrupted: bool = False  # stopped by SIGINT / SIGTERM
    timed_out: bool = False  # stopped taking work because --max-time was near
    seconds: float = 0.0

    def tally(self, device: str) -> Tally:
        """The (possibly new) tally of `device`."""
        found = self.devices.get(device)
        if found is None:
            found = self.devices[device] = Tally(device)
        return found

    def count(self, outcome: str) -> int:
        """Entries with `outcome` across devices."""
        return sum(t.get(outcome) for t in self.devices.values())

    @property
    def entries(self) -> int:
        """Entries this run gave an outcome to."""
        return sum(sum(t.counts.values()) for t in self.devices.values())

    @property
    def retried(self) -> int:
        """Extra connection attempts across devices."""
        return sum(t.retried for t in self.devices.values())

    @property
    def idle(self) -> bool:
        """True when there was nothing to do at all."""
        return not self.entries and not self.recovered and not self.left and not self.superseded

    def failed_devices(self) -> list[Tally]:
        """Devices with something failed, unknown, unreachable or expired, by name (naturally)."""
        return sorted_tallies(t for t in self.devices.values() if not t.ok)

    def exit_code(self) -> ExitCode:
        """The documented code for this run (see `cmdctl.core.errors.ExitCode`)."""
        return exit_code(self)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "exit_code": int(self.exit_code()),
            "seconds": round(self.seconds, 3),
            "totals": {name: self.count(name) for name in OUTCOMES} | {"retried": self.retried},
            "recovered": self.recovered,
            "left": self.left,
            "superseded": self.superseded,
            "held": self.held,
            "interrupted": self.interrupted,
            "timed_out": self.timed_out,
            "devices": [t.as_dict() for t in sorted_tallies(self.devices.values())],
        }


def sorted_tallies(tallies: Iterable[Tally]) -> list[Tally]:
    """Tallies by device name, naturally (`tv-2` before `tv-10`)."""
    return sorted(tallies, key=lambda t: natural_key(t.device))


def exit_code(totals: Totals) -> ExitCode:
    """Failed for good beats unreachable beats interrupted beats OK; unreachable is never OK.

    An entry that expired before it ran is failed for good too: 0 means everything asked for
    was done, and that command never will be.
    """
    if totals.count(FAILED) or totals.count(UNKNOWN) or totals.count(EXPIRED):
        return ExitCode.FAILED
    if totals.count(UNREACHABLE):
        return ExitCode.UNREACHABLE
    if totals.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK
