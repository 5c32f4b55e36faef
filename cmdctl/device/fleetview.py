"""What `cmdctl devices` shows: each device's last activity, fleet probes, and entity listings.

Reading the journal never imports aioesphomeapi; the probe and entity functions import the
transport (and with it the client) when they are called.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cmdctl.core.errors import DeviceError, DeviceRejected, DeviceUnavailable, ExitCode
from cmdctl.core.model import Command, Entry, JSONValue, State

if TYPE_CHECKING:
    from cmdctl.device.address import DeviceAddress
    from cmdctl.device.entities import EntityIndex, EntityRow

#: Devices probed at once unless told otherwise (one connection each; probes are short).
DEFAULT_PROBE_CONCURRENCY = 32

#: Outcome kinds that prove the device took a command (it answered; the state may differ).
_ANSWERED = frozenset({"confirmed", "delivered", "mismatch"})
#: State fields that say nothing to a person (ids, deprecated or raw fields).
_STATE_NOISE = frozenset(
    {"key", "device_id", "missing_state", "legacy_state", "unused_legacy_away", "speed", "data"}
)


# -- activity from the journal -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastOutcome:
    """The newest outcome the journal holds for one device."""

    at: float  # epoch seconds
    entry: str
    selector: str
    state: State  # done / failed, or pending after a failed attempt that will be retried
    outcome: str | None  # confirmed / delivered, or the failure kind
    error: str | None


@dataclass(frozen=True, slots=True)
class Activity:
    """`last_seen`: when the device last took a command (done, or a state mismatch)."""

    device: str
    last_seen: float | None = None
    last: LastOutcome | None = None


def activity(entries: Iterable[Entry]) -> dict[str, Activity]:
    """Per device (the one that ran it, for failover), its last outcome and last-seen time."""
    seen: dict[str, float] = {}
    last: dict[str, LastOutcome] = {}
    for entry in entries:
        outcome = _outcome(entry)
        if outcome is None:
            continue
        device = entry.ran_on or entry.device
        if outcome.outcome in _ANSWERED and outcome.at > seen.get(device, -math.inf):
            seen[device] = outcome.at
        current = last.get(device)
        if current is None or (outcome.at, outcome.entry) > (current.at, current.entry):
            last[device] = outcome
    return {
        name: Activity(name, seen.get(name), last.get(name)) for name in sorted({*seen, *last})
    }


def _outcome(entry: Entry) -> LastOutcome | None:
    if entry.state in (State.DONE, State.FAILED) and entry.finished_at is not None:
        at = entry.finished_at
    elif entry.state is State.PENDING and entry.outcome is not None:
        at = entry.updated  # an attempt failed and a retry is scheduled
    else:
        return None  # never tried, running, or finished without touching the device
    return LastOutcome(
        at=at,
        entry=entry.id,
        selector=entry.command.selector,
        state=entry.state,
        outcome=entry.outcome,
        error=entry.last_error if entry.state is not State.DONE else None,
    )


# -- probes --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """`cmdctl devices probe` for one device: reachable or not, and what answered."""

    device: str
    ok: bool
    connect_seconds: float | None = None
    rtt_seconds: float | None = None  # one device_info round trip on the open connection
    name: str = ""
    friendly_name: str = ""
    mac_address: str = ""
    esphome_version: str = ""
    model: str = ""
    api_version: str = ""
    encrypted: bool = False
    entities: int = 0
    error: DeviceError | None = field(default=None, compare=False)


async def probe(device: DeviceAddress, *, connect_timeout: float | None = None) -> ProbeResult:
    """Connect, read device info and time one round trip; failures are data, not exceptions."""
    from cmdctl.device.timeouts import CONNECT_TIMEOUT
    from cmdctl.device.transport import DeviceSession

    bound = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    session = DeviceSession(device, connect_timeout=bound)
    try:
        await session.connect()
        rtt = await session.round_trip()
        api = session.api_version
        entities = len(session.index.rows())
    except DeviceError as err:
        return ProbeResult(device=device.name, ok=False, error=err)
    finally:
        session.close()
    info = session.info
    return ProbeResult(
        device=device.name,
        ok=True,
        connect_seconds=session.connect_seconds,
        rtt_seconds=rtt,
        name=info.name,
        friendly_name=info.friendly_name,
        mac_address=info.mac_address,
        esphome_version=info.esphome_version,
        model=info.model,
        api_version=api,
        encrypted=device.key is not None,
        entities=entities,
    )


async def probe_fleet(
    devices: Sequence[DeviceAddress],
    *,
    concurrency: int = DEFAULT_PROBE_CONCURRENCY,
    connect_timeout: float | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """Probe every device, at most `concurrency` at once; results in the order given."""
    from cmdctl.device.timeouts import CONNECT_TIMEOUT

    slots = asyncio.Semaphore(max(1, concurrency))
    bound = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout

    async def one(device: DeviceAddress) -> ProbeResult:
        async with slots:
            result = await probe(device, connect_timeout=bound)
        if on_result is not None:
            on_result(result)
        return result

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(device)) for device in devices]
    return [task.result() for task in tasks]


def probe_status(result: ProbeResult) -> str:
    """`online`, `offline` (unreachable: worth retrying) or `rejected` (key, wrong device)."""
    if result.ok:
        return "online"
    if isinstance(result.error, DeviceUnavailable):
        return "offline"
    return "rejected"


def probe_exit_code(results: Iterable[ProbeResult]) -> ExitCode:
    """From the totals: any rejected → FAILED, else any offline → UNREACHABLE, else OK."""
    statuses = {probe_status(r) for r in results}
    if "rejected" in statuses:
        return ExitCode.FAILED
    if "offline" in statuses:
        return ExitCode.UNREACHABLE
    return ExitCode.OK


# -- entities ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityListing:
    """`cmdctl devices entities` for one device."""

    device: str
    friendly_name: str
    esphome_version: str
    rows: tuple[EntityRow, ...]


async def fetch_entities(device: DeviceAddress) -> EntityListing:
    """The device's entities and actions, as `cmdctl devices entities` shows them."""
    from cmdctl.device.transport import DeviceSession

    async with DeviceSession(device) as session:
        info = session.info
        return EntityListing(
            device=device.name,
            friendly_name=info.friendly_name,
            esphome_version=info.esphome_version,
            rows=tuple(session.index.rows()),
        )


@dataclass(frozen=True, slots=True)
class EntityView:
    """One entity or action: the selector to write in a playbook, what it takes, its state."""

    selector: str
    domain: str
    name: str
    details: str  # one line for people: "options: HDMI 1, HDMI 2", "0..100 step 1"
    facts: Mapping[str, JSONValue] = field(default_factory=dict)  # the same, structured
    state: JSONValue = None  # JSON-compatible; None when unknown or stateless
    has_state: bool = False


@dataclass(frozen=True, slots=True)
class DeviceEntities:
    """What one device exposes, as `cmdctl devices entities` shows it."""

    device: str
    name: str
    friendly_name: str
    esphome_version: str
    mac_address: str
    entities: tuple[EntityView, ...]
    actions: tuple[EntityView, ...]


async def inspect(device: DeviceAddress) -> DeviceEntities:
    """Connect, list the entities and actions, and read every entity's current state."""
    from cmdctl.device.states import current_states
    from cmdctl.device.transport import DeviceSession

    async with DeviceSession(device) as session:
        index = session.index
        states = await current_states(session, index.rows())
        info = session.info
    return describe(device.name, info, index, states)


def describe(
    device: str, info: Any, index: EntityIndex, states: Mapping[Any, Any]
) -> DeviceEntities:
    """A device's entities and actions from its listing (`info` needs name, friendly_name,
    esphome_version, mac_address); `states` maps (key, device_id) to a state."""
    rows = index.rows()
    selectors = playbook_selectors(rows, index.sub_devices)
    views = [_view(index, row, selectors[i], states) for i, row in enumerate(rows)]
    return DeviceEntities(
        device=device,
        name=info.name,
        friendly_name=info.friendly_name,
        esphome_version=info.esphome_version,
        mac_address=info.mac_address,
        entities=tuple(v for v in views if v.domain != "action"),
        actions=tuple(v for v in views if v.domain == "action"),
    )


def playbook_selectors(rows: Sequence[EntityRow], subs: Mapping[int, str]) -> list[str]:
    """Selectors as a playbook must write them: `domain.sub/object_id` where ambiguous."""
    from cmdctl.device.entities import snake

    owners: dict[str, set[int]] = {}
    for row in rows:
        owners.setdefault(row.selector, set()).add(row.device_id)
    out = []
    for row in rows:
        if len(owners[row.selector]) > 1:
            domain, _, object_id = row.selector.partition(".")
            sub = snake(subs[row.device_id]) if row.device_id in subs else str(row.device_id)
            out.append(f"{domain}.{sub}/{object_id}")
        else:
            out.append(row.selector)
    return out


def _view(
    index: EntityIndex, row: EntityRow, selector: str, states: Mapping[Any, Any]
) -> EntityView:
    domain, _, target = selector.partition(".")
    try:
        info = index.resolve(Command(domain, target))
    except DeviceRejected:  # read-only domains (sensors, ...) are not resolvable as targets
        info = None
    state = states.get((row.key, row.device_id))
    known = state is not None and not getattr(state, "missing_state", False)
    return EntityView(
        selector=selector,
        domain=domain,
        name=row.name,
        details=row.details,
        facts=facts(domain, info) if info is not None else {},
        state=state_value(domain, state) if known else None,
        has_state=known,
    )


def facts(domain: str, info: Any) -> dict[str, JSONValue]:
    """What an entity (or action) accepts, structured: options, ranges, modes, arguments."""
    get = getattr
    match domain:
        case "select":
            return {"options": list(info.options)}
        case "number":
            return {
                "min": info.min_value,
                "max": info.max_value,
                "step": info.step,
                "unit": info.unit_of_measurement or None,
            }
        case "text":
            return {
                "min_length": info.min_length,
                "max_length": info.max_length,
                "pattern": info.pattern or None,
            }
        case "light":
            modes = [_name(m) for m in info.supported_color_modes]
            out: dict[str, JSONValue] = {"color_modes": modes, "effects": list(info.effects)}
            if any("temperature" in m or "cold" in m for m in modes):
                out["mireds"] = [info.min_mireds, info.max_mireds]
            return out
        case "fan":
            return {
                "speed_count": get(info, "supported_speed_count", 0),
                "oscillation": get(info, "supports_oscillation", False),
                "direction": get(info, "supports_direction", False),
                "preset_modes": list(get(info, "supported_preset_modes", [])),
            }
        case "climate":
            return {
                "modes": [_name(m) for m in get(info, "supported_modes", [])],
                "fan_modes": [_name(m) for m in get(info, "supported_fan_modes", [])],
                "presets": [_name(m) for m in get(info, "supported_presets", [])],
                "min_temperature": get(info, "visual_min_temperature", None),
                "max_temperature": get(info, "visual_max_temperature", None),
            }
        case "cover":
            return {
                "position": get(info, "supports_position", False),
                "tilt": get(info, "supports_tilt", False),
                "stop": get(info, "supports_stop", False),
            }
        case "valve":
            return {
                "position": get(info, "supports_position", False),
                "stop": get(info, "supports_stop", False),
            }
        case "lock":
            return {
                "open": get(info, "supports_open", False),
                "requires_code": get(info, "requires_code", False),
            }
        case "action":
            mode = _name(info.supports_response) if info.supports_response is not None else "none"
            return {
                "args": [{"name": a.name, "type": _name(a.type)} for a in info.args],
                "response": mode,
                "returns_response": mode != "none",
            }
    return {}


def state_value(domain: str, state: Any) -> JSONValue:
    """A state as JSON: the bare value for one-field states, else a mapping of the fields."""
    names = [f for f in getattr(state, "__dataclass_fields__", {}) if f not in _STATE_NOISE]
    values = {name: _plain(getattr(state, name)) for name in names}
    if domain == "light":
        values = _light(values)
    if list(values) == ["state"]:
        return values["state"]
    return values


def _light(values: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """Only what the light's colour mode uses (the other channels hold stale numbers)."""
    from aioesphomeapi.model import ColorMode  # loaded already: states come from the client

    raw = values.get("color_mode")
    if isinstance(raw, int):  # LightState keeps the wire integer
        with contextlib.suppress(ValueError):
            values["color_mode"] = ColorMode(raw).name.lower()
    mode = str(values.get("color_mode") or "")
    out: dict[str, JSONValue] = {
        k: values[k] for k in ("state", "brightness", "color_mode") if k in values
    }
    if "rgb" in mode:
        out["rgb"] = [values.get("red"), values.get("green"), values.get("blue")]
        out["color_brightness"] = values.get("color_brightness")
    if "white" in mode and "cold" not in mode:
        out["white"] = values.get("white")
    if "temperature" in mode:
        out["color_temperature"] = values.get("color_temperature")
    if "cold" in mode:
        out["cold_white"] = values.get("cold_white")
        out["warm_white"] = values.get("warm_white")
    effect = values.get("effect")
    if isinstance(effect, str) and effect.strip().lower() not in ("", "none"):
        out["effect"] = effect
    return out


def _plain(value: Any) -> JSONValue:
    if isinstance(value, enum.Enum):
        return _name(value)
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return None
    return value  # bool, int, str, None


def _name(value: Any) -> str:
    """An enum as its lower-case name (`ColorMode.RGB` → `rgb`)."""
    name = getattr(value, "name", None)
    return name.lower() if isinstance(name, str) else str(value)


def describe_error(error: DeviceError | None) -> dict[str, JSONValue] | None:
    """A probe's classified error as JSON: kind, reason and hint."""
    if error is None:
        return None
    return {"kind": error.kind, "message": error.reason, "hint": error.hint}
