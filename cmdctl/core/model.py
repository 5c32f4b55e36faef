"""Domain values shared by every layer: priorities, entry states, commands and entries.

Frozen, slotted dataclasses; raw YAML/JSON never travels past the loaders that build these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.core.slots import constructor

#: JSON-compatible value used in command arguments.
JSONValue = Any


class Priority(StrEnum):
    """Queue priority; due entries run high before normal before low."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Sort key: lower runs first."""
        return _PRIORITY_RANK[self]

    @classmethod
    def parse(cls, text: str) -> Priority:
        """`text` (any case) as a priority; InputError naming the choices otherwise."""
        try:
            return cls(text.lower())
        except ValueError:
            raise InputError(
                f"unknown priority {text!r}", hint="use one of: high, normal, low"
            ) from None


_PRIORITY_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


class State(StrEnum):
    """Where an entry is in its life. The fold of its journal events decides it."""

    PENDING = "pending"  # queued, waiting until due (not_before) and for a drain
    RUNNING = "running"  # a drain started it and has not recorded an outcome yet
    DONE = "done"  # delivered or confirmed (see Entry.outcome)
    FAILED = "failed"  # rejected, or gave up after max attempts
    CANCELLED = "cancelled"  # a person cancelled it
    EXPIRED = "expired"  # not executed before its `expires` time
    SUPERSEDED = "superseded"  # a newer entry set the same entity (coalescing)
    SKIPPED = "skipped"  # a prerequisite failed (barriers)
    UNKNOWN = "unknown"  # non-idempotent and interrupted mid-flight: a person must decide

    @property
    def finished(self) -> bool:
        """True for states no drain will ever touch again without a person asking."""
        return self in _FINISHED


_FINISHED = frozenset(
    {
        State.DONE,
        State.FAILED,
        State.CANCELLED,
        State.EXPIRED,
        State.SUPERSEDED,
        State.SKIPPED,
    }
)


#: Entity domains a step can address (`domain.object_id: value`), plus `action` for user actions.
DOMAINS: tuple[str, ...] = (
    "switch",
    "light",
    "number",
    "select",
    "button",
    "text",
    "cover",
    "fan",
    "climate",
    "lock",
    "valve",
    "media_player",
    "action",
)

#: media_player commands: what playbooks may say (commands) and devices are checked for (validator).
MEDIA_COMMANDS = (
    "play", "pause", "stop", "mute", "unmute", "toggle", "volume_up", "volume_down", "enqueue",
    "repeat_one", "repeat_off", "clear_playlist", "turn_on", "turn_off",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Command:
    """One thing to do to one entity (or one user action) of a device.

    `target` is the entity's object_id (`tv_power`) or its friendly name (`TV Power`), or the
    action name for domain `action`. `args` is the canonical, JSON-compatible argument mapping
    produced by `cmdctl.inputs.commands.parse_command` (for example `{"state": True}` for a switch).
    """

    domain: str
    target: str
    args: Mapping[str, JSONValue] = field(default_factory=dict)

    @property
    def selector(self) -> str:
        """`domain.target`, as written in playbooks."""
        return f"{self.domain}.{self.target}"


#: `on_failure:` of a step with `after:`: skip its entries where the prerequisite failed, or
#: (continue) skip only on the devices it failed on.
ON_FAILURE = ("skip", "continue")
#: `targets: {failover: [...]}` runs on the first reachable candidate, in order; `any:` on the
#: least busy reachable one.
PICKS = ("failover", "any")
#: `after: {step: NAME, scope: ...}`: wait for the step on every target (batch, the default) or
#: only for this device's entry of it (device).
SCOPES = ("batch", "device")

#: Domains `when:` / `wait_until:` may read, and what their values say: on_off (`on` / `off`),
#: number (equal), text (equal), lock (its state name), position (`open` = fully, `closed`).
CONDITION_DOMAINS: dict[str, str] = {
    "binary_sensor": "on_off", "switch": "on_off", "light": "on_off", "fan": "on_off",
    "sensor": "number", "number": "number",
    "text_sensor": "text", "text": "text", "select": "text",
    "lock": "lock", "cover": "position", "valve": "position",
}  # fmt: skip
LOCK_STATES = ("locked", "unlocked", "jammed", "open")
POSITIONS = ("open", "closed")


@dataclass(frozen=True, slots=True)
class Condition:
    """A state one entity must show: `when:` (read before sending) or `wait_until:` (waited for
    after sending, up to `timeout` seconds). `value` is canonical: a bool for on/off, a float for
    numbers, a string otherwise."""

    domain: str
    target: str
    value: bool | float | str
    timeout: float = 0.0

    @property
    def selector(self) -> str:
        """`domain.target`, as written in playbooks."""
        return f"{self.domain}.{self.target}"

    @property
    def wanted(self) -> str:
        """The value as a person writes it (`on`, `21.5`, `HDMI 1`)."""
        return show_value(self.value)


def show_value(value: object) -> str:
    """`on` / `off` for booleans, `21.5` for numbers, the text itself otherwise."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True, slots=True)
class Coordination:
    """How an entry takes part in fleet coordination (the playbook's fleet keys).

    `tags` select it (`drain --tags`); `after` names the step of its batch that must finish first
    and `on_failure` what a failure of that step does to it; `pick` ("failover" / "any") with its
    `candidates` lets it run on another device; `serial` is its batch's rolling window (a count,
    or a string such as "25%"). `scope` says whether `after` waits for the step on every target
    ("batch") or only for this device's entry of it ("device"); `gap` is seconds this entry
    waits after that entry finished done on this device (the prerequisite's `delay:`); `when`
    must hold right before sending; `wait_until` is waited for after sending. Built once at the
    journal edge; the drain reads these fields.
    """

    tags: tuple[str, ...] = ()
    after: str | None = None
    on_failure: str = "skip"
    pick: str | None = None
    candidates: tuple[str, ...] = ()
    serial: int | str | None = None
    scope: str = "batch"
    gap: float = 0.0
    when: Condition | None = None
    wait_until: Condition | None = None

    @property
    def per_device(self) -> bool:
        """True when the entry's barrier is decided on its own device (scope, or a gap)."""
        return self.after is not None and (self.scope == "device" or self.gap > 0)

    def __bool__(self) -> bool:
        return self != NO_COORDINATION

    def as_json(self) -> dict[str, JSONValue]:
        """The keys that are set, as a `queued` event stores them and `Entry.as_json` shows them."""
        out: dict[str, JSONValue] = {}
        if self.tags:
            out["tags"] = list(self.tags)
        if self.after is not None:
            out["after"] = self.after
            out["on_failure"] = self.on_failure
        if self.pick is not None:
            out["pick"] = self.pick
            out["candidates"] = list(self.candidates)
        if self.serial is not None:
            out["serial"] = self.serial
        if self.scope != "batch":
            out["scope"] = self.scope
        if self.gap:
            out["gap"] = self.gap
        for key, cond in (("when", self.when), ("wait_until", self.wait_until)):
            if cond is not None:
                shown: dict[str, JSONValue] = {"entity": cond.selector, "value": cond.value}
                if cond.timeout:
                    shown["timeout"] = cond.timeout
                out[key] = shown
        return out


NO_COORDINATION = Coordination()


@dataclass(frozen=True, slots=True)
class Entry:
    """The current state of one queued command: the fold of its journal events."""

    id: str
    batch: str
    device: str
    command: Command
    priority: Priority
    created: float  # epoch seconds
    not_before: float  # epoch seconds; not due before this
    expires: float | None  # epoch seconds; dropped as expired if not executed by then
    idempotent: bool  # False: never repeated automatically
    verify: bool  # wait for the state to reach the target after sending
    max_attempts: int
    who: str  # user@host that queued it
    origin: str  # send / bulk / retry ...
    step: str  # step name within its playbook ("" for `send`)
    playbook: str | None = None  # playbook name, when queued by `bulk`
    state: State = State.PENDING
    attempts: int = 0
    outcome: str | None = None  # done: "confirmed" | "delivered"; failed: error kind
    last_error: str | None = None
    reason: str | None = None  # why it is expired / superseded / unknown / skipped / cancelled
    updated: float = 0.0  # epoch seconds of the last event
    started: float | None = None  # epoch seconds of the last `started` event
    finished_at: float | None = None  # epoch seconds of the terminal event
    superseded_by: str | None = None
    ran_on: str | None = None  # device that actually ran it, when it differs (failover)
    coordination: Coordination = NO_COORDINATION  # the fleet keys (tags, after, pick, serial)
    extra: Mapping[str, JSONValue] = field(default_factory=dict)  # fields of a newer version

    @property
    def finished(self) -> bool:
        """True when no drain will touch this entry again on its own."""
        return self.state.finished

    def as_json(self) -> dict[str, JSONValue]:
        """The entry as every `--json` output, the outcome log and the API show it."""
        return {
            "id": self.id,
            "batch": self.batch,
            "device": self.device,
            "selector": self.command.selector,
            "args": dict(self.command.args),
            "state": self.state.value,
            "outcome": self.outcome,
            "priority": self.priority.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created": self.created,
            "not_before": self.not_before,
            "expires": self.expires,
            "started": self.started,
            "finished": self.finished_at,
            "idempotent": self.idempotent,
            "step": self.step,
            "playbook": self.playbook,
            "origin": self.origin,
            "who": self.who,
            "last_error": self.last_error,
            "reason": self.reason,
            "ran_on": self.ran_on,
            # The fleet keys, only those set: an entry without them shows exactly these keys.
            **(self.coordination.as_json() if self.coordination is not NO_COORDINATION else {}),
        }


#: Every field of `Entry`, in order (a field added or moved fails tests/core/test_model.py).
_new_entry: Callable[..., Entry] = constructor(Entry)


def queued_entry(
    id: str,
    batch: str,
    device: str,
    command: Command,
    priority: Priority,
    created: float,
    not_before: float,
    expires: float | None,
    idempotent: bool,
    verify: bool,
    max_attempts: int,
    who: str,
    origin: str,
    step: str,
    playbook: str | None,
    updated: float,
    coordination: Coordination,
    extra: Mapping[str, JSONValue],
) -> Entry:
    """`Entry(...)` of a `queued` record as it is read (every later field at its default), built
    in under half the time (`cmdctl.core.slots`): a drain decodes each of up to 100,000 due
    entries per pass, and the keyword call with `__init__`'s 27 `object.__setattr__` was a
    fifth of that decoding. Equal to the `Entry` the same arguments make
    (tests/core/test_model.py)."""
    return _new_entry(
        id, batch, device, command, priority, created, not_before, expires, idempotent, verify,
        max_attempts, who, origin, step, playbook, State.PENDING, 0, None, None, None, updated,
        None, None, None, None, coordination, extra,
    )  # fmt: skip
