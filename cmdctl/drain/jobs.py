"""The jobs of a pass: one `Job` per device (`plan`), holding its entries and what it has done
with them, and the `Pass` every job shares. `cmdctl.drain.job.DeviceJob` runs a job.

Nothing here talks to a device: the engine plans a pass without importing the client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from cmdctl.core.model import Entry
from cmdctl.device.address import DeviceAddress
from cmdctl.device.entities import SharedPlans
from cmdctl.drain.gates import Mark
from cmdctl.drain.rollout import Rollout
from cmdctl.drain.totals import Tally, Totals
from cmdctl.journal.events import Event
from cmdctl.journal.recorder import Recorder


@dataclass(frozen=True, slots=True)
class Pass:
    """What every job of one pass shares: where outcomes are recorded, which entries a person
    cancelled since the pass read the journal (`cmdctl.journal.claims`), and the batch gates."""

    rec: Recorder
    withdrawn: AbstractSet[str] = frozenset()
    rollout: Rollout | None = None
    hold: Mapping[str, float] = field(default_factory=dict)  # id → not sent before (epoch)
    plans: SharedPlans = field(default_factory=SharedPlans)  # equal devices plan once


@dataclass(slots=True)
class Job:
    """One device's work in one pass."""

    device: str
    address: DeviceAddress | None
    todo: list[Entry]  # entries without an outcome in this run yet, in queue order
    tally: Tally
    started: set[str] = field(default_factory=set)  # RUNNING in the journal now
    requeue: bool = True  # transient give-up → rescheduled (False: failed; immediate steps)
    prestarted: bool = False  # `started` already on disk (send / immediate steps)
    failed_batches: set[str] = field(default_factory=set)  # failed/unreachable/unknown
    last_sent: float | None = None  # monotonic time the last command left (for `pace`)
    # id → the `started` event this run wrote for it (an observer's `after` folds it in).
    running: dict[str, Event] = field(default_factory=dict)
    # (batch, step) → how this job's entry of it ended: done at (epoch), FAILED, or WAITS
    # (pending again); an entry after it on this device decides on it (`scope: device`).
    finished: dict[tuple[str, str], Mark] = field(default_factory=dict)


def plan(
    entries: Sequence[Entry], totals: Totals, devices: Callable[[str], DeviceAddress | None],
    *, requeue: bool = True, prestarted: Sequence[Event] = (),
) -> list[Job]:
    """One job per device, devices in order of their first entry, entries in queue order.

    `prestarted`: the `started` events of these entries, already on disk (`send` and immediate
    steps write them before the engine sees the entries).
    """
    running = {e.id: e for e in prestarted}
    jobs: dict[str, Job] = {}
    for entry in entries:
        job = jobs.get(entry.device)
        if job is None:
            job = jobs[entry.device] = Job(
                entry.device, devices(entry.device), [], totals.tally(entry.device),
                requeue=requeue, prestarted=bool(running),
            )
        job.todo.append(entry)
        if entry.id in running:
            job.started.add(entry.id)
            job.running[entry.id] = running[entry.id]
    return list(jobs.values())
