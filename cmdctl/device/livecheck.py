"""`bulk --check --online`: a plan checked against the live devices, as current → target.

Each target device gets one short connection: its entity list validates every planned command
exactly as a drain would (`EntityIndex.plan`), the entities its `when:` / `wait_until:` read
are looked up in the same list, and the states of the entities the plan touches are read once.
Nothing is sent and nothing is written; failures are data, as in a drain.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmdctl.core.errors import DeviceError, DeviceRejected, ExitCode
from cmdctl.core.model import Condition, Entry, JSONValue
from cmdctl.device.entities import EntityIndex, EntityRow, Plan

if TYPE_CHECKING:
    from cmdctl.device.address import DeviceAddress

#: Devices checked at once: one connection each, and short ones (like `devices probe`).
CHECK_CONCURRENCY = 32
# A check is interactive: a device that has not answered in 3 s is reported, not waited for
# (a drain allows 5 s because it retries anyway).
CHECK_CONNECT_TIMEOUT = 3.0
# Connect + entity list + the initial states (states.STATE_TIMEOUT) of one device.
CHECK_JOB_TIMEOUT = 15.0

#: What a check says about one planned command.
CHANGE = "change"  # valid; the entity is not in the target state now
UNCHANGED = "unchanged"  # valid; the entity already shows the target
SEND = "send"  # valid; nothing to compare (button, action, media command, unknown state)
INVALID = "invalid"  # the device would reject it (unknown entity, bad value, …)
NOT_CHECKED = "not checked"  # the device could not be reached or refused us
STATUSES = (CHANGE, UNCHANGED, SEND, INVALID, NOT_CHECKED)


@dataclass(frozen=True, slots=True)
class Field:
    """One state field the command sets: what the device shows now and what it will show."""

    name: str
    current: JSONValue  # None when the device has no state for it yet
    target: JSONValue

    @property
    def changes(self) -> bool:
        """True unless the device already shows the target."""
        return bool(self.current != self.target)


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """One planned command on one device, checked."""

    entry: Entry
    status: str  # one of STATUSES
    selector: str = ""  # canonical on the device ("" when it could not be resolved)
    fields: tuple[Field, ...] = ()
    error: DeviceError | None = None


@dataclass(frozen=True, slots=True)
class ConditionRefusal:
    """A `when:` / `wait_until:` the device could never satisfy: no such entity, or a select
    without that option. `what` is the key (`when`), `step` the step that has it."""

    step: str
    what: str
    condition: Condition
    reason: str
    hint: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceCheck:
    """One device: its commands checked, or why it could not be."""

    device: str
    commands: tuple[CommandCheck, ...]
    error: DeviceError | None = None  # connecting failed (unreachable, wrong key, …)
    conditions: tuple[ConditionRefusal, ...] = ()  # the conditions its listing refuses

    @property
    def status(self) -> str:
        """`ok`, `invalid` (a command would be rejected), `unreachable` or `rejected`."""
        if self.error is not None:
            return "rejected" if isinstance(self.error, DeviceRejected) else "unreachable"
        return "invalid" if any(c.status == INVALID for c in self.commands) else "ok"


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every device of a plan, checked against what it says now."""

    devices: tuple[DeviceCheck, ...]

    def count(self, status: str) -> int:
        """Commands with `status` across devices."""
        return sum(1 for d in self.devices for c in d.commands if c.status == status)

    def exit_code(self) -> ExitCode:
        """FAILED if anything would be rejected, else UNREACHABLE if a device was, else OK."""
        statuses = {d.status for d in self.devices}
        if statuses & {"invalid", "rejected"}:
            return ExitCode.FAILED
        if "unreachable" in statuses:
            return ExitCode.UNREACHABLE
        return ExitCode.OK


async def check_plan(
    entries: Sequence[Entry],
    devices: Mapping[str, DeviceAddress],
    *,
    concurrency: int = CHECK_CONCURRENCY,
    connect_timeout: float = CHECK_CONNECT_TIMEOUT,
) -> CheckReport:
    """Check `entries` on their devices (names looked up in `devices`), devices in plan order."""
    by_device: dict[str, list[Entry]] = {}
    for entry in entries:
        by_device.setdefault(entry.device, []).append(entry)
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(name: str, todo: list[Entry]) -> DeviceCheck:
        async with slots:
            return await check_device(devices[name], todo, connect_timeout=connect_timeout)

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(name, todo)) for name, todo in by_device.items()]
    return CheckReport(tuple(task.result() for task in tasks))


async def check_device(
    device: DeviceAddress,
    entries: Sequence[Entry],
    *,
    connect_timeout: float = CHECK_CONNECT_TIMEOUT,
) -> DeviceCheck:
    """Connect once, validate each command as a drain would, read the states it touches."""
    from cmdctl.device.states import current_states
    from cmdctl.device.transport import DeviceSession

    session = DeviceSession(device, connect_timeout=connect_timeout, job_timeout=CHECK_JOB_TIMEOUT)
    try:
        await session.connect()
        plans: list[Plan | DeviceRejected] = []
        for entry in entries:
            try:
                plans.append(session.plan(entry.command))
            except DeviceRejected as err:
                plans.append(err)
        refused = _conditions(session.index, entries)
        rows = _rows(p for p in plans if isinstance(p, Plan) and p.expect is not None)
        states = await current_states(session, rows)
    except DeviceError as err:
        skipped = tuple(CommandCheck(entry, NOT_CHECKED) for entry in entries)
        return DeviceCheck(device.name, skipped, err)
    finally:
        session.close()
    checks = tuple(_check(entry, plan, states) for entry, plan in zip(entries, plans, strict=True))
    return DeviceCheck(device.name, checks, conditions=refused)


def _conditions(index: EntityIndex, entries: Iterable[Entry]) -> tuple[ConditionRefusal, ...]:
    """The `when:` / `wait_until:` of `entries` the listing refuses, each step's once."""
    found: dict[tuple[str, str], ConditionRefusal | None] = {}
    for entry in entries:
        flow = entry.coordination
        for what, cond in (("when", flow.when), ("wait_until", flow.wait_until)):
            if cond is None or (entry.step, what) in found:
                continue
            problem = index.refuses(cond)
            found[(entry.step, what)] = (
                ConditionRefusal(entry.step, what, cond, *problem) if problem else None
            )
    return tuple(r for r in found.values() if r is not None)


def _rows(plans: Iterable[Plan]) -> list[EntityRow]:
    """The entities whose state the diff needs, once each."""
    seen: dict[tuple[int, int], EntityRow] = {}
    for plan in plans:
        seen.setdefault(
            (plan.key, plan.device_id),
            EntityRow(plan.selector, plan.selector, plan.key, plan.device_id, ""),
        )
    return list(seen.values())


def _check(entry: Entry, plan: Plan | DeviceRejected, states: Mapping[Any, Any]) -> CommandCheck:
    if isinstance(plan, DeviceRejected):
        return CommandCheck(entry, INVALID, error=plan)
    from cmdctl.device.expectation import observe

    expect = plan.expect
    state = states.get((plan.key, plan.device_id))
    if expect is None:
        return CommandCheck(entry, SEND, plan.selector)
    known = state is not None and not getattr(state, "missing_state", False)
    fields = tuple(
        Field(c.field, _json(observe(state, c.field)) if known else None, _json(c.want))
        for c in expect.checks
    )
    if not known:
        return CommandCheck(entry, CHANGE, plan.selector, fields)
    status = UNCHANGED if expect.reached(state) else CHANGE
    if status == UNCHANGED:  # within tolerance: show the target, not a float32 rounding of it
        fields = tuple(Field(f.name, f.target, f.target) for f in fields)
    return CommandCheck(entry, status, plan.selector, fields)


def _json(value: Any) -> JSONValue:
    """A compared value as JSON: tuples as lists, floats rounded as float32 states allow."""
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    return value
