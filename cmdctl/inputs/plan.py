"""A playbook expanded over an inventory: the `Plan` of entries to queue and to run inline,
kept as `Part`s (entries of a step that differ only in id and device), and `expand`, which
makes it.

Fleet keys (tags, barriers, failover/any targets, serial) travel to the engine as
`Entry.coordination` (`tags`, `after` + `on_failure` + `scope`, `pick` + `candidates`,
`serial`, and the device flow: `gap` (the delay of the step before), `when`, `wait_until`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cmdctl.core.errors import InputError
from cmdctl.core.model import NO_COORDINATION, Command, Coordination, Entry, Priority
from cmdctl.core.timespec import parse_time
from cmdctl.inputs import commands, selection, variables, yamlsrc
from cmdctl.inputs.inventory import Device, Inventory
from cmdctl.inputs.step import Step
from cmdctl.inputs.variables import Value
from cmdctl.inputs.yamlsrc import Loc

if TYPE_CHECKING:
    from cmdctl.inputs.playbook import Playbook

ORIGIN = "bulk"


@dataclass(frozen=True, slots=True)
class Part:
    """Entries of one step that differ only in id and device, in expansion order: `like` is
    the first of them; the i-th has id `ids[i]` and runs on `devices[i]`. A step is one part,
    or one per stretch of devices with the same values, flow and command."""

    like: Entry
    ids: tuple[str, ...]
    devices: tuple[str, ...]
    inline: bool  # a `mode: immediate` step's

    def entries(self) -> Iterator[Entry]:
        """Its entries, `like` first."""
        like = self.like
        yield like
        for entry_id, device in zip(self.ids[1:], self.devices[1:], strict=True):
            yield Entry(
                entry_id, like.batch, device, like.command, like.priority, like.created,
                like.not_before, like.expires, like.idempotent, like.verify, like.max_attempts,
                like.who, like.origin, like.step, like.playbook, coordination=like.coordination,
            )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Plan:
    """One expansion of a playbook: the batch to queue and the entries to run inline.

    Entries of `mode: immediate` steps are due at once (`not_before` = now), whatever `at` says.
    Entries share their step's `Command` (frozen; its args must not be mutated). The expansion
    is kept as `parts`; `queued` and `immediate` make its entries when first read (a bulk of
    100,000 commands is journaled from the parts without them).
    """

    batch: str
    name: str  # the playbook's name
    devices: tuple[Device, ...]
    steps: tuple[Step, ...]
    parts: tuple[Part, ...]
    serial: int | str | None = None
    _made: dict[bool, tuple[Entry, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def queued(self) -> tuple[Entry, ...]:
        """Entries left in the journal for a drain."""
        return self._entries(inline=False)

    @property
    def immediate(self) -> tuple[Entry, ...]:
        """Entries of `mode: immediate` steps, run inline."""
        return self._entries(inline=True)

    def _entries(self, *, inline: bool) -> tuple[Entry, ...]:
        made = self._made.get(inline)
        if made is None:
            made = self._made[inline] = tuple(
                entry for part in self.parts if part.inline is inline for entry in part.entries()
            )
        return made

    @property
    def count(self) -> int:
        """All commands in the plan."""
        return sum(len(part.ids) for part in self.parts)

    def counts(self, *, inline: bool | None = None) -> tuple[int, int, int]:
        """(commands, steps, devices) of the queued (inline False) or immediate (True) entries,
        or of all of them (None), counted without making them."""
        parts = [part for part in self.parts if inline is None or part.inline is inline]
        devices: set[str] = set()
        for part in parts:
            devices.update(part.devices)
        steps = {part.like.step for part in parts}
        return sum(len(part.ids) for part in parts), len(steps), len(devices)

    def first(self, *, inline: bool = False) -> Entry | None:
        """The first queued (or immediate) entry; None: there is none."""
        return next((part.like for part in self.parts if part.inline is inline), None)

def expand(
    playbook: Playbook,
    inventory: Inventory,
    *,
    now: float,
    ids: Callable[[], str],
    who: str,
    limit: str | None = None,
    priority: Priority | None = None,
    at: str | None = None,
    max_commands: int | None = None,
    tags: frozenset[str] | None = None,
    skip_tags: frozenset[str] | None = None,
    variables: Mapping[str, Value] | None = None,
) -> Plan:
    """Every step on every target device (step-major, devices in inventory order) as entries.

    A failover/any step is one entry on its first candidate. `tags` keeps steps with at least
    one of them, `skip_tags` drops steps with any; a barrier on a step left out of this
    expansion (by tags or `limit`) is dropped: that step is not part of the batch. A step
    with `${...}` gets each device's values (`variables`, `--var`, beat all of them).
    """
    given = dict(variables or {})
    _check_given(playbook, given)
    where = playbook.targets_loc or Loc(str(playbook.path), 1, 1)
    limited: set[str] | None = None
    if limit is not None:
        try:
            limited = set(selection.select_names(inventory, limit))
        except InputError as err:
            raise InputError(f"--limit: {err.message}", hint=err.hint) from None
    chosen = _filter_tags(playbook, tags, skip_tags)
    base = _candidates(inventory, playbook.targets, where, playbook.pick is not None)
    plan_steps: list[tuple[Step, tuple[str, ...], str | None]] = []
    for step in chosen:
        if step.targets is None:
            names, pick, loc = base, playbook.pick, where
        else:
            pick, loc = step.pick, step.targets_loc or where
            names = _candidates(inventory, step.targets, step.targets_loc, pick is not None)
        if limited is not None:
            names = tuple(name for name in names if name in limited)
            if pick is not None and not names:
                raise loc.error(
                    f"--limit {limit!r} leaves no {pick} candidate for step {step.name!r}",
                    hint="widen --limit, or leave the step out with --skip-tags",
                )
        plan_steps.append((step, names, pick))
    count = sum(1 if pick else len(names) for _, names, pick in plan_steps)
    if count == 0:
        raise where.error(
            f"--limit {limit!r} leaves none of this playbook's targets",
            hint="check the pattern against the playbook's targets",
        )
    cap = playbook.max_commands if max_commands is None else max_commands
    if count > cap:
        raise where.error(
            f"the playbook expands to {count:,} commands, more than the cap of {cap:,}",
            hint="raise it with --max-commands, or narrow the targets with --limit",
        )
    not_before, expires = _schedule(playbook, now, at)
    batch = ids()
    level = priority or playbook.priority
    parts: list[Part] = []
    delays = any(step.delay for step, _, _ in plan_steps)  # else `before` is never read
    present = {step.name for step, names, _ in plan_steps if names}
    before: dict[str, Step] = {}  # device → its last queued step so far (for `delay:`)
    for step, names, pick in plan_steps:
        inline = step.mode == "immediate"
        coordination = _coordination(step, pick, names, present, playbook.serial)
        command, idempotent = step.command, step.idempotent
        fill = None if step.template is None else _Fill(step, playbook, inventory, given)
        if fill is not None and pick:
            fill.agree(names, pick)
        delayed: dict[str, Coordination] = {}  # the step before's name → with its gap
        on = names[:1] if pick else names
        if fill is None and (inline or pick or not delays) and on:
            # The common case: one part, its entries differ in id and device only.
            made = tuple([ids() for _ in on])
            first = _entry(batch, on[0], made[0], command, level, now, not_before, expires,
                           idempotent, step, who, playbook.name, coordination, inline=inline)
            parts.append(Part(first, made, tuple(on), inline))
            continue
        like: Entry | None = None  # the first entry of the part being made
        part_ids: list[str] = []
        part_devices: list[str] = []
        for device in on:
            if fill is not None:  # with variables: this device's command
                command, idempotent = fill(device)
            mine = coordination
            if not inline and not pick:
                prev = before.get(device)
                before[device] = step
                if prev is not None and prev.delay:
                    mine = delayed.get(prev.name) or delayed.setdefault(
                        prev.name, _gap(step, prev, coordination, device)
                    )
            entry_id = ids()
            if (
                like is None
                or like.command is not command
                or like.idempotent != idempotent
                or like.coordination is not mine
            ):
                if like is not None:
                    parts.append(Part(like, tuple(part_ids), tuple(part_devices), inline))
                    part_ids, part_devices = [], []
                like = _entry(batch, device, entry_id, command, level, now, not_before, expires,
                              idempotent, step, who, playbook.name, mine, inline=inline)
            part_ids.append(entry_id)
            part_devices.append(device)
        if like is not None:
            parts.append(Part(like, tuple(part_ids), tuple(part_devices), inline))
    touched = {name for _, names, _ in plan_steps for name in names}
    devices = tuple(device for device in inventory.devices if device.name in touched)
    steps = tuple(step for step, _, _ in plan_steps)
    return Plan(batch, playbook.name, devices, steps, tuple(parts), playbook.serial)


def _entry(
    batch: str,
    device: str,
    entry_id: str,
    command: Command,
    level: Priority,
    now: float,
    not_before: float,
    expires: float | None,
    idempotent: bool,
    step: Step,
    who: str,
    playbook: str,
    coordination: Coordination,
    *,
    inline: bool,
) -> Entry:
    return Entry(
        id=entry_id,
        batch=batch,
        device=device,
        command=command,
        priority=level,
        created=now,
        not_before=now if inline else not_before,  # inline steps run now
        expires=expires,
        idempotent=idempotent,
        verify=step.verify,
        max_attempts=step.attempts,
        who=who,
        origin=ORIGIN,
        step=step.name,
        playbook=playbook,
        coordination=coordination,  # shared by the step's entries, like `command`
    )


class _Fill:
    """One step's command per device, its variables resolved (README: Variables); devices whose
    values are the same share one `Command`."""

    def __init__(
        self, step: Step, playbook: Playbook, inventory: Inventory, given: Mapping[str, Value]
    ) -> None:
        assert step.template is not None
        self.step = step
        self.template = step.template
        self.given = given  # --var: above everything
        self.below = {**inventory.default_vars, **playbook.vars}  # below the device's own
        self.inventory = inventory
        self.made: dict[tuple[Value | None, ...], tuple[Command, bool]] = {}

    def __call__(self, device: str) -> tuple[Command, bool]:
        own, given, below = self.inventory.by_name[device].vars, self.given, self.below
        # Values are always true: `or` falls through to the next layer only when unset.
        key = tuple(given.get(n) or own.get(n) or below.get(n) for n in self.template.names)
        made = self.made.get(key)
        if made is None:
            found = dict(zip(self.template.names, key, strict=True))
            values = self.template.resolve(found.get, device)  # raises for an unset one
            command = self.step.command_for(values, device)
            idempotent = self.step.idempotent
            if self.step.idempotent_from_value:
                idempotent = commands.idempotent_default(command)
            made = self.made[key] = (command, idempotent)
        return made

    def agree(self, candidates: Sequence[str], pick: str) -> None:
        """A failover/any step is one command, whichever candidate runs it: the same on all."""
        first = self(candidates[0])
        for other in candidates[1:]:
            theirs = self(other)
            if theirs[0] != first[0]:
                raise variables.disagree(self.step.value_loc or self.step.loc,
                                         self.step.name, pick, candidates[0], other)


def _check_given(playbook: Playbook, given: Mapping[str, Value]) -> None:
    """Refuse `--var` names no step refers to: a typo would otherwise change nothing."""
    referred = {name for step in playbook.steps if step.template for name in step.template.names}
    for name in given:
        if name not in referred:
            raise variables.unreferenced(name, str(playbook.path), sorted(referred))


def _coordination(
    step: Step,
    pick: str | None,
    names: tuple[str, ...],
    present: set[str],
    serial: int | str | None,
) -> Coordination:
    after = step.after if step.after is not None and step.after in present else None
    return (
        Coordination(
            tags=tuple(step.tags),
            after=after,
            on_failure=(step.on_failure or "skip") if after is not None else "skip",
            pick=pick,
            candidates=tuple(names) if pick is not None else (),
            serial=serial,
            scope=step.scope if after is not None else "batch",
            when=step.when,
            wait_until=step.wait_until,
        )
        or NO_COORDINATION
    )


def _gap(step: Step, prev: Step, base: Coordination, device: str) -> Coordination:
    """`base` for a step that follows `prev` (which has `delay:`) on a device: it waits for
    that device's entry of `prev`, then the delay."""
    if base.after is not None and base.after != prev.name:
        raise (step.after_loc or step.loc).error(
            f"step {step.name!r} waits for {base.after!r}, but on {device} it follows "
            f"{prev.name!r}, whose delay: holds it back; a step waits for one step",
            hint=f"write after: {{step: {prev.name}, scope: device}}, or move the delay",
        )
    scope = base.scope if base.after is not None else "device"
    return replace(base, after=prev.name, scope=scope, gap=prev.delay)


def _filter_tags(
    playbook: Playbook, tags: frozenset[str] | None, skip_tags: frozenset[str] | None
) -> tuple[Step, ...]:
    steps = playbook.steps
    if tags is None and skip_tags is None:
        return steps
    start = Loc(str(playbook.path), 1, 1)
    known = {tag for step in steps for tag in step.tags}
    for option, asked in (("--tags", tags), ("--skip-tags", skip_tags)):
        for tag in sorted(asked or ()):
            if tag not in known:
                hint = yamlsrc.did_you_mean(tag, sorted(known))
                listed = ", ".join(sorted(known)) if known else "none"
                raise start.error(
                    f"{option}: no step of this playbook has tag {tag!r}",
                    hint=hint or f"its tags: {listed}",
                )
    if tags is not None:
        steps = tuple(step for step in steps if not tags.isdisjoint(step.tags))
    if skip_tags is not None:
        steps = tuple(step for step in steps if skip_tags.isdisjoint(step.tags))
    if not steps:
        said = " ".join(
            f"{option} {','.join(sorted(asked))}"
            for option, asked in (("--tags", tags), ("--skip-tags", skip_tags))
            if asked is not None
        )
        raise start.error(
            f"{said} leaves no step of this playbook", hint="check the tags of its steps"
        )
    return steps


def _candidates(
    inventory: Inventory, patterns: Sequence[str], loc: Loc | None, ordered: bool
) -> tuple[str, ...]:
    if not ordered:
        return _resolve(inventory, patterns, loc)
    # Failover order is the order written; a pattern adds its devices in inventory order.
    names: dict[str, None] = {}
    for pattern in patterns:
        names.update(dict.fromkeys(_resolve(inventory, (pattern,), loc)))
    return tuple(names)


def _resolve(inventory: Inventory, patterns: Sequence[str], loc: Loc | None) -> tuple[str, ...]:
    try:
        return selection.union(inventory, patterns)
    except InputError as err:
        if loc is None:
            raise
        raise loc.error(err.message, hint=err.hint) from None


def _schedule(playbook: Playbook, now: float, at: str | None) -> tuple[float, float | None]:
    if at is not None:
        try:
            not_before = parse_time(at, now=now)
        except InputError as err:
            raise InputError(f"--at: {err.message}", hint=err.hint) from None
    elif playbook.at is not None:
        at_text = playbook.at
        not_before = _located(lambda: parse_time(at_text, now=now), playbook.at_loc, "at")
    else:
        not_before = now
    if playbook.expires is None:
        return not_before, None
    text = playbook.expires
    expires = _located(
        lambda: parse_time(text, now=now, base=not_before), playbook.expires_loc, "expires"
    )
    if expires <= max(now, not_before):
        loc = playbook.expires_loc or Loc(str(playbook.path), 1, 1)
        raise loc.error(
            f"expires ({text}) is not after the start time; every command would expire unrun",
            hint="use a relative time like +2h, counted from `at`",
        )
    return not_before, expires


def _located(parse: Callable[[], float], loc: Loc | None, what: str) -> float:
    try:
        return parse()
    except InputError as err:
        if loc is None:
            raise
        raise loc.error(f"{what}: {err.message}", hint=err.hint) from None
