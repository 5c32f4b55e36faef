"""Simulated entities: their listing, their state, and what each command does to them.

Firmware behaviour mirrored here (checked against ESPHome 2026.10 host firmware): a switch publishes
only when its state changes; every other accepted command publishes the entity's state, changed or
not; an invalid value (option not in the list, number out of range, text too long or short,
unsupported mode or effect) is ignored with a warning in the device log. Number `step` is not
enforced and text `pattern` is a hint for front ends, as on firmware. A text without an initial
value reports `missing_state` until it is first set. See docs/simulator-vs-firmware.md.
"""

from __future__ import annotations

import math
from typing import Any

from cmdctl.simulator.composite import Climate, Cover, Fan, Light, Lock, MediaPlayer, Valve
from cmdctl.simulator.entity import Entity, Proto, Result
from cmdctl.simulator.proto import pb
from cmdctl.simulator.spec import EntitySpec

__all__ = ["COMMANDS", "KINDS", "BinarySensor", "Entity", "Result"]


class Switch(Entity):
    kind = "switch"
    list_type = pb.ListEntitiesSwitchResponse
    state_type = pb.SwitchStateResponse
    command_type = pb.SwitchCommandRequest
    __slots__ = ("on",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.on = bool(spec.initial)

    def state(self) -> Proto:
        return pb.SwitchStateResponse(key=self.key, state=self.on, device_id=self.spec.device_id)

    def value(self) -> bool:
        return self.on

    def command(self, msg: Proto) -> Result:
        changed = msg.state != self.on
        self.on = msg.state
        return Result({"state": msg.state}, publish=changed)  # publish_dedup_: only on change


class BinarySensor(Entity):
    """Read-only; with `follows:` it takes that on/off entity's state `lag` seconds after it
    changes (a TV whose `tv_on` sensor sees the screen come on a while after the power)."""

    kind = "binary_sensor"
    list_type = pb.ListEntitiesBinarySensorResponse
    state_type = pb.BinarySensorStateResponse
    command_type = None  # takes no commands
    __slots__ = ("on",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.on = bool(spec.initial)

    def state(self) -> Proto:
        return pb.BinarySensorStateResponse(
            key=self.key, state=self.on, device_id=self.spec.device_id
        )

    def value(self) -> bool:
        return self.on


class Button(Entity):
    kind = "button"
    list_type = pb.ListEntitiesButtonResponse
    command_type = pb.ButtonCommandRequest
    __slots__ = ("presses",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.presses = 0

    def value(self) -> int:
        return self.presses

    def command(self, msg: Proto) -> Result:
        self.presses += 1
        return Result({}, publish=False)  # buttons have no state


class Number(Entity):
    kind = "number"
    list_type = pb.ListEntitiesNumberResponse
    state_type = pb.NumberStateResponse
    command_type = pb.NumberCommandRequest
    __slots__ = ("current",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        initial = spec.initial
        self.current = float(initial) if isinstance(initial, int | float) else spec.min_value

    def _fill_info(self, msg: Proto) -> None:
        s = self.spec
        msg.min_value, msg.max_value, msg.step = s.min_value, s.max_value, s.step
        msg.unit_of_measurement = s.unit

    def state(self) -> Proto:
        return pb.NumberStateResponse(
            key=self.key, state=self.current, device_id=self.spec.device_id
        )

    def value(self) -> float:
        return self.current

    def command(self, msg: Proto) -> Result:
        value = msg.state
        args = {"value": value}
        s = self.spec
        if math.isnan(value):
            return self._reject(args, "value is NaN")
        # float32 on the wire: allow its rounding at the bounds
        if value < s.min_value - 1e-4 * max(1.0, abs(s.min_value)):
            return self._reject(args, f"value {value} must not be less than {s.min_value}")
        if value > s.max_value + 1e-4 * max(1.0, abs(s.max_value)):
            return self._reject(args, f"value {value} must not be greater than {s.max_value}")
        self.current = value
        return Result(args)


class Select(Entity):
    kind = "select"
    list_type = pb.ListEntitiesSelectResponse
    state_type = pb.SelectStateResponse
    command_type = pb.SelectCommandRequest
    __slots__ = ("option",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        initial = spec.initial
        self.option = str(initial) if initial is not None else (spec.options or ("",))[0]

    def _fill_info(self, msg: Proto) -> None:
        msg.options.extend(self.spec.options)

    def state(self) -> Proto:
        return pb.SelectStateResponse(
            key=self.key, state=self.option, device_id=self.spec.device_id
        )

    def value(self) -> str:
        return self.option

    def command(self, msg: Proto) -> Result:
        args = {"option": msg.state}
        if msg.state not in self.spec.options:
            return self._reject(args, f"option {msg.state!r} is not a valid option")
        self.option = msg.state
        return Result(args)


class Text(Entity):
    kind = "text"
    list_type = pb.ListEntitiesTextResponse
    state_type = pb.TextStateResponse
    command_type = pb.TextCommandRequest
    __slots__ = ("text",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        # no initial value: no state yet, reported as missing_state like a template text
        self.text: str | None = None if spec.initial is None else str(spec.initial)

    def _fill_info(self, msg: Proto) -> None:
        s = self.spec
        msg.min_length, msg.max_length, msg.pattern = s.min_length, s.max_length, s.pattern

    def state(self) -> Proto:
        return pb.TextStateResponse(
            key=self.key,
            state=self.text or "",
            missing_state=self.text is None,
            device_id=self.spec.device_id,
        )

    def value(self) -> str | None:
        return self.text

    def command(self, msg: Proto) -> Result:
        # firmware checks length only; `pattern` is a hint for front ends
        args = {"value": msg.state}
        if len(msg.state) > self.spec.max_length:
            return self._reject(args, f"value too long (max {self.spec.max_length})")
        if len(msg.state) < self.spec.min_length:
            return self._reject(args, f"value too short (min {self.spec.min_length})")
        self.text = msg.state
        return Result(args)


KINDS: dict[str, type[Entity]] = {
    cls.kind: cls
    for cls in (
        BinarySensor,
        Switch,
        Button,
        Number,
        Select,
        Text,
        Light,
        Cover,
        Valve,
        Fan,
        Lock,
        MediaPlayer,
        Climate,
    )
}
#: command message class → entity class that handles it
COMMANDS: dict[Any, type[Entity]] = {
    cls.command_type: cls for cls in KINDS.values() if cls.command_type is not None
}
