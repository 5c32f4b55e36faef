"""YAML → DeviceSpec: a `simulate:` block of an inventory device, or a file of its own.

A `simulate:` block (in `devices.yml`, under a device) and each device of a standalone file take:

    template: tv                 # optional: the venue's bar-TV entities and actions, plus any below
    friendly_name: Bar TV 1
    mac: "A0:B7:65:01:02:03"
    esphome_version: 2026.10.0   # default: what the real-firmware lane builds
    api_minor: 19                # HelloResponse api_version_minor (default 19, as 2026.10)
    max_connections: 5
    batch_delay: 0ms             # firmware batches state pushes every 100ms; default 0 (fast tests)
    seed: 0                      # faults are deterministic under it
    model: esp32dev
    sub_devices: [{id: 1, name: Patio}]
    entities:
      - {type: switch, name: TV Power}
      - {type: select, name: Input, options: [HDMI 1, HDMI 2], initial: HDMI 1}
      - {type: number, name: Volume, min: 0, max: 100, step: 1, initial: 20}
      - {type: light, name: Backlight, color_modes: [rgb], effects: [Rainbow]}
      - {type: switch, name: Relay, device_id: 1}
    actions:
      - {name: send_tv_command, args: {box: int, channel: string}}
      - {name: get_status, response: only, returns: states}    # or returns: {any: json}
    faults: {latency: 20ms, jitter: 10ms, drop_after: 5, drop_probability: 0.1, silent: true,
             offline: true, reboot: {after: 5s, down: 2s, every: 30s}, flapping: {up: 5s, down: 1s},
             slow_handshake: 2s, wrong_key: true, handshake_timeout: 60s, reject_reset: 0.7}

A standalone file (`load_spec_file`) is either a mapping of device name to such a block, with
`host`, `port`, `key` (base64 PSK, literal) and `groups` allowed besides, under `devices:`;
and/or `venue: {count: N, base_port: P, encrypted: true, seed: 0}` for the built-in template.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from cmdctl.core.errors import InputError
from cmdctl.simulator.faults import FaultSpec
from cmdctl.simulator.spec import (
    ARG_TYPES,
    DEFAULT_HOST,
    ENTITY_KINDS,
    RESPONSE_MODES,
    ActionSpec,
    ArgSpec,
    DeviceSpec,
    EntitySpec,
    SubDevice,
    check_entity,
)
from cmdctl.simulator.venue import TV_ACTIONS, TV_ENTITIES, venue, venue_mac

_COMMON_KEYS = {"type", "name", "device_id", "icon", "disabled_by_default", "initial"}
_KIND_KEYS: dict[str, set[str]] = {
    "switch": set(),
    "button": set(),
    "select": {"options"},
    "number": {"min", "max", "step", "unit"},
    "text": {"min_length", "max_length", "pattern"},
    "light": {"color_modes", "effects", "min_mireds", "max_mireds"},
    "cover": {"supports_position", "supports_tilt", "supports_stop"},
    "valve": {"supports_position", "supports_stop"},
    "fan": {"speed_count", "supports_oscillation", "supports_direction", "preset_modes"},
    "lock": {"supports_open", "requires_code"},
    "media_player": {"supports_pause"},
    "climate": {
        "modes",
        "fan_modes",
        "swing_modes",
        "presets",
        "min_temperature",
        "max_temperature",
        "temperature_step",
        "two_point",
    },
}
_RENAMED = {"min": "min_value", "max": "max_value"}
_BLOCK_KEYS = {
    "template",
    "friendly_name",
    "mac",
    "esphome_version",
    "api_minor",
    "max_connections",
    "batch_delay",
    "seed",
    "model",
    "manufacturer",
    "sub_devices",
    "entities",
    "actions",
    "faults",
}
_FILE_DEVICE_KEYS = {"host", "port", "key", "groups"}
_FAULT_KEYS = {
    "reject_reset",
    "offline",
    "silent",
    "latency",
    "jitter",
    "drop_after",
    "drop_probability",
    "reboot",
    "flapping",
    "slow_handshake",
    "wrong_key",
    "handshake_timeout",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


class _Where:
    """Names the place of a problem: file, device and key (no line numbers reach us)."""

    __slots__ = ("device", "source")

    def __init__(self, source: str, device: str) -> None:
        self.source = source
        self.device = device

    def error(self, key: str, problem: str, hint: str | None = None) -> InputError:
        return InputError(
            f"device {self.device!r}: simulate.{key}: {problem}", file=self.source, hint=hint
        )


def spec_from_block(
    name: str,
    *,
    host: str,
    port: int,
    psk: str | None,
    block: Mapping[str, Any] | None,
    source: str,
) -> DeviceSpec:
    """A DeviceSpec from an inventory device's raw `simulate:` block; InputError when invalid."""
    where = _Where(source, name)
    block = {} if block is None else block
    if not isinstance(block, Mapping):
        raise where.error("", "must be a mapping")
    _no_unknown(where, "", block, _BLOCK_KEYS)
    base = DeviceSpec(
        name=name,
        friendly_name=name,
        mac=venue_mac(0, name),
        host=host,
        port=port,
        psk=psk,
        source=source,
    )
    template = block.get("template")
    if template is not None:
        if template != "tv":
            raise where.error("template", f"unknown template {template!r}", hint="known: tv")
        base = replace(base, entities=TV_ENTITIES, actions=TV_ACTIONS)
    changes: dict[str, Any] = {}
    for key in ("friendly_name", "esphome_version", "model", "manufacturer"):
        if key in block:
            changes[key] = _str(where, key, block[key])
    if "mac" in block:
        mac = _str(where, "mac", block["mac"])
        if not _MAC.match(mac):
            raise where.error("mac", f"{mac!r} is not a MAC like A0:B7:65:01:02:03")
        changes["mac"] = mac.upper()
    for key, low, high in (("api_minor", 0, 255), ("max_connections", 1, 20), ("seed", 0, None)):
        if key in block:
            changes[key] = _int(where, key, block[key], low, high)
    if "batch_delay" in block:
        changes["batch_delay"] = _duration(where, "batch_delay", block["batch_delay"])
    if "sub_devices" in block:
        changes["sub_devices"] = _sub_devices(where, block["sub_devices"])
    if "entities" in block:
        changes["entities"] = base.entities + _entities(where, block["entities"])
    if "actions" in block:
        changes["actions"] = base.actions + _actions(where, block["actions"])
    if "faults" in block:
        changes["faults"] = _faults(where, block["faults"])
    spec = replace(base, **changes)
    _check_unique(where, spec)
    return spec


def load_spec_file(path: Path | str) -> list[DeviceSpec]:
    """Every device of a standalone simulator file (format in this module's docstring)."""
    path = Path(path)
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}", file=source) from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"invalid YAML: {err}", file=source, line=line) from err
    if not isinstance(data, Mapping) or not ({"devices", "venue"} & set(data)):
        raise InputError("expected a mapping with `devices:` and/or `venue:`", file=source)
    unknown = set(data) - {"devices", "venue"}
    if unknown:
        raise InputError(f"unknown top-level key(s): {', '.join(sorted(unknown))}", file=source)
    specs: list[DeviceSpec] = []
    if "venue" in data:
        specs.extend(_venue_section(source, data["venue"]))
    devices = data.get("devices") or {}
    if not isinstance(devices, Mapping):
        raise InputError("`devices:` must map device names to settings", file=source)
    for name, raw in devices.items():
        where = _Where(source, str(name))
        raw = {} if raw is None else raw
        if not isinstance(raw, Mapping):
            raise where.error("", "must be a mapping")
        _no_unknown(where, "", raw, _BLOCK_KEYS | _FILE_DEVICE_KEYS)
        psk = raw.get("key")
        if psk is not None:
            psk = _psk(where, psk)
        block = {k: v for k, v in raw.items() if k not in _FILE_DEVICE_KEYS}
        spec = spec_from_block(
            str(name),
            host=_str(where, "host", raw.get("host", DEFAULT_HOST)),
            port=_int(where, "port", raw.get("port", 0), 0, 65535),
            psk=psk,
            block=block,
            source=source,
        )
        groups = raw.get("groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise where.error("groups", "must be a list of group names")
        specs.append(replace(spec, groups=tuple(groups)))
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"device names used twice: {', '.join(dupes)}", file=source)
    return specs


def _venue_section(source: str, raw: Any) -> list[DeviceSpec]:
    where = _Where(source, "venue")
    if not isinstance(raw, Mapping):
        raise where.error("venue", "must be a mapping like {count: 5}")
    _no_unknown(where, "venue", raw, {"count", "base_port", "encrypted", "seed"})
    count = _int(where, "venue.count", raw.get("count", 1), 1, 10000)
    base_port = _int(where, "venue.base_port", raw.get("base_port", 0), 0, 65535)
    seed = _int(where, "venue.seed", raw.get("seed", 0), 0, None)
    encrypted = _bool(where, "venue.encrypted", raw.get("encrypted", True))
    result = venue(count, base_port=base_port, encrypted=encrypted, seed=seed)
    return [replace(s, source=source) for s in result]


def _no_unknown(where: _Where, prefix: str, raw: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(raw) - allowed
    if unknown:
        key = f"{prefix}.{sorted(unknown)[0]}" if prefix else str(sorted(unknown)[0])
        raise where.error(key, "unknown key", hint=f"known: {', '.join(sorted(allowed))}")


def _str(where: _Where, key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise where.error(key, f"expected text, got {value!r}")
    return str(value)


def _bool(where: _Where, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise where.error(key, f"expected true or false, got {value!r}")
    return value


def _int(where: _Where, key: str, value: Any, low: int | None, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"expected a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise where.error(key, f"{value} is outside {low}..{'' if high is None else high}")
    return value


def _float(where: _Where, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(key, f"expected a number, got {value!r}")
    return float(value)


def _duration(where: _Where, key: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise where.error(key, f"expected a duration like 200ms, 2s or 1m, got {value!r}")
    return float(match.group(1)) * _UNIT[match.group(2)]


def _strings(where: _Where, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise where.error(key, "expected a list")
    return tuple(_str(where, key, v) for v in value)


def _psk(where: _Where, value: Any) -> str:
    text = _str(where, "key", value)
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 32:
        raise where.error("key", "must be base64 of 32 bytes")
    return text


def _sub_devices(where: _Where, raw: Any) -> tuple[SubDevice, ...]:
    if not isinstance(raw, list):
        raise where.error("sub_devices", "expected a list of {id, name}")
    out = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise where.error("sub_devices", "expected a list of {id, name}")
        _no_unknown(where, "sub_devices", item, {"id", "name", "area_id"})
        out.append(
            SubDevice(
                device_id=_int(where, "sub_devices.id", item.get("id"), 1, 0xFFFFFFFF),
                name=_str(where, "sub_devices.name", item.get("name", "")),
                area_id=_int(where, "sub_devices.area_id", item.get("area_id", 0), 0, None),
            )
        )
    return tuple(out)


def _entities(where: _Where, raw: Any) -> tuple[EntitySpec, ...]:
    if not isinstance(raw, list):
        raise where.error("entities", "expected a list of {type, name, ...}")
    return tuple(_entity(where, f"entities[{i}]", item) for i, item in enumerate(raw))


def _entity(where: _Where, key: str, raw: Any) -> EntitySpec:
    if not isinstance(raw, Mapping):
        raise where.error(key, "expected a mapping with type and name")
    kind = raw.get("type")
    if kind not in ENTITY_KINDS:
        raise where.error(
            f"{key}.type", f"unknown entity type {kind!r}", hint=f"known: {', '.join(ENTITY_KINDS)}"
        )
    _no_unknown(where, key, raw, _COMMON_KEYS | _KIND_KEYS[kind])
    if "name" not in raw:
        raise where.error(f"{key}.name", "missing")
    fields: dict[str, Any] = {"kind": kind, "name": _str(where, f"{key}.name", raw["name"])}
    for name, value in raw.items():
        at = f"{key}.{name}"
        target: str = _RENAMED.get(str(name), str(name))
        if name in ("type", "name"):
            continue
        if name in ("device_id", "min_length", "max_length", "speed_count"):
            fields[target] = _int(where, at, value, 0, None)
        elif name in ("icon", "unit", "pattern"):
            fields[target] = _str(where, at, value)
        elif name.startswith(("supports_", "requires_")) or name in (
            "disabled_by_default",
            "two_point",
        ):
            fields[target] = _bool(where, at, value)
        elif name in (
            "options",
            "color_modes",
            "effects",
            "preset_modes",
            "modes",
            "fan_modes",
            "swing_modes",
            "presets",
        ):
            fields[target] = _strings(where, at, value)
        elif name == "initial":
            if isinstance(value, list):
                fields[target] = tuple(value)
            elif isinstance(value, Mapping):
                raise where.error(at, "expected a single value or a list")
            else:
                fields[target] = value
        else:
            fields[target] = _float(where, at, value)
    spec = EntitySpec(**fields)
    _check_entity(where, key, spec)
    return spec


def _check_entity(where: _Where, key: str, spec: EntitySpec) -> None:
    problem = check_entity(spec)
    if problem:
        raise where.error(key, problem)


def _actions(where: _Where, raw: Any) -> tuple[ActionSpec, ...]:
    if not isinstance(raw, list):
        raise where.error("actions", "expected a list of {name, args, response}")
    out = []
    for i, item in enumerate(raw):
        key = f"actions[{i}]"
        if not isinstance(item, Mapping) or "name" not in item:
            raise where.error(key, "expected a mapping with a name")
        _no_unknown(
            where, key, item, {"name", "args", "response", "returns", "error", "description"}
        )
        args = item.get("args") or {}
        if not isinstance(args, Mapping):
            raise where.error(f"{key}.args", "expected a mapping of name to type")
        arg_specs = []
        for arg_name, arg_type in args.items():
            if arg_type not in ARG_TYPES:
                raise where.error(
                    f"{key}.args.{arg_name}",
                    f"unknown type {arg_type!r}",
                    hint=f"known: {', '.join(ARG_TYPES)}",
                )
            arg_specs.append(ArgSpec(str(arg_name), arg_type))
        response = item.get("response", "none")
        if response not in RESPONSE_MODES:
            raise where.error(
                f"{key}.response",
                f"unknown mode {response!r}",
                hint=f"known: {', '.join(RESPONSE_MODES)}",
            )
        returns = item.get("returns")
        if returns is not None and returns != "states":
            try:
                returns = json.dumps(returns, sort_keys=True)
            except (TypeError, ValueError) as err:
                raise where.error(f"{key}.returns", "must be JSON-compatible") from err
        error = item.get("error")
        out.append(
            ActionSpec(
                name=_str(where, f"{key}.name", item["name"]),
                args=tuple(arg_specs),
                response=response,
                returns=returns,
                error=None if error is None else _str(where, f"{key}.error", error),
                description=_str(where, f"{key}.description", item.get("description", "")),
            )
        )
    return tuple(out)


def _faults(where: _Where, raw: Any) -> FaultSpec:
    if not isinstance(raw, Mapping):
        raise where.error("faults", "expected a mapping")
    _no_unknown(where, "faults", raw, _FAULT_KEYS)
    f: dict[str, Any] = {}
    for key in ("offline", "silent", "wrong_key"):
        if key in raw:
            f[key] = _bool(where, f"faults.{key}", raw[key])
    for key in ("latency", "jitter", "slow_handshake", "handshake_timeout"):
        if key in raw:
            f[key] = _duration(where, f"faults.{key}", raw[key])
    if "drop_after" in raw:
        f["drop_after"] = _int(where, "faults.drop_after", raw["drop_after"], 1, None)
    for key in ("drop_probability", "reject_reset"):
        if key in raw:
            p = _float(where, f"faults.{key}", raw[key])
            if not 0.0 <= p <= 1.0:
                raise where.error(f"faults.{key}", f"{p} is outside 0..1")
            f[key] = p
    if "reboot" in raw:
        reboot = raw["reboot"]
        if not isinstance(reboot, Mapping):
            raise where.error("faults.reboot", "expected {after, down, every}")
        _no_unknown(where, "faults.reboot", reboot, {"after", "down", "every"})
        f["reboot_after"] = _duration(where, "faults.reboot.after", reboot.get("after", 0))
        if "down" in reboot:
            f["reboot_down"] = _duration(where, "faults.reboot.down", reboot["down"])
        if "every" in reboot:
            f["reboot_every"] = _duration(where, "faults.reboot.every", reboot["every"])
    if "flapping" in raw:
        flap = raw["flapping"]
        if not isinstance(flap, Mapping) or "up" not in flap:
            raise where.error("faults.flapping", "expected {up, down}")
        _no_unknown(where, "faults.flapping", flap, {"up", "down"})
        f["flap_up"] = _duration(where, "faults.flapping.up", flap["up"])
        f["flap_down"] = _duration(where, "faults.flapping.down", flap.get("down", 1.0))
    return FaultSpec(**f)


def _check_unique(where: _Where, spec: DeviceSpec) -> None:
    seen: set[tuple[int, int]] = set()
    sub_ids = {d.device_id for d in spec.sub_devices}
    for entity in spec.entities:
        ident = (entity.key, entity.device_id)
        if ident in seen:
            raise where.error("entities", f"two entities share the name {entity.name!r}")
        seen.add(ident)
        if entity.device_id and entity.device_id not in sub_ids:
            raise where.error(
                "entities", f"{entity.name!r}: device_id {entity.device_id} is not in sub_devices"
            )
    names = [a.name for a in spec.actions]
    if len(set(names)) != len(names):
        raise where.error("actions", "two actions share a name")
