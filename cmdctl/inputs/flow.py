"""A step's time and condition keys, on one device: `delay:`, `wait_until:`, `when:` and the
mapping form of `after:` (`{step: NAME, scope: device}`).

Checked at load, every error located: a condition names one readable entity
(`binary_sensor.tv_on: on`) and a value of the shape its domain shows; durations are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass

from cmdctl.core.errors import InputError
from cmdctl.core.model import CONDITION_DOMAINS, LOCK_STATES, POSITIONS, SCOPES, Condition
from cmdctl.inputs import commands, yamlsrc
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode

#: `delay:` and a wait's `timeout:` are at most this long: a drain holds the device's slot (and
#: its connection) while it waits; longer gaps are what `at:` and separate batches are for.
MAX_DELAY = 3600.0
MAX_WAIT = 3600.0
#: `wait_until:` without `timeout:` waits this long.
DEFAULT_WAIT = 30.0

_AFTER_KEYS = ("step", "scope")
_KINDS_HINT = {
    "on_off": "on or off",
    "number": "a number",
    "text": "a string",
    "lock": " or ".join(LOCK_STATES),
    "position": "open or closed",
}


@dataclass(frozen=True, slots=True)
class After:
    """What `after:` says: the step's name and its scope."""

    step: str
    scope: str
    loc: Loc  # where the step name is written


def after_of(node: Node) -> After:
    """`after: NAME` (the whole batch) or `after: {step: NAME, scope: batch|device}`."""
    if not isinstance(node, MapNode):
        return After(yamlsrc.want_str(node, "after"), "batch", node.loc)
    yamlsrc.check_keys(node, _AFTER_KEYS, "after")
    if "step" not in node.items:
        raise node.loc.error(
            "after: needs a step", hint="for example after: {step: power on, scope: device}"
        )
    step = node.items["step"]
    scope = "batch"
    if "scope" in node.items:
        scope = yamlsrc.want_choice(node.items["scope"], SCOPES, "scope")
    return After(yamlsrc.want_str(step, "after step"), scope, step.loc)


def delay_of(node: Node) -> float:
    """`delay:`: a duration up to `MAX_DELAY`."""
    return _duration(node, "delay", MAX_DELAY)


def condition_of(node: Node, what: str, *, wait: bool) -> Condition:
    """`when: {ENTITY: VALUE}` or `wait_until: {ENTITY: VALUE, timeout: 20s}` (`wait`)."""
    example = "{binary_sensor.tv_on: on, timeout: 20s}" if wait else "{switch.tv_power: off}"
    body = yamlsrc.want_map(node, what, node.loc)
    entities = [key for key in body.items if key != "timeout" or not wait]
    if len(entities) != 1:
        where = body.keys[entities[1]] if len(entities) > 1 else body.loc
        raise where.error(
            f"{what} names exactly one entity and its value"
            + (f"; this one has {len(entities)}" if entities else ""),
            hint=f"for example {what}: {example}",
        )
    (key,) = entities
    key_loc = body.keys[key]
    domain, dot, target = key.partition(".")
    if not dot or domain not in CONDITION_DOMAINS:
        if not dot:
            raise key_loc.error(
                f"{what}: unknown key {key!r}",
                hint=f"name an entity, for example {what}: {example}",
            )
        raise key_loc.error(
            f"{what}: cannot read {domain!r} entities",
            hint=yamlsrc.did_you_mean(domain, CONDITION_DOMAINS)
            or f"readable domains: {', '.join(CONDITION_DOMAINS)}",
        )
    try:
        commands.check_target(domain, target)
    except InputError as err:
        raise key_loc.error(f"{what}: {err.message}", hint=err.hint) from None
    value = _value(body.items[key], f"{what} {key}", CONDITION_DOMAINS[domain])
    timeout = 0.0
    if wait:
        timeout = DEFAULT_WAIT
        if "timeout" in body.items:
            timeout = _duration(body.items["timeout"], f"{what} timeout", MAX_WAIT)
            if timeout <= 0:
                raise body.items["timeout"].loc.error(
                    f"{what} timeout must be longer than 0", hint="for example timeout: 20s"
                )
    return Condition(domain, target, value, timeout)


def _value(node: Node, what: str, kind: str) -> bool | float | str:
    hint = f"{what} takes {_KINDS_HINT[kind]}"
    if not isinstance(node, ScalarNode) or node.value is None or node.tag is not None:
        raise node.loc.error(
            f"{what} must be a single value, not {yamlsrc.kind_name(node)}", hint=hint
        )
    value = node.value
    if kind == "on_off":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("on", "off"):
            return value.strip().lower() == "on"
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind == "text":
        if not isinstance(value, bool):
            return value if isinstance(value, str) else node.text
        hint += " (quote it)"
    elif isinstance(value, str):
        choices = LOCK_STATES if kind == "lock" else POSITIONS
        if value.strip().lower() in choices:
            return value.strip().lower()
    raise node.loc.error(f"{what}: {node.text!r} is not {_KINDS_HINT[kind]}", hint=hint)


def _duration(node: Node, what: str, most: float) -> float:
    seconds = yamlsrc.want_duration(node, what)
    if seconds > most:
        raise node.loc.error(
            f"{what} of {yamlsrc.want_text(node, what)} is longer than {most / 60:g} minutes",
            hint="queue the later step for later with at:, in a batch of its own",
        )
    return seconds
