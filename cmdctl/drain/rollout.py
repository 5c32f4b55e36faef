"""Rolling windows and failure thresholds, per batch, for one drain pass.

Window: at most N devices of a batch in progress at once, sliding (a device leaves the window
when its device job has ended and its connection is closed). N is the smaller of `--window` and
the playbook's `serial:`; `N%` is that share of the batch's devices in this pass, at least 1.
A device job with entries of several batches holds a window slot of each of them.

Threshold: a device counts as failed for a batch when any of its entries of that batch ended
failed, unreachable or unknown in this run (a command was refused, the device could not be
reached, or a non-repeatable command is in doubt). Once `max_fail` devices of a batch have
failed (N, or N% of the batch's devices in this pass, at least 1; `fail_fast` is 1), no new
device job takes entries of that batch: they stay pending with a `held` reason. Device jobs
already in progress finish. Only failures of this run count.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cmdctl.core.errors import InputError
from cmdctl.core.model import Entry

Limit = int | str  # N, or "N%"


def resolve(limit: Limit | None, total: int, what: str) -> int | None:
    """`limit` as a count of `total` devices (N% rounds up, at least 1); None when unset."""
    if limit is None:
        return None
    if isinstance(limit, str):
        text = limit.strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1])
                if not 0 < share <= 100:
                    raise ValueError(text)
                return max(1, math.ceil(total * share / 100))
            limit = int(text)
        except ValueError as err:
            raise InputError(f"{what} must be N or N% (1-100%), got {limit!r}") from err
    if isinstance(limit, bool) or limit < 1:
        raise InputError(f"{what} must be at least 1, got {limit!r}")
    return limit


def parse(text: str, what: str) -> Limit:
    """A CLI value (`--window 5`, `--max-fail 10%`) as a Limit; InputError when malformed."""
    text = text.strip()
    resolve(text, 1, what)  # raises on a bad value
    return text if text.endswith("%") else int(text)


@dataclass(slots=True)
class Gate:
    """One batch's window and threshold in this pass."""

    batch: str
    window: int | None
    max_fail: int | None
    limit_text: str  # how the threshold was given, for the held reason
    failed: list[str] = field(default_factory=list)  # devices, in the order they failed
    slots: asyncio.Semaphore | None = None

    @property
    def closed(self) -> bool:
        """True once the batch's threshold is reached: take no new device of it."""
        return self.max_fail is not None and len(self.failed) >= self.max_fail

    def reason(self) -> str:
        """Why entries of this batch are held."""
        shown = ", ".join(self.failed[:5]) + (", …" if len(self.failed) > 5 else "")
        return (f"held: batch {self.batch} reached its failure threshold ({self.limit_text}): "
                f"{len(self.failed)} devices failed ({shown}); the next drain takes it up again")


class Rollout:
    """The gates of every batch that has a window or a threshold."""

    def __init__(
        self,
        due: Sequence[Entry],
        *,
        window: Limit | None = None,
        max_fail: Limit | None = None,
        fail_fast: bool = False,
        failed: dict[str, list[str]] | None = None,
    ) -> None:
        """`failed`: batch → failed devices, shared across the passes of one run."""
        self.gates: dict[str, Gate] = {}
        serial: dict[str, Limit] = {}
        for entry in due:
            value = entry.coordination.serial
            if value is not None and entry.batch not in serial:
                serial[entry.batch] = value
        if fail_fast:
            max_fail = 1
        if window is None and max_fail is None and not serial:
            return  # nothing to gate: no per-batch bookkeeping on the hot path
        devices: dict[str, set[str]] = {}
        for entry in due:
            names = devices.get(entry.batch)
            if names is None:
                names = devices[entry.batch] = set()
            names.add(entry.device)
        for batch, names in devices.items():
            total = len(names)
            try:
                by_playbook = resolve(serial.get(batch), total, "serial")
            except InputError:  # the playbook loader validates it; never block a drain on it
                by_playbook = None
            sizes = [n for n in (resolve(window, total, "--window"), by_playbook) if n is not None]
            size = min(sizes) if sizes else None
            fail = resolve(max_fail, total, "--max-fail")
            if size is None and fail is None:
                continue
            text = "--fail-fast" if fail_fast else f"--max-fail {max_fail}"
            gate = Gate(batch, size, fail, text)
            if failed is not None:
                gate.failed = failed.setdefault(batch, [])
            if size is not None:
                gate.slots = asyncio.Semaphore(size)
            self.gates[batch] = gate

    def __bool__(self) -> bool:
        return bool(self.gates)

    def of(self, batches: Iterable[str]) -> list[Gate]:
        """The gates of these batches, in a fixed order (so slots are taken without deadlock)."""
        return [self.gates[b] for b in sorted(set(batches)) if b in self.gates]

    async def enter(self, gates: Sequence[Gate]) -> list[Gate]:
        """Take a window slot of each gate that has one; returns the gates entered."""
        entered: list[Gate] = []
        try:
            for gate in gates:
                if gate.slots is not None:
                    await gate.slots.acquire()
                entered.append(gate)
        except BaseException:
            self.leave(entered, ())
            raise
        return entered

    def leave(self, gates: Sequence[Gate], failed_batches: Iterable[str], device: str = "") -> None:
        """Count `device` as failed for `failed_batches`, then free the gates' slots."""
        failed = set(failed_batches)
        for gate in gates:
            if gate.batch in failed and device not in gate.failed:
                gate.failed.append(device)
            if gate.slots is not None:
                gate.slots.release()
