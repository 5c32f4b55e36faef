"""Steps of a playbook: one command each, with its mode, targets, tags and barrier.

`load_step` validates one step's mapping; the fields a playbook shares with its steps
(targets, tags, attempts) are parsed here for both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from cmdctl.core.errors import InputError
from cmdctl.core.model import DOMAINS, ON_FAILURE, PICKS, Command, Condition
from cmdctl.inputs import commands, flow, variables, yamlsrc
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, SeqNode

MAX_ATTEMPTS = 1_000
MODES = ("queued", "immediate")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # no ',': `--tags a,b` splits on it
TAG_HINT = "tags use letters, digits, '_', '-' and '.'"

_STEP_KEYS = (
    "name",
    "mode",
    "idempotent",
    "verify",
    "attempts",
    "targets",
    "tags",
    "after",
    "on_failure",
    "action",
    "data",
    "delay",
    "wait_until",
    "when",
)
#: Keys that make a step wait on its device; an immediate step runs at once and takes none.
_FLOW_KEYS = ("delay", "wait_until", "when")


@dataclass(frozen=True, slots=True)
class Step:
    """One command, sent to every target device of the step."""

    name: str
    command: Command  # with `${...}` in its value: domain and target only (see `template`)
    mode: str  # "queued" | "immediate"
    idempotent: bool
    verify: bool
    attempts: int
    targets: tuple[str, ...] | None  # patterns replacing the playbook's targets
    loc: Loc = field(compare=False)
    targets_loc: Loc | None = field(default=None, compare=False)
    tags: tuple[str, ...] = ()  # the playbook's tags, then the step's own
    after: str | None = None  # an earlier step of the playbook this one waits for
    on_failure: str | None = None  # "skip" | "continue"; only with `after`
    pick: str | None = None  # "failover" | "any": `targets` are candidates for ONE entry
    after_loc: Loc | None = field(default=None, compare=False)
    command_loc: Loc | None = field(default=None, compare=False)  # the `domain.entity:` key
    value_loc: Loc | None = field(default=None, compare=False)  # its value (or `data:`)
    secrets: tuple[tuple[str, Loc], ...] = field(default=(), compare=False)  # `!secret NAME`s
    # A value that refers to variables, filled in per device at expansion (`command_for`).
    template: variables.Template | None = field(default=None, hash=False)
    idempotent_from_value: bool = False  # no `idempotent:`: each filled-in command decides
    scope: str = "batch"  # `after:` waits for the whole batch, or for this device's entry
    delay: float = 0.0  # seconds the device's next step waits after this one is done
    when: Condition | None = None  # sent only where this holds right before sending
    wait_until: Condition | None = None  # after sending, waited for (up to its timeout)
    delay_loc: Loc | None = field(default=None, compare=False)
    when_loc: Loc | None = field(default=None, compare=False)  # the entity key in `when:`
    wait_until_loc: Loc | None = field(default=None, compare=False)  # ... in `wait_until:`

    def command_for(self, values: Mapping[str, variables.Value], device: str) -> Command:
        """The command for `device`, whose `values` fill in the variables; parsed like a
        literal, and a value that does not fit is an error at the value."""
        template = self.template
        domain, target = self.command.domain, self.command.target
        if template is None:
            return self.command
        try:
            return commands.parse_command(domain, target, template.fill(values))
        except commands.CommandValueError as err:
            node = template.node
            loc = _path_loc(node, err.path, err.at_key) if node is not None else self.loc
            used = "; ".join(values[name].described(name) for name in template.names)
            hint = "; ".join(part for part in (err.hint, used) if part)
            raise loc.error(f"{device}: {domain}.{target}: {err.message}", hint=hint) from None


def check_attempts(attempts: int, option: str = "--attempts") -> int:
    """`attempts` if it is a whole number of tries in range; InputError naming `option` if not."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not (
        1 <= attempts <= MAX_ATTEMPTS
    ):
        raise InputError(
            f"{option} must be 1 to {MAX_ATTEMPTS:,}, not {attempts!r}",
            hint="how often the command may be tried in all, like 3",
        )
    return attempts


def load_step(
    node: Node, attempts: int, verify: bool, tags: tuple[str, ...], playbook_pick: str | None = None
) -> Step:
    """One step, with the playbook's defaults for `attempts` and `verify` and its `tags`
    (`playbook_pick`: the playbook's targets are failover/any candidates)."""
    body = yamlsrc.want_map(node, "a step", node.loc)
    selectors: list[str] = []
    for key, loc in body.keys.items():
        if key in _STEP_KEYS:
            continue
        if "." in key:
            selectors.append(key)
            continue
        if key in DOMAINS:
            raise loc.error(
                f"{key!r} needs an entity", hint=f"write {key}.ENTITY, like switch.tv_power: on"
            )
        raise loc.error(
            f"unknown step key {key!r}",
            hint=yamlsrc.did_you_mean(key, _STEP_KEYS)
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
    command, template = _command(body, selectors[0])
    default_name = f"action:{command.target}" if command.domain == "action" else selectors[0]
    mode = "queued"
    if "mode" in items:
        mode = yamlsrc.want_choice(items["mode"], MODES, "mode")
    targets: tuple[str, ...] | None = None
    pick: str | None = None
    targets_loc: Loc | None = None
    if "targets" in items:
        targets, pick, targets_loc = targets_of(items["targets"])
    if "tags" in items:
        tags = tuple(dict.fromkeys((*tags, *tags_of(items["tags"]))))
    after: flow.After | None = None
    on_failure: str | None = None
    if "after" in items:
        after = flow.after_of(items["after"])
        if mode == "immediate":
            raise body.keys["after"].error(
                "an immediate step runs at once and cannot wait for another step",
                hint="remove `mode: immediate` or `after:`",
            )
    for key in _FLOW_KEYS:
        if key in items and mode == "immediate":
            raise body.keys[key].error(
                f"an immediate step runs at once, inline; '{key}' needs a queued step",
                hint=f"remove `mode: immediate` or `{key}:`",
            )
        if key in items and (pick or (targets is None and playbook_pick)):
            raise body.keys[key].error(
                f"'{key}' is about one device; a failover/any step may run on any candidate",
                hint=f"give the step plain targets, or remove `{key}:`",
            )
    if "on_failure" in items:
        if after is None:
            raise body.keys["on_failure"].error(
                "'on_failure' needs 'after:'",
                hint="on_failure says what to do when the step named by after: fails",
            )
        on_failure = yamlsrc.want_choice(items["on_failure"], ON_FAILURE, "on_failure")
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
        attempts=attempts_of(items["attempts"]) if "attempts" in items else attempts,
        targets=targets,
        loc=body.keys["name"] if "name" in items else body.loc,
        targets_loc=targets_loc,
        tags=tags,
        after=after.step if after is not None else None,
        on_failure=on_failure,
        pick=pick,
        after_loc=after.loc if after is not None else None,
        command_loc=body.keys[selectors[0]],
        value_loc=_value_loc(body, selectors[0]),
        secrets=yamlsrc.secret_refs(
            body.items.get("data" if selectors[0] == "action" else selectors[0])
        ),
        template=template,
        idempotent_from_value=template is not None and "idempotent" not in items,
        scope=after.scope if after is not None else "batch",
        delay=flow.delay_of(items["delay"]) if "delay" in items else 0.0,
        when=flow.condition_of(items["when"], "when", wait=False) if "when" in items else None,
        wait_until=(
            flow.condition_of(items["wait_until"], "wait_until", wait=True)
            if "wait_until" in items
            else None
        ),
        delay_loc=body.keys["delay"] if "delay" in items else None,
        when_loc=_entity_loc(items["when"]) if "when" in items else None,
        wait_until_loc=_entity_loc(items["wait_until"]) if "wait_until" in items else None,
    )


def _entity_loc(node: Node) -> Loc:
    """Where a (checked) `when:` / `wait_until:` mapping names its entity."""
    if isinstance(node, MapNode):
        for key, loc in node.keys.items():
            if key != "timeout":
                return loc
    return node.loc


def targets_of(node: Node) -> tuple[tuple[str, ...], str | None, Loc]:
    """Patterns (a string or a list), or `{failover: [...]}` / `{any: [...]}` candidates."""
    if not isinstance(node, MapNode):
        return yamlsrc.want_str_list(node, "targets"), None, node.loc
    yamlsrc.check_keys(node, PICKS, "targets")
    if len(node.items) != 1:
        where = node.keys["any"] if len(node.items) > 1 else node.loc
        raise where.error(
            "targets mapping needs exactly one of failover: or any:"
            if not node.items
            else "targets has both failover: and any:; choose one",
            hint="for example targets: {failover: [ir-blaster-a, ir-blaster-b]}",
        )
    ((pick, value),) = node.items.items()
    return yamlsrc.want_str_list(value, f"targets {pick}"), pick, value.loc


def tags_of(node: Node) -> tuple[str, ...]:
    """Tags (a string or a list), each checked, duplicates dropped."""
    tags = yamlsrc.want_str_list(node, "tags")
    for tag, item in zip(tags, node.items if isinstance(node, SeqNode) else (node,), strict=True):
        if not TAG.fullmatch(tag):
            raise item.loc.error(f"bad tag {tag!r}", hint=TAG_HINT)
    return tuple(dict.fromkeys(tags))


def _command(body: MapNode, key: str) -> tuple[Command, variables.Template | None]:
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
    value = variables.template(value_node)
    try:
        if value.names:  # filled in and parsed per device at expansion
            commands.check_target(domain, target)
            return Command(domain, target, {}), value
        return commands.parse_command(domain, target, value.value), None
    except commands.CommandValueError as err:
        loc = _path_loc(value_node, err.path, err.at_key) if value_node else key_loc
        raise loc.error(f"{domain}.{target}: {err.message}", hint=err.hint) from None
    except InputError as err:
        raise key_loc.error(err.message, hint=err.hint) from None


def _value_loc(body: MapNode, key: str) -> Loc:
    """Where a command's value starts: the selector's value, or an action's `data:`."""
    if key == "action":
        data = body.items.get("data")
        return data.loc if data is not None else body.keys[key]
    return body.items[key].loc


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


def attempts_of(node: Node) -> int:
    """How often a command may be tried: 1 to MAX_ATTEMPTS."""
    return yamlsrc.want_int(node, "attempts", low=1, high=MAX_ATTEMPTS)
