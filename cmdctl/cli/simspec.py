"""Simulator specs from YAML: a `simulate:` block of an inventory device, or a file of its own.

Read with the located YAML loader (`cmdctl.inputs.yamlsrc`), so every error is an `InputError`
naming `file:line:column`, with a hint; durations are `cmdctl.core.timespec` durations. The
simulator itself never reads YAML: it gets the `DeviceSpec`s built here.

A `simulate:` block (in `devices.yml`, under a device) and each device of a standalone file take:

    template: tv                 # optional: the venue's bar-TV entities and actions, plus any below
    friendly_name: Bar TV 1
    mac: "A0:B7:65:01:02:03"
    esphome_version: 2026.10.0   # default: what the real-firmware lane builds
    api_minor: 19                # HelloResponse api_version_minor (default 19, as 2026.10)
    max_connections: 5
    batch_delay: 0ms             # firmware batches state pushes every 100ms; default 0 (fast tests)
    seed: 0                      # faults are deterministic under it
    model: esp32dev              # the board (mDNS TXT `board`)
    platform: ESP32              # mDNS TXT `platform` (`simulate --mdns`)
    sub_devices: [{id: 1, name: Patio}]
    entities:
      - {type: switch, name: TV Power}
      - {type: select, name: Input, options: [HDMI 1, HDMI 2], initial: HDMI 1}
      - {type: number, name: Volume, min: 0, max: 100, step: 1, initial: 20}
      - {type: light, name: Backlight, color_modes: [rgb], effects: [Rainbow]}
      - {type: switch, name: Relay, device_id: 1}
      - {type: binary_sensor, name: TV On, follows: switch.tv_power, lag: 2s}  # read-only
    actions:
      - {name: send_tv_command, args: {box: int, channel: string}}
      - {name: get_status, response: only, returns: states}    # or returns: {any: json}
    faults: {latency: 20ms, jitter: 10ms, drop_after: 5, drop_probability: 0.1, silent: true,
             offline: true, reboot: {after: 5s, down: 2s, every: 30s}, flapping: {up: 5s, down: 1s},
             slow_handshake: 2s, wrong_key: true, handshake_timeout: 60s, reject_reset: 0.7}

A standalone file (`load_spec_file`, `cmdctl simulate --spec`) maps device names to such blocks
under `devices:`, with `host`, `port`, `key` (base64 PSK, literal) and `groups` allowed besides;
and/or has `venue: {count: N, base_port: P, encrypted: true, seed: 0}` for the built-in template.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from cmdctl.inputs import yamlsrc
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode
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

UINT32 = 0xFFFFFFFF  # ids, lengths and counts travel as uint32 in api.proto
NO_LIMIT = 2**63 - 1  # seeds and drop_after had no upper bound; want_int needs one
TEMPLATES = ("tv",)

_BLOCK_KEYS = (
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
    "platform",
    "sub_devices",
    "entities",
    "actions",
    "faults",
)
_FILE_DEVICE_KEYS = ("host", "port", "key", "groups")
_VENUE_KEYS = ("count", "base_port", "encrypted", "seed")
_ACTION_KEYS = ("name", "args", "response", "returns", "error", "description")
_SUB_DEVICE_KEYS = ("id", "name", "area_id")
_FAULT_KEYS = (
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
)
_COMMON_KEYS = ("type", "name", "device_id", "icon", "disabled_by_default", "initial")
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "binary_sensor": ("follows", "lag"),
    "switch": (),
    "button": (),
    "select": ("options",),
    "number": ("min", "max", "step", "unit"),
    "text": ("min_length", "max_length", "pattern"),
    "light": ("color_modes", "effects", "min_mireds", "max_mireds"),
    "cover": ("supports_position", "supports_tilt", "supports_stop"),
    "valve": ("supports_position", "supports_stop"),
    "fan": ("speed_count", "supports_oscillation", "supports_direction", "preset_modes"),
    "lock": ("supports_open", "requires_code"),
    "media_player": ("supports_pause",),
    "climate": (
        "modes",
        "fan_modes",
        "swing_modes",
        "presets",
        "min_temperature",
        "max_temperature",
        "temperature_step",
        "two_point",
    ),
}
_RENAMED = {"min": "min_value", "max": "max_value"}  # EntitySpec's names for them
_INT_FIELDS = ("device_id", "min_length", "max_length", "speed_count")
_TEXT_FIELDS = ("icon", "unit", "pattern", "follows")
_LIST_FIELDS = (
    "options",
    "color_modes",
    "effects",
    "preset_modes",
    "modes",
    "fan_modes",
    "swing_modes",
    "presets",
)
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_KEY_HINT = "an ESPHome API encryption key is base64 of 32 bytes (44 characters)"


def spec_from_block(
    name: str,
    *,
    host: str,
    port: int,
    psk: str | None,
    block: MapNode | None,
    source: str,
) -> DeviceSpec:
    """A DeviceSpec from an inventory device's `simulate:` block (None: a bare device)."""
    if block is not None:
        yamlsrc.check_keys(block, _BLOCK_KEYS, f"simulate of {name}")
    return _device(name, host, port, psk, block, source)


def load_spec_file(path: Path) -> list[DeviceSpec]:
    """Every device of a standalone simulator file (format in this module's docstring)."""
    source = str(path)
    top = "a simulator spec file"
    root = yamlsrc.want_map(yamlsrc.load_file(path), top, Loc(source, 1, 1))
    yamlsrc.check_keys(root, ("devices", "venue"), top)
    if not root.items:
        raise root.loc.error(
            f"{top} needs `devices:` or `venue:`", hint="for example venue: {count: 5}"
        )
    specs: list[DeviceSpec] = []
    if "venue" in root.items:
        specs += _venue(root.items["venue"], source)
    named = {spec.name for spec in specs}
    devices = root.items.get("devices")
    if devices is not None and not _empty(devices):
        body = yamlsrc.want_map(devices, "devices", root.loc)
        for name, node in body.items.items():
            if name in named:
                raise body.keys[name].error(
                    f"device {name!r} is also a device of the venue",
                    hint="rename it: the venue's devices are bar-tv-1, bar-tv-2, ...",
                )
            specs.append(_file_device(name, node, body.keys[name], source))
    return specs


def _file_device(name: str, node: Node, name_loc: Loc, source: str) -> DeviceSpec:
    if _empty(node):  # `name:` alone: a bare device with the defaults
        return _device(name, DEFAULT_HOST, 0, None, None, source)
    block = yamlsrc.want_map(node, f"device {name!r}", name_loc)
    yamlsrc.check_keys(block, _BLOCK_KEYS + _FILE_DEVICE_KEYS, f"device {name!r}")
    items = block.items
    host, port, psk = DEFAULT_HOST, 0, None
    if "host" in items:
        host = yamlsrc.want_str(items["host"], f"host of {name}")
    if "port" in items:
        port = yamlsrc.want_int(items["port"], f"port of {name}", low=0, high=65535)
    if "key" in items:
        psk = _psk(items["key"], name)
    spec = _device(name, host, port, psk, block, source)
    if "groups" in items:
        spec = replace(spec, groups=yamlsrc.want_str_list(items["groups"], f"groups of {name}"))
    return spec


def _venue(node: Node, source: str) -> list[DeviceSpec]:
    body = yamlsrc.want_map(node, "venue", node.loc)
    yamlsrc.check_keys(body, _VENUE_KEYS, "venue")
    items = body.items
    count, base_port, encrypted, seed = 1, 0, True, 0
    if "count" in items:
        count = yamlsrc.want_int(items["count"], "venue count", low=1, high=10_000)
    if "base_port" in items:
        base_port = yamlsrc.want_int(items["base_port"], "venue base_port", low=0, high=65535)
    if "encrypted" in items:
        encrypted = yamlsrc.want_bool(items["encrypted"], "venue encrypted")
    if "seed" in items:
        seed = _seed(items["seed"], "venue seed")
    specs = venue(count, base_port=base_port, encrypted=encrypted, seed=seed)
    return [replace(spec, source=source) for spec in specs]


def _device(
    name: str, host: str, port: int, psk: str | None, block: MapNode | None, source: str
) -> DeviceSpec:
    spec = DeviceSpec(
        name=name,
        friendly_name=name,
        mac=venue_mac(0, name),
        host=host,
        port=port,
        psk=psk,
        source=source,
    )
    if block is None:
        return spec
    items = block.items
    if "template" in items:
        yamlsrc.want_choice(items["template"], TEMPLATES, "template")
        spec = replace(spec, entities=TV_ENTITIES, actions=TV_ACTIONS)
    changes: dict[str, Any] = {}
    for key in ("friendly_name", "esphome_version", "model", "manufacturer", "platform"):
        if key in items:
            changes[key] = yamlsrc.want_text(items[key], key)
    if "mac" in items:
        changes["mac"] = _mac(items["mac"])
    for key, low, high in (("api_minor", 0, 255), ("max_connections", 1, 20)):
        if key in items:
            changes[key] = yamlsrc.want_int(items[key], key, low=low, high=high)
    if "seed" in items:
        changes["seed"] = _seed(items["seed"], "seed")
    if "batch_delay" in items:
        changes["batch_delay"] = yamlsrc.want_duration(items["batch_delay"], "batch_delay")
    if "sub_devices" in items:
        changes["sub_devices"] = _sub_devices(items["sub_devices"])
    if "entities" in items:
        sub_ids = {sub.device_id for sub in changes.get("sub_devices", ())}
        changes["entities"] = spec.entities + _entities(items["entities"], spec.entities, sub_ids)
    if "actions" in items:
        changes["actions"] = spec.actions + _actions(items["actions"], spec.actions)
    if "faults" in items:
        changes["faults"] = _faults(items["faults"])
    return replace(spec, **changes)


def _empty(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.value is None


def _seed(node: Node, what: str) -> int:
    return yamlsrc.want_int(node, what, low=0, high=NO_LIMIT)


def _mac(node: Node) -> str:
    text = yamlsrc.want_text(node, "mac").strip()
    if not _MAC.fullmatch(text):
        raise node.loc.error(
            f"mac {text!r} is not a MAC address", hint="write six hex pairs, like A0:B7:65:01:02:03"
        )
    return text.upper()


def _psk(node: Node, device: str) -> str:
    text = yamlsrc.want_str(node, f"key of {device}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise node.loc.error(f"key of {device} is not base64 of 32 bytes", hint=_KEY_HINT)
    return text


def _items(node: Node, what: str) -> tuple[Node, ...]:
    if not isinstance(node, SeqNode):
        raise node.loc.error(f"{what} must be a list, not {yamlsrc.kind_name(node)}")
    return node.items


def _texts(node: Node, what: str) -> tuple[str, ...]:
    return tuple(yamlsrc.want_text(item, f"each of {what}") for item in _items(node, what))


def _sub_devices(node: Node) -> tuple[SubDevice, ...]:
    out: list[SubDevice] = []
    for item in _items(node, "sub_devices"):
        body = yamlsrc.want_map(item, "a sub-device", item.loc)
        yamlsrc.check_keys(body, _SUB_DEVICE_KEYS, "a sub-device")
        if "id" not in body.items:
            raise body.loc.error(
                "a sub-device needs an id", hint="for example {id: 1, name: Patio}"
            )
        device_id = yamlsrc.want_int(body.items["id"], "sub-device id", low=1, high=UINT32)
        name = body.items.get("name")
        area = body.items.get("area_id")
        out.append(
            SubDevice(
                device_id=device_id,
                name=yamlsrc.want_text(name, "sub-device name") if name is not None else "",
                area_id=(
                    yamlsrc.want_int(area, "area_id", low=0, high=UINT32) if area is not None else 0
                ),
            )
        )
    return tuple(out)


def _entities(
    node: Node, template: tuple[EntitySpec, ...], sub_ids: set[int]
) -> tuple[EntitySpec, ...]:
    # firmware addresses an entity by (object_id, device_id): two that share them collide
    seen: dict[tuple[int, int], str] = {(e.key, e.device_id): "of the template" for e in template}
    out: list[EntitySpec] = []
    for item in _items(node, "entities"):
        spec = _entity(item)
        ident = (spec.key, spec.device_id)
        if ident in seen:
            raise item.loc.error(
                f"entity {spec.name!r} has the same object_id ({spec.object_id}) as one"
                f" {seen[ident]}",
                hint="names differing only in case, spaces or punctuation collide; rename one",
            )
        seen[ident] = f"at line {item.loc.line}"
        if spec.device_id and spec.device_id not in sub_ids:
            where = item.items["device_id"].loc if isinstance(item, MapNode) else item.loc
            raise where.error(
                f"device_id {spec.device_id} is not in sub_devices",
                hint=f"add {{id: {spec.device_id}, name: ...}} to sub_devices",
            )
        out.append(spec)
    return tuple(out)


def _entity(node: Node) -> EntitySpec:
    body = yamlsrc.want_map(node, "an entity", node.loc)
    items = body.items
    for key in ("type", "name"):
        if key not in items:
            raise body.loc.error(
                f"an entity needs a {key}", hint="for example {type: switch, name: TV Power}"
            )
    kind = yamlsrc.want_choice(items["type"], ENTITY_KINDS, "entity type")
    yamlsrc.check_keys(body, _COMMON_KEYS + _KIND_KEYS[kind], f"a {kind} entity")
    fields: dict[str, Any] = {"kind": kind, "name": yamlsrc.want_text(items["name"], "name")}
    for key, value in items.items():
        target = _RENAMED.get(key, key)
        if key in ("type", "name"):
            continue
        if key in _INT_FIELDS:
            fields[target] = yamlsrc.want_int(value, key, low=0, high=UINT32)
        elif key in _TEXT_FIELDS:
            fields[target] = yamlsrc.want_text(value, key)
        elif key.startswith(("supports_", "requires_")) or key in (
            "disabled_by_default",
            "two_point",
        ):
            fields[target] = yamlsrc.want_bool(value, key)
        elif key in _LIST_FIELDS:
            fields[target] = _texts(value, key)
        elif key == "lag":
            fields[target] = yamlsrc.want_duration(value, key)
        elif key == "initial":
            if isinstance(value, MapNode):
                raise value.loc.error("initial must be a single value or a list, not a mapping")
            fields[target] = tuple(value.plain) if isinstance(value, SeqNode) else value.plain
        else:
            fields[target] = yamlsrc.want_number(value, key)
    spec = EntitySpec(**fields)
    problem = check_entity(spec)
    if problem:
        raise body.loc.error(f"{kind} {spec.name!r}: {problem}")
    return spec


def _actions(node: Node, template: tuple[ActionSpec, ...]) -> tuple[ActionSpec, ...]:
    names = {action.name: "the template has one" for action in template}
    out: list[ActionSpec] = []
    for item in _items(node, "actions"):
        body = yamlsrc.want_map(item, "an action", item.loc)
        yamlsrc.check_keys(body, _ACTION_KEYS, "an action")
        items = body.items
        if "name" not in items:
            raise body.loc.error("an action needs a name", hint="for example {name: get_status}")
        name = yamlsrc.want_text(items["name"], "action name")
        if name in names:
            raise items["name"].loc.error(f"action {name!r} is defined twice ({names[name]})")
        names[name] = f"first at line {items['name'].loc.line}"
        args: list[ArgSpec] = []
        if "args" in items and not _empty(items["args"]):
            arg_map = yamlsrc.want_map(items["args"], "args", body.loc)
            for arg, kind in arg_map.items.items():
                args.append(ArgSpec(arg, yamlsrc.want_choice(kind, ARG_TYPES, "argument type")))
        returns = items.get("returns")
        error = items.get("error")
        description = items.get("description")
        out.append(
            ActionSpec(
                name=name,
                args=tuple(args),
                response=(
                    yamlsrc.want_choice(items["response"], RESPONSE_MODES, "response")
                    if "response" in items
                    else "none"
                ),
                returns=_returns(returns) if returns is not None else None,
                error=yamlsrc.want_text(error, "error") if error is not None else None,
                description=(
                    yamlsrc.want_text(description, "description") if description is not None else ""
                ),
            )
        )
    return tuple(out)


def _returns(node: Node) -> str | None:
    if _empty(node):
        return None
    value = node.plain
    # "states": a JSON object of every entity state, made when asked; else this JSON, as is
    return "states" if value == "states" else json.dumps(value, sort_keys=True)


def _faults(node: Node) -> FaultSpec:
    body = yamlsrc.want_map(node, "faults", node.loc)
    yamlsrc.check_keys(body, _FAULT_KEYS, "faults")
    items = body.items
    f: dict[str, Any] = {}
    for key in ("offline", "silent", "wrong_key"):
        if key in items:
            f[key] = yamlsrc.want_bool(items[key], key)
    for key in ("latency", "jitter", "slow_handshake", "handshake_timeout"):
        if key in items:
            f[key] = yamlsrc.want_duration(items[key], key)
    if "drop_after" in items:
        f["drop_after"] = yamlsrc.want_int(items["drop_after"], "drop_after", low=1, high=NO_LIMIT)
    for key in ("drop_probability", "reject_reset"):
        if key in items:
            f[key] = yamlsrc.want_number(items[key], key, low=0, high=1)
    if "reboot" in items:
        reboot = yamlsrc.want_map(items["reboot"], "reboot", body.loc)
        yamlsrc.check_keys(reboot, ("after", "down", "every"), "reboot")
        for key in ("after", "down", "every"):
            if key in reboot.items:
                f[f"reboot_{key}"] = yamlsrc.want_duration(reboot.items[key], f"reboot {key}")
        f.setdefault("reboot_after", 0.0)  # `reboot: {}` reboots at once
    if "flapping" in items:
        flap = yamlsrc.want_map(items["flapping"], "flapping", body.loc)
        yamlsrc.check_keys(flap, ("up", "down"), "flapping")
        if "up" not in flap.items:
            raise flap.loc.error("flapping needs up:", hint="for example {up: 5s, down: 1s}")
        f["flap_up"] = yamlsrc.want_duration(flap.items["up"], "flapping up")
        if "down" in flap.items:
            f["flap_down"] = yamlsrc.want_duration(flap.items["down"], "flapping down")
    return FaultSpec(**f)
