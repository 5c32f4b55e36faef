"""Check commands against the entity cache before anything is queued (`validate`, `bulk`,
`send --queue`). A command a device's cached listing refuses is an input error naming the
playbook's file:line:column, even while the device is away. Devices without a cache are checked
on connect, as always. Never imports aioesphomeapi.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cmdctl.core.errors import InputError

if TYPE_CHECKING:
    from cmdctl.core.model import Command, Condition
    from cmdctl.device.cache import CachedDevice
    from cmdctl.device.entities import EntityIndex
    from cmdctl.inputs.playbook import Part, Plan
    from cmdctl.inputs.step import Step
    from cmdctl.inputs.yamlsrc import Loc


class Listings:
    """Each device's cached listing, loaded once; one index per distinct listing."""

    def __init__(self, state_dir: Path, warn: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.warn = warn
        self._devices: dict[str, CachedDevice | None] = {}
        self._indexes: dict[str, EntityIndex] = {}

    def get(self, device: str) -> CachedDevice | None:
        """The device's cached listing, or None (no cache, or an unreadable one: warned)."""
        if device not in self._devices:
            from cmdctl.device import cache

            try:
                self._devices[device] = cache.load(self.state_dir, device)
            except cache.CacheUnreadable as err:
                self.warn(f"ignoring the entity cache of {device}: {err}")
                self._devices[device] = None
        return self._devices[device]

    def digest(self, device: str) -> str | None:
        """The hash of the device's cached listing (None: no usable cache)."""
        cached = self.get(device)
        return cached.digest if cached is not None else None

    def _index(self, device: str) -> tuple[CachedDevice, EntityIndex] | None:
        """The device's cached listing and its index (None: no usable cache)."""
        from cmdctl.device import cache

        cached = self.get(device)
        if cached is None:
            return None
        index = self._indexes.get(cached.digest)
        if index is None:
            try:
                index = self._indexes[cached.digest] = cached.index()
            except cache.CacheUnreadable as damaged:
                self.warn(f"ignoring the entity cache of {device}: {damaged}")
                self._devices[device] = None
                return None
        index.device = device  # shared by devices with the same listing; messages name this one
        return cached, index

    def refusal(self, device: str, command: Command) -> tuple[InputError, bool] | None:
        """Why `device`'s cached listing refuses `command` (and whether the entity was found)."""
        from cmdctl.device import cache

        known = self._index(device)
        if known is None:
            return None
        cached, index = known
        found = cache.check(index, command)
        if found is None:
            return None
        err, entity_found = found
        hint = "; ".join(h for h in (err.hint, _provenance(cached)) if h)
        return InputError(f"{device}: {err.reason}", hint=hint), entity_found

    def condition_refusal(self, device: str, what: str, cond: Condition) -> InputError | None:
        """Why `device`'s cached listing refuses the `when:` / `wait_until:` condition `cond`:
        no such entity, or a select without that option (a condition that could never hold)."""
        known = self._index(device)
        if known is None:
            return None
        cached, index = known
        refused = index.refuses(cond)
        if refused is None:
            return None
        reason, hint = refused
        hint = "; ".join(h for h in (hint, _provenance(cached)) if h)
        return InputError(f"{device}: {what}: {reason}", hint=hint)


def _provenance(cached: CachedDevice) -> str:
    import time

    from cmdctl.core.timespec import format_age

    age = format_age(cached.seen_at, now=time.time())
    return (
        f"checked against {cached.device}'s cached entity list ({cached.describe()}, confirmed "
        f"{age}); if its firmware changed, refresh it: cmdctl devices probe {cached.device}"
    )


def check_plan(plan: Plan, state_dir: Path, warn: Callable[[str], None]) -> None:
    """InputError at the step's file:line:column for the first command a cache refuses."""
    listings = Listings(state_dir, warn)
    by_step: dict[str, list[Part]] = {}
    for part in plan.parts:  # a part's entries share its command: no entry is made
        by_step.setdefault(part.like.step, []).append(part)
    for step in plan.steps:
        checked: set[str] = set()
        # (listing hash, command) pairs that passed; a step's parts share its Command, or
        # with variables one Command per distinct set of values
        passed: set[tuple[str, int]] = set()
        for part in by_step.get(step.name, ()):
            command = part.like.command
            for device in _devices_of(part):
                if device in checked:
                    continue
                checked.add(device)
                digest = listings.digest(device)
                if digest is None or (digest, id(command)) in passed:
                    continue
                refused = listings.refusal(device, command)
                if refused is None:
                    passed.add((digest, id(command)))
                    continue
                err, entity_found = refused
                loc: Loc | None = step.value_loc if entity_found else step.command_loc
                loc = loc or step.loc
                hint = err.hint
                if step.template is not None:  # the fix is where the variable is set
                    refs = ", ".join(f"${{{name}}}" for name in step.template.names)
                    came = f"the value comes from {refs} as set for {device}"
                    hint = f"{hint}; {came}" if hint else came
                raise InputError(
                    err.message, file=loc.file, line=loc.line, column=loc.column, hint=hint
                )
        _check_conditions(step, by_step.get(step.name, ()), listings)


def _check_conditions(step: Step, parts: Iterable[Part], listings: Listings) -> None:
    """InputError at the entity of the step's `when:` / `wait_until:` for the first device whose
    cached listing cannot show it (each distinct listing asked once)."""
    for what, cond, loc in (
        ("when", step.when, step.when_loc), ("wait_until", step.wait_until, step.wait_until_loc)
    ):
        if cond is None:
            continue
        asked: set[str] = set()
        for part in parts:
            for device in _devices_of(part):
                digest = listings.digest(device)
                if digest is None or digest in asked:
                    continue
                asked.add(digest)
                err = listings.condition_refusal(device, what, cond)
                if err is not None:
                    where = loc or step.loc
                    raise InputError(
                        err.message, file=where.file, line=where.line, column=where.column,
                        hint=err.hint,
                    )


def check_command(
    device: str, command: Command, state_dir: Path, warn: Callable[[str], None]
) -> None:
    """InputError when `device`'s cached listing refuses `command` (for `send --queue`)."""
    refused = Listings(state_dir, warn).refusal(device, command)
    if refused is not None:
        raise refused[0]


def _devices_of(part: Part) -> Iterator[str]:
    """Every device the part's entries may run on: each one's own, and its failover / any
    candidates (which a part's entries share)."""
    candidates = part.like.coordination.candidates
    for device in part.devices:
        yield device
        yield from candidates
