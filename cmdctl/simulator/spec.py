"""What a virtual device is: frozen specs of devices, entities, actions and sub-devices.

Built by the `venue` template, by tests, or from YAML by `cmdctl.cli.simspec` (the simulator
itself reads no YAML).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from cmdctl.simulator.faults import FaultSpec
from cmdctl.simulator.naming import fnv1, object_id_of

# By default a device answers like ESPHome 2026.1 (API 1.14, the source read in
# docs/esphome-protocol.md); ESPHome 2026.10, the firmware lane's, answers 1.19 (set both).
DEFAULT_ESPHOME_VERSION = "2026.10.0"  # what the real-firmware test lane builds
DEFAULT_API_MINOR = 19  # ESPHome 2026.10 answers HelloResponse 1.19 (seen on real firmware)
# 2026.10 (1.19) never sends object_id; the 1.14-era source sent it to clients below 1.14
# (docs/esphome-protocol.md §1.4). Where between the two it stopped is not known.
OBJECT_ID_DROPPED_MINOR = 19
DEFAULT_MAX_CONNECTIONS = 5  # ESP32 default since esphome#15889
DEFAULT_HOST = "127.0.0.1"

ENTITY_KINDS = (
    "switch",
    "light",
    "number",
    "select",
    "button",
    "text",
    "cover",
    "fan",
    "lock",
    "valve",
    "media_player",
    "climate",
    "binary_sensor",
)
ARG_TYPES = ("bool", "int", "float", "string", "bool[]", "int[]", "float[]", "string[]")
RESPONSE_MODES = ("none", "optional", "only", "status")

Scalar = bool | int | float | str | None

# names a spec may use, with their api.proto enum values
COLOR_MODES = {
    "onoff": 1,
    "brightness": 3,
    "white": 7,
    "color_temperature": 11,
    "cold_warm_white": 19,
    "rgb": 35,
    "rgb_white": 39,
    "rgb_color_temperature": 47,
    "rgb_cold_warm_white": 51,
}

CLIMATE_MODES = {"off": 0, "heat_cool": 1, "cool": 2, "heat": 3, "fan_only": 4, "dry": 5, "auto": 6}
CLIMATE_FAN_MODES = {
    "on": 0,
    "off": 1,
    "auto": 2,
    "low": 3,
    "medium": 4,
    "high": 5,
    "middle": 6,
    "focus": 7,
    "diffuse": 8,
    "quiet": 9,
}
CLIMATE_SWING_MODES = {"off": 0, "both": 1, "vertical": 2, "horizontal": 3}
CLIMATE_PRESETS = {
    "none": 0,
    "home": 1,
    "away": 2,
    "boost": 3,
    "comfort": 4,
    "eco": 5,
    "sleep": 6,
    "activity": 7,
}


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """One entity; fields that do not apply to `kind` keep their defaults."""

    kind: str
    name: str
    device_id: int = 0
    icon: str = ""
    disabled_by_default: bool = False
    initial: Scalar | tuple[Any, ...] = None
    options: tuple[str, ...] = ()  # select
    min_value: float = 0.0  # number
    max_value: float = 100.0
    step: float = 1.0
    unit: str = ""
    min_length: int = 0  # text
    max_length: int = 255
    pattern: str = ""
    color_modes: tuple[str, ...] = ("brightness",)  # light
    effects: tuple[str, ...] = ()
    min_mireds: float = 153.0
    max_mireds: float = 500.0
    supports_position: bool = True  # cover, valve
    supports_tilt: bool = False  # cover
    supports_stop: bool = True  # cover, valve
    speed_count: int = 3  # fan
    supports_oscillation: bool = True
    supports_direction: bool = True
    preset_modes: tuple[str, ...] = ()  # fan
    supports_open: bool = False  # lock
    requires_code: bool = False
    modes: tuple[str, ...] = ("off", "heat", "cool", "heat_cool")  # climate
    fan_modes: tuple[str, ...] = ()
    swing_modes: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()
    min_temperature: float = 10.0
    max_temperature: float = 30.0
    temperature_step: float = 0.5
    two_point: bool = False
    supports_pause: bool = True  # media_player
    follows: str = ""  # binary_sensor: `switch.tv_power` (an on/off entity of the device)
    lag: float = 0.0  # binary_sensor: seconds after that entity changes before it follows

    @property
    def object_id(self) -> str:
        """The id firmware derives from the name."""
        return object_id_of(self.name)

    @property
    def key(self) -> int:
        """FNV-1 of the object_id, as firmware computes it."""
        return fnv1(self.object_id)

    @property
    def selector(self) -> str:
        """`kind.object_id`."""
        return f"{self.kind}.{self.object_id}"


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One typed argument of a user action."""

    name: str
    type: str  # one of ARG_TYPES


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A user-defined API action (`api: actions:` in firmware)."""

    name: str
    args: tuple[ArgSpec, ...] = ()
    response: str = "none"  # one of RESPONSE_MODES
    returns: str | None = None  # JSON text, or "states" for a JSON object of every entity state
    error: str | None = None  # answer success=false with this message
    description: str = ""

    @property
    def key(self) -> int:
        """FNV-1 of the action name (not sanitized), as firmware computes it."""
        return fnv1(self.name)


@dataclass(frozen=True, slots=True)
class SubDevice:
    """A sub-device (`devices:` in firmware) that entities can belong to."""

    device_id: int
    name: str
    area_id: int = 0


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Everything that defines one virtual device."""

    name: str
    friendly_name: str = ""
    mac: str = "A0:B7:65:00:00:01"  # uppercase with colons, as DeviceInfoResponse carries it
    esphome_version: str = DEFAULT_ESPHOME_VERSION
    psk: str | None = field(default=None, repr=False)  # base64 key the inventory holds
    host: str = DEFAULT_HOST
    port: int = 0  # 0 = ephemeral
    entities: tuple[EntitySpec, ...] = ()
    actions: tuple[ActionSpec, ...] = ()
    faults: FaultSpec = field(default_factory=FaultSpec)
    seed: int = 0
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    batch_delay: float = 0.0  # seconds; firmware uses 0.1
    api_minor: int = DEFAULT_API_MINOR
    groups: tuple[str, ...] = ()
    sub_devices: tuple[SubDevice, ...] = ()
    model: str = "esp32dev"  # the board: DeviceInfo `model`, mDNS TXT `board`
    manufacturer: str = "Espressif"
    platform: str = "ESP32"  # mDNS TXT `platform` (firmware on the host platform sends none)
    compilation_time: str = "2026-11-23 12:00:00 +0000"  # the format firmware 2026.10 uses
    source: str = "<memory>"

    @property
    def device_psk(self) -> str | None:
        """The key the device really holds: the inventory's, unless the wrong_key fault is on."""
        if not self.faults.wrong_key:
            return self.psk
        return derived_key(self.seed, self.name, "wrong-key")


def derived_key(seed: int, name: str, purpose: str) -> str:
    """A reproducible base64 32-byte key."""
    digest = hashlib.sha256(f"cmdctl-sim:{seed}:{name}:{purpose}".encode()).digest()
    return base64.b64encode(digest).decode()


def check_entity(spec: EntitySpec) -> str | None:
    """Why this entity spec cannot be simulated, or None."""
    if not spec.name:
        return "name must not be empty"
    if spec.kind == "select" and not spec.options:
        return "a select needs options"
    if spec.kind == "select" and spec.initial is not None and spec.initial not in spec.options:
        return f"initial {spec.initial!r} is not one of the options"
    if spec.kind == "number" and spec.min_value > spec.max_value:
        return "min is greater than max"
    if spec.kind == "text" and spec.min_length > spec.max_length:
        return "min_length is greater than max_length"
    if spec.kind == "binary_sensor" and spec.lag < 0:
        return "lag must not be negative"
    if spec.kind == "light":
        bad = [m for m in spec.color_modes if m not in COLOR_MODES]
        if bad:
            return f"unknown color mode {bad[0]!r} (known: {', '.join(COLOR_MODES)})"
    if spec.kind == "climate":
        for field, table in (
            ("modes", CLIMATE_MODES),
            ("fan_modes", CLIMATE_FAN_MODES),
            ("swing_modes", CLIMATE_SWING_MODES),
            ("presets", CLIMATE_PRESETS),
        ):
            bad = [m for m in getattr(spec, field) if m not in table]
            if bad:
                return f"unknown {field[:-1]} {bad[0]!r} (known: {', '.join(table)})"
    return None
