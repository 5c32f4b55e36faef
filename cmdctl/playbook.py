"""Playbooks: the YAML schema, validation at load, and expansion into queued entries.

Everything is checked at load, before anything is written, and every error names
`file:line:column`. The step keys `tags`, `after` and `on_failure` are reserved for a later
issue and refused with "not supported yet": accepting and ignoring them would silently drop an
ordering or a failure policy the author asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cmdctl import commands, selection, yamlsrc
from cmdctl.errors import InputError
from cmdctl.inventory import Device, Inventory
from cmdctl.model import DOMAINS, Command, Entry, Priority
from cmdctl.timespec import parse_time
from cmdctl.yamlsrc import Loc, MapNode, Node, SeqNode

MAX_COMMANDS = 100_000  # default cap on one expansion; --max-commands raises it
DEFAULT_ATTEMPTS = 3
MAX_ATTEMPTS = 1_000
ORIGIN = "bulk"
MODES = ("queued", "immediate")

_TOP_KEYS = ("name", "targets", "priority", "at", "expires", "defaults", "steps")
_DEFAULT_KEYS = ("attempts", "verify")
_STEP_KEYS = ("name", "mode", "idempotent", "verify", "attempts", "targets", "action", "data")
_RESERVED_STEP_KEYS = ("tags", "after", "on_failure")


@dataclass(frozen=True, slots=True)
class Step:
    """One command, sent to every target device of the step."""

    name: str
    command: Command
    mode: str  # "queued" | "immediate"
    idempotent: bool
    verify: bool
    attempts: int
    targets: tuple[str, ...] | None  # patterns replacing the playbook's targets
    loc: Loc = field(compare=False)
    targets_loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Playbook:
    """A validated playbook."""

    name: str
    path: Path
    targets: tuple[str, ...]
    priority: Priority
    at: str | None  # as written; resolved against `now` at expansion
    expires: str | None  # as written; relative ones count from `at`
    steps: tuple[Step, ...]
    max_commands: int = MAX_COMMANDS
    targets_loc: Loc | None = field(default=None, compare=False)
    at_loc: Loc | None = field(default=None, compare=False)
    expires_loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Plan:
    """One expansion of a playbook: the batch to queue and the entries to run inline.

    Entries of `mode: immediate` steps are due at once (`not_before` = now), whatever `at` says.
    Entries share their step's `Command` (frozen; its args must not be mutated).
    """

    batch: str
    name: str  # the playbook's name
    devices: tuple[Device, ...]
    steps: tuple[Step, ...]
    queued: tuple[Entry, ...]
    immediate: tuple[Entry, ...]

    @property
    def count(self) -> int:
        """All commands in the plan."""
        return len(self.queued) + len(self.immediate)


def load_playbook(path: Path, *, max_commands: int = MAX_COMMANDS) -> Playbook:
    """Load and validate a playbook; every error is an `InputError` with a location."""
    start = Loc(str(path), 1, 1)
    root = yamlsrc.want_map(yamlsrc.load_file(path), "a playbook", start)
    yamlsrc.check_keys(root, _TOP_KEYS, "the playbook")
    items = root.items
    name = yamlsrc.want_str(items["name"], "name") if "name" in items else path.stem
    if "targets" not in items:
        raise root.loc.error("the playbook has no 'targets:'", hint="for example targets: all")
    targets = yamlsrc.want_str_list(items["targets"], "targets")
    priority = _priority(items["priority"]) if "priority" in items else Priority.NORMAL
    at = _time(items["at"], "at") if "at" in items else None
    expires = _time(items["expires"], "expires") if "expires" in items else None
    attempts, verify = DEFAULT_ATTEMPTS, True
    if "defaults" in items:
        defaults = yamlsrc.want_map(items["defaults"], "defaults", root.loc)
        yamlsrc.check_keys(defaults, _DEFAULT_KEYS, "defaults")
        if "attempts" in defaults.items:
            attempts = _attempts(defaults.items["attempts"])
        if "verify" in defaults.items:
            verify = yamlsrc.want_bool(defaults.items["verify"], "verify")
    if "steps" not in items:
        raise root.loc.error("the playbook has no 'steps:'")
    steps_node = items["steps"]
    if not isinstance(steps_node, SeqNode) or not steps_node.items:
        raise steps_node.loc.error("steps must be a non-empty list")
    if len(steps_node.items) > max_commands:
        raise steps_node.loc.error(
            f"{len(steps_node.items):,} steps is more than the {max_commands:,}-command cap",
            hint="raise it with --max-commands",
        )
    steps: list[Step] = []
    names: dict[str, Loc] = {}
    for node in steps_node.items:
        step = _step(node, attempts, verify)
        if step.name in names:
            raise step.loc.error(
                f"duplicate step name {step.name!r} (first at line {names[step.name].line})",
                hint="give one of them a different `name:`",
            )
        names[step.name] = step.loc
        steps.append(step)
    return Playbook(
        name=name,
        path=path,
        targets=targets,
        priority=priority,
        at=at,
        expires=expires,
        steps=tuple(steps),
        max_commands=max_commands,
        targets_loc=items["targets"].loc,
        at_loc=items["at"].loc if "at" in items else None,
        expires_loc=items["expires"].loc if "expires" in items else None,
    )


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
) -> Plan:
    """Every step on every target device (step-major, devices in inventory order) as entries."""
    where = playbook.targets_loc or Loc(str(playbook.path), 1, 1)
    limited: set[str] | None = None
    if limit is not None:
        try:
            limited = set(selection.select_names(inventory, limit))
        except InputError as err:
            raise InputError(f"--limit: {err.message}", hint=err.hint) from None
    base = _resolve(inventory, playbook.targets, where)
    plan_steps: list[tuple[Step, tuple[str, ...]]] = []
    for step in playbook.steps:
        names = (
            base if step.targets is None else _resolve(inventory, step.targets, step.targets_loc)
        )
        if limited is not None:
            names = tuple(name for name in names if name in limited)
        plan_steps.append((step, names))
    count = sum(len(names) for _, names in plan_steps)
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
    queued: list[Entry] = []
    immediate: list[Entry] = []
    for step, names in plan_steps:
        inline = step.mode == "immediate"
        into = immediate if inline else queued
        for device in names:
            into.append(
                Entry(
                    id=ids(),
                    batch=batch,
                    device=device,
                    command=step.command,
                    priority=level,
                    created=now,
                    not_before=now if inline else not_before,  # inline steps run now
                    expires=expires,
                    idempotent=step.idempotent,
                    verify=step.verify,
                    max_attempts=step.attempts,
                    who=who,
                    origin=ORIGIN,
                    step=step.name,
                    playbook=playbook.name,
                )
            )
    touched = {name for _, names in plan_steps for name in names}
    devices = tuple(device for device in inventory.devices if device.name in touched)
    return Plan(batch, playbook.name, devices, playbook.steps, tuple(queued), tuple(immediate))


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
        not_before = _located(lambda: parse_time(playbook.at or "", now=now), playbook.at_loc)
    else:
        not_before = now
    if playbook.expires is None:
        return not_before, None
    text = playbook.expires
    expires = _located(lambda: parse_time(text, now=now, base=not_before), playbook.expires_loc)
    if expires <= max(now, not_before):
        loc = playbook.expires_loc or Loc(str(playbook.path), 1, 1)
        raise loc.error(
            f"expires ({text}) is not after the start time; every command would expire unrun",
            hint="use a relative time like +2h, counted from `at`",
        )
    return not_before, expires


def _located(parse: Callable[[], float], loc: Loc | None) -> float:
    try:
        return parse()
    except InputError as err:
        if loc is None:
            raise
        raise loc.error(err.message, hint=err.hint) from None


def _step(node: Node, attempts: int, verify: bool) -> Step:
    body = yamlsrc.want_map(node, "a step", node.loc)
    selectors: list[str] = []
    for key, loc in body.keys.items():
        if key in _STEP_KEYS:
            continue
        if key in _RESERVED_STEP_KEYS:
            raise loc.error(f"step key {key!r} is not supported yet", hint="remove it for now")
        if "." in key:
            selectors.append(key)
            continue
        if key in DOMAINS:
            raise loc.error(
                f"{key!r} needs an entity", hint=f"write {key}.ENTITY, like switch.tv_power: on"
            )
        raise loc.error(
            f"unknown step key {key!r}",
            hint=yamlsrc.did_you_mean(key, (*_STEP_KEYS, *_RESERVED_STEP_KEYS))
            or "a step is DOMAIN.ENTITY: VALUE (like switch.tv_power: on) or action: NAME",
        )
    items = body.items
    if "action" in items:
        selectors.append("action")
    elif "data" in items:
        raise body.keys["data"].error("'data' belongs to an 'action:' step")
    if not selectors:
        raise body.loc.error(
            "this step has no command",
            hint="add DOMAIN.ENTITY: VALUE (like switch.tv_power: on) or action: NAME",
        )
    if len(selectors) > 1:
        raise body.keys[selectors[1]].error(
            f"a step has exactly one command; this one has {' and '.join(selectors)}",
            hint="split it into separate steps",
        )
    command = _command(body, selectors[0])
    default_name = f"action:{command.target}" if command.domain == "action" else selectors[0]
    mode = "queued"
    if "mode" in items:
        mode = yamlsrc.want_str(items["mode"], "mode")
        if mode not in MODES:
            raise items["mode"].loc.error(
                f"unknown mode {mode!r}",
                hint=yamlsrc.did_you_mean(mode, MODES) or "queued or immediate",
            )
    targets: tuple[str, ...] | None = None
    if "targets" in items:
        targets = yamlsrc.want_str_list(items["targets"], "targets")
    return Step(
        name=yamlsrc.want_str(items["name"], "step name") if "name" in items else default_name,
        command=command,
        mode=mode,
        idempotent=(
            yamlsrc.want_bool(items["idempotent"], "idempotent")
            if "idempotent" in items
            else commands.idempotent_default(command)
        ),
        verify=yamlsrc.want_bool(items["verify"], "verify") if "verify" in items else verify,
        attempts=_attempts(items["attempts"]) if "attempts" in items else attempts,
        targets=targets,
        loc=body.keys["name"] if "name" in items else body.loc,
        targets_loc=items["targets"].loc if "targets" in items else None,
    )


def _command(body: MapNode, key: str) -> Command:
    key_loc = body.keys[key]
    if key == "action":
        domain = "action"
        target = yamlsrc.want_str(body.items["action"], "action")
        value_node: Node | None = body.items.get("data")
        if value_node is not None and not isinstance(value_node, MapNode):
            raise value_node.loc.error("data must be a mapping of argument: value")
    else:
        try:
            domain, target = commands.parse_selector(key)
        except InputError as err:
            raise key_loc.error(err.message, hint=err.hint) from None
        value_node = body.items[key]
    value = value_node.plain if value_node is not None else None
    try:
        return commands.parse_command(domain, target, value)
    except commands.CommandValueError as err:
        loc = _path_loc(value_node, err.path, err.at_key) if value_node else key_loc
        raise loc.error(f"{domain}.{target}: {err.message}", hint=err.hint) from None
    except InputError as err:
        raise key_loc.error(err.message, hint=err.hint) from None


def _path_loc(node: Node, path: commands.Path_, at_key: bool) -> Loc:
    loc = node.loc
    for i, part in enumerate(path):
        if isinstance(node, MapNode) and isinstance(part, str) and part in node.items:
            if at_key and i == len(path) - 1:
                return node.keys[part]
            node = node.items[part]
        elif isinstance(node, SeqNode) and isinstance(part, int) and part < len(node.items):
            node = node.items[part]
        else:
            break
        loc = node.loc
    return loc


def _priority(node: Node) -> Priority:
    text = yamlsrc.want_str(node, "priority").strip().lower()
    try:
        return Priority(text)
    except ValueError:
        levels = [level.value for level in Priority]
        raise node.loc.error(
            f"unknown priority {text!r}",
            hint=yamlsrc.did_you_mean(text, levels) or f"one of: {', '.join(levels)}",
        ) from None


def _time(node: Node, what: str) -> str:
    text = yamlsrc.want_text(node, what).strip()
    try:
        parse_time(text, now=0.0)
    except InputError as err:
        raise node.loc.error(f"{what}: {err.message}", hint=err.hint) from None
    return text


def _attempts(node: Node) -> int:
    return yamlsrc.want_int(node, "attempts", low=1, high=MAX_ATTEMPTS)
