"""Playbooks: the YAML schema and validation at load (`Playbook`).

Everything is checked at load, before anything is written, and every error names
`file:line:column`. Expanding a playbook into entries (`expand` → `Plan`) is
`cmdctl.inputs.plan`, importable from here too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cmdctl.core.errors import InputError
from cmdctl.core.model import Priority
from cmdctl.core.timespec import check_time
from cmdctl.inputs import variables, yamlsrc
from cmdctl.inputs.plan import ORIGIN as ORIGIN
from cmdctl.inputs.plan import Part as Part
from cmdctl.inputs.plan import Plan as Plan
from cmdctl.inputs.plan import expand as expand
from cmdctl.inputs.step import TAG, TAG_HINT, Step, attempts_of, load_step, tags_of, targets_of
from cmdctl.inputs.variables import Value
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode

MAX_COMMANDS = 100_000  # default cap on one expansion; --max-commands raises it
DEFAULT_ATTEMPTS = 3
MAX_SERIAL = 1_000_000

_TOP_KEYS = (
    "name", "targets", "priority", "at", "expires", "defaults", "tags", "serial", "vars", "steps",
)  # fmt: skip
_DEFAULT_KEYS = ("attempts", "verify")
_PERCENT = re.compile(r"\s*(\d{1,3})\s*%\s*")


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
    pick: str | None = None  # "failover" | "any" when `targets` are candidates
    tags: tuple[str, ...] = ()  # applied to every step
    serial: int | str | None = None  # rolling window: N devices, or "N%" of the batch's
    vars: Mapping[str, Value] = field(default_factory=dict)  # below the inventory's devices


def load_playbook(path: Path, *, max_commands: int = MAX_COMMANDS) -> Playbook:
    """Load and validate a playbook; every error is an `InputError` with a location."""
    return _playbook(yamlsrc.load_file(path, allow_secret=True), path, max_commands)


def parse_playbook(
    text: str, name: str = "<playbook>", *, max_commands: int = MAX_COMMANDS
) -> Playbook:
    """`load_playbook` for YAML text (the library's `bulk`); errors are located in `name`."""
    return load_playbook_text(text.encode(), name, max_commands=max_commands)


def load_playbook_text(
    data: bytes, name: str, *, max_commands: int = MAX_COMMANDS
) -> Playbook:
    """`load_playbook` for a playbook sent as bytes (an HTTP body), named `name` in errors."""
    return _playbook(
        yamlsrc.load_bytes(data, name, allow_secret=True), Path(name), max_commands
    )


def _playbook(document: Node | None, path: Path, max_commands: int) -> Playbook:
    start = Loc(str(path), 1, 1)
    root = yamlsrc.want_map(document, "a playbook", start)
    yamlsrc.check_keys(root, _TOP_KEYS, "the playbook")
    items = root.items
    name = yamlsrc.want_str(items["name"], "name") if "name" in items else path.stem
    if "targets" not in items:
        raise root.loc.error("the playbook has no 'targets:'", hint="for example targets: all")
    targets, pick, targets_loc = targets_of(items["targets"])
    priority = _priority(items["priority"]) if "priority" in items else Priority.NORMAL
    at = _time(items["at"], "at") if "at" in items else None
    expires = _time(items["expires"], "expires") if "expires" in items else None
    tags = tags_of(items["tags"]) if "tags" in items else ()
    serial = _serial(items["serial"]) if "serial" in items else None
    own_vars = variables.values_of(items["vars"], "the playbook", "vars") if "vars" in items else {}
    attempts, verify = DEFAULT_ATTEMPTS, True
    if "defaults" in items:
        defaults = yamlsrc.want_map(items["defaults"], "defaults", root.loc)
        yamlsrc.check_keys(defaults, _DEFAULT_KEYS, "defaults")
        if "attempts" in defaults.items:
            attempts = attempts_of(defaults.items["attempts"])
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
        step = load_step(node, attempts, verify, tags, pick)
        if step.name in names:
            raise step.loc.error(
                f"duplicate step name {step.name!r} (first at line {names[step.name].line})",
                hint="give one of them a different `name:`",
            )
        if step.after is not None:
            _check_after(step, names, steps_node)
        if step.mode == "immediate" and (step.pick or (step.targets is None and pick)):
            raise (step.targets_loc or targets_loc or step.loc).error(
                f"step {step.name!r} is immediate: failover/any targets need a queued step",
                hint="remove `mode: immediate` or give the step plain targets",
            )
        names[step.name] = step.loc
        steps.append(step)
    last = steps[-1]
    if last.delay and last.delay_loc is not None:
        raise last.delay_loc.error(
            f"delay: on the last step ({last.name!r}) has no next step to hold back",
            hint="remove it, or add the step that should wait",
        )
    return Playbook(
        name=name,
        path=path,
        targets=targets,
        priority=priority,
        at=at,
        expires=expires,
        steps=tuple(steps),
        max_commands=max_commands,
        targets_loc=targets_loc,
        at_loc=items["at"].loc if "at" in items else None,
        expires_loc=items["expires"].loc if "expires" in items else None,
        pick=pick,
        tags=tags,
        serial=serial,
        vars=own_vars,
    )


def parse_tags(text: str) -> frozenset[str]:
    """Tags from a command-line value like `power,night` (for `--tags` / `--skip-tags`)."""
    tags = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not tags:
        raise InputError(
            f"no tags in {text!r}", hint="write tags separated by ',', like power,night"
        )
    for tag in sorted(tags):
        if not TAG.fullmatch(tag):
            raise InputError(f"bad tag {tag!r}", hint=TAG_HINT)
    return tags


def _check_after(step: Step, earlier: dict[str, Loc], steps_node: SeqNode) -> None:
    loc = step.after_loc or step.loc
    name = step.after
    if name in earlier:
        return
    if name == step.name:
        raise loc.error(f"step {name!r} cannot wait for itself", hint="name an earlier step")
    later = _step_names(steps_node)
    if name in later:
        raise loc.error(
            f"after: {name!r} is a later step (line {later[name].line});"
            " a step can only wait for an earlier one",
            hint=f"move this step below {name!r}",
        )
    raise loc.error(
        f"after: no earlier step is named {name!r}",
        hint=yamlsrc.did_you_mean(name or "", earlier)
        or (f"earlier steps: {', '.join(earlier)}" if earlier else "this is the first step"),
    )


def _step_names(steps_node: SeqNode) -> dict[str, Loc]:
    # Only for the error message: the names of all steps, as far as they parse.
    found: dict[str, Loc] = {}
    for node in steps_node.items:
        if isinstance(node, MapNode):
            name = node.items.get("name")
            if isinstance(name, ScalarNode) and isinstance(name.value, str):
                found.setdefault(name.value, node.keys["name"])
            else:
                for key in node.keys:
                    if "." in key or key == "action":
                        label = key
                        if key == "action" and isinstance(node.items[key], ScalarNode):
                            label = f"action:{node.items[key].plain}"
                        found.setdefault(label, node.loc)
                        break
    return found


def _serial(node: Node) -> int | str:
    if isinstance(node, ScalarNode) and isinstance(node.value, str) and node.tag is None:
        match = _PERCENT.fullmatch(node.value)
        if match is None or not 1 <= int(match.group(1)) <= 100:
            raise node.loc.error(
                f"serial must be a whole number or 1% to 100%, not {node.value!r}",
                hint="for example serial: 5 or serial: 20%",
            )
        return f"{int(match.group(1))}%"
    return yamlsrc.want_int(node, "serial", low=1, high=MAX_SERIAL)


def _priority(node: Node) -> Priority:
    return Priority(
        yamlsrc.want_choice(node, [level.value for level in Priority], "priority", fold=True)
    )


def _time(node: Node, what: str) -> str:
    text = yamlsrc.want_text(node, what).strip()
    try:
        check_time(text)  # the form only: `now` is known at expansion
    except InputError as err:
        raise node.loc.error(f"{what}: {err.message}", hint=err.hint) from None
    return text
