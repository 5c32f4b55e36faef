"""Entities with several state fields: light, cover, valve, fan, lock, media player, climate."""

from __future__ import annotations

from typing import Any

from cmdctl.simulator.entity import Entity, Proto, Result, log, names
from cmdctl.simulator.proto import pb
from cmdctl.simulator.spec import (
    CLIMATE_FAN_MODES,
    CLIMATE_MODES,
    CLIMATE_PRESETS,
    CLIMATE_SWING_MODES,
    COLOR_MODES,
    EntitySpec,
)

_COLOR_MODE_NAMES = {v: k for k, v in COLOR_MODES.items()}
# capability bits inside a ColorMode value (esphome light/color_mode.h)
_CAP_BRIGHTNESS, _CAP_WHITE, _CAP_CT, _CAP_CWWW, _CAP_RGB = 2, 4, 8, 16, 32
_LOCK_COMMANDS = {0: "unlock", 1: "lock", 2: "open"}
_LOCK_STATES = {"locked": 1, "unlocked": 2, "jammed": 3, "open": 7}
_MEDIA_COMMANDS = {
    v: k.removeprefix("MEDIA_PLAYER_COMMAND_").lower() for k, v in pb.MediaPlayerCommand.items()
}
_MEDIA_STATES = {"idle": 1, "playing": 2, "paused": 3, "announcing": 4, "off": 5, "on": 6}
_MEDIA_FEATURES = 1 | 4 | 8 | 128 | 256 | 512 | 1024 | 4096 | 16384  # pause, volume, on/off, play…
_VOLUME_STEP = 0.05  # firmware media_player volume_increment default
_LEGACY_COVER = {0: "open", 1: "close", 2: "stop"}


class Light(Entity):
    kind = "light"
    list_type = pb.ListEntitiesLightResponse
    state_type = pb.LightStateResponse
    command_type = pb.LightCommandRequest
    __slots__ = ("modes", "values")

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.modes = tuple(COLOR_MODES[m] for m in spec.color_modes) or (1,)
        self.values: dict[str, Any] = {
            "state": bool(spec.initial),
            "brightness": 1.0,
            "color_mode": self.modes[0],
            "color_brightness": 1.0,
            "red": 1.0,
            "green": 1.0,
            "blue": 1.0,
            "white": 1.0,
            # firmware reports 0 (field absent) for a light without colour temperature
            "color_temperature": spec.min_mireds if self._supports(_CAP_CT) else 0.0,
            "cold_white": 1.0,
            "warm_white": 1.0,
            "effect": "None",
        }

    def _fill_info(self, msg: Proto) -> None:
        s = self.spec
        msg.supported_color_modes.extend(self.modes)
        if self._supports(_CAP_CT | _CAP_CWWW):  # firmware leaves them 0 otherwise
            msg.min_mireds, msg.max_mireds = s.min_mireds, s.max_mireds
        if s.effects:
            msg.effects.extend(("None", *s.effects))  # firmware lists "None" first

    def state(self) -> Proto:
        return pb.LightStateResponse(key=self.key, device_id=self.spec.device_id, **self.values)

    def value(self) -> dict[str, Any]:
        v = dict(self.values)
        v["color_mode"] = _COLOR_MODE_NAMES.get(v["color_mode"], str(v["color_mode"]))
        v["rgb"] = [v.pop("red"), v.pop("green"), v.pop("blue")]
        return v

    def _supports(self, capability: int) -> bool:
        return any(m & capability for m in self.modes)

    def _mode_with(self, capability: int) -> None:
        if not self.values["color_mode"] & capability:
            self.values["color_mode"] = next(m for m in self.modes if m & capability)

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {}
        new: dict[str, Any] = {}
        problems = []
        if msg.has_state:
            args["state"] = new["state"] = msg.state
        if msg.has_brightness:
            args["brightness"] = msg.brightness
            new["brightness"] = min(1.0, max(0.0, msg.brightness))
        if msg.has_color_mode:
            args["color_mode"] = _COLOR_MODE_NAMES.get(msg.color_mode, msg.color_mode)
            if msg.color_mode in self.modes:
                new["color_mode"] = msg.color_mode
            else:
                problems.append(f"color mode {args['color_mode']} is not supported")
        if msg.has_color_brightness:
            args["color_brightness"] = new["color_brightness"] = msg.color_brightness
        for field, cap in (
            ("rgb", _CAP_RGB),
            ("white", _CAP_WHITE),
            ("color_temperature", _CAP_CT),
            ("cold_white", _CAP_CWWW),
            ("warm_white", _CAP_CWWW),
        ):
            if not getattr(msg, f"has_{field}"):
                continue
            if field == "rgb":
                args["rgb"] = [msg.red, msg.green, msg.blue]
            else:
                args[field] = getattr(msg, field)
            if not self._supports(cap):
                problems.append(f"{field} is not supported by this light")
                continue
            if "color_mode" not in new:
                self._mode_with(cap)
            if field == "rgb":
                new.update(red=msg.red, green=msg.green, blue=msg.blue)
            else:
                new[field] = getattr(msg, field)
        if msg.has_transition_length:
            args["transition"] = msg.transition_length / 1000
        if msg.has_flash_length:
            args["flash"] = msg.flash_length / 1000
        if msg.has_effect:
            args["effect"] = msg.effect
            if msg.effect == "None" or msg.effect in self.spec.effects:
                new["effect"] = msg.effect
            else:
                problems.append(f"effect {msg.effect!r} not found")
        for problem in problems:  # firmware drops the bad field, performs the rest
            log.warning("%s: light.%s: %s", self.device, self.object_id, problem)
        self.values.update(new)
        return Result(args, accepted=not problems)


class Cover(Entity):
    kind = "cover"
    list_type = pb.ListEntitiesCoverResponse
    state_type = pb.CoverStateResponse
    command_type = pb.CoverCommandRequest
    __slots__ = ("position", "tilt")

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.position = float(spec.initial) if isinstance(spec.initial, int | float) else 0.0
        self.tilt = 0.0

    def _fill_info(self, msg: Proto) -> None:
        s = self.spec
        msg.supports_position, msg.supports_tilt = s.supports_position, s.supports_tilt
        msg.supports_stop = s.supports_stop

    def state(self) -> Proto:
        legacy = 0 if self.position > 0 else 1
        return pb.CoverStateResponse(
            key=self.key,
            legacy_state=legacy,
            position=self.position,
            tilt=self.tilt,
            device_id=self.spec.device_id,
        )

    def value(self) -> dict[str, float]:
        return {"position": self.position, "tilt": self.tilt}

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {}
        if msg.has_legacy_command:
            args["legacy_command"] = _LEGACY_COVER.get(msg.legacy_command, msg.legacy_command)
            if msg.legacy_command in (0, 1):
                self.position = 1.0 if msg.legacy_command == 0 else 0.0
        if msg.has_position:
            args["position"] = msg.position
            self.position = min(1.0, max(0.0, msg.position))  # firmware clamps with a warning
        if msg.has_tilt:
            args["tilt"] = msg.tilt
            if not self.spec.supports_tilt:
                return self._reject(args, "tilt is not supported")
            self.tilt = min(1.0, max(0.0, msg.tilt))
        if msg.stop:
            args["stop"] = True
        if msg.stop_tilt:
            args["stop_tilt"] = True
        if msg.toggle:
            args["toggle"] = True
            self.position = 0.0 if self.position > 0 else 1.0
        return Result(args)


class Valve(Entity):
    kind = "valve"
    list_type = pb.ListEntitiesValveResponse
    state_type = pb.ValveStateResponse
    command_type = pb.ValveCommandRequest
    __slots__ = ("position",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.position = float(spec.initial) if isinstance(spec.initial, int | float) else 0.0

    def _fill_info(self, msg: Proto) -> None:
        msg.supports_position, msg.supports_stop = (
            self.spec.supports_position,
            self.spec.supports_stop,
        )

    def state(self) -> Proto:
        return pb.ValveStateResponse(
            key=self.key, position=self.position, device_id=self.spec.device_id
        )

    def value(self) -> dict[str, float]:
        return {"position": self.position}

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {}
        if msg.has_position:
            args["position"] = msg.position
            self.position = min(1.0, max(0.0, msg.position))
        if msg.stop:
            args["stop"] = True
        return Result(args)


class Fan(Entity):
    kind = "fan"
    list_type = pb.ListEntitiesFanResponse
    state_type = pb.FanStateResponse
    command_type = pb.FanCommandRequest
    __slots__ = ("values",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.values: dict[str, Any] = {
            "state": bool(spec.initial),
            "oscillating": False,
            "direction": 0,
            "speed_level": 1,
            "preset_mode": "",
        }

    def _fill_info(self, msg: Proto) -> None:
        s = self.spec
        msg.supports_oscillation, msg.supports_direction = (
            s.supports_oscillation,
            s.supports_direction,
        )
        msg.supports_speed = s.speed_count > 0
        msg.supported_speed_count = s.speed_count
        msg.supported_preset_modes.extend(s.preset_modes)

    def state(self) -> Proto:
        return pb.FanStateResponse(key=self.key, device_id=self.spec.device_id, **self.values)

    def value(self) -> dict[str, Any]:
        v = dict(self.values)
        v["direction"] = "reverse" if v["direction"] else "forward"
        return v

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {}
        new: dict[str, Any] = {}
        problems = []
        if msg.has_state:
            args["state"] = new["state"] = msg.state
        if msg.has_speed_level:
            args["speed_level"] = msg.speed_level
            if 0 <= msg.speed_level <= self.spec.speed_count:
                new["speed_level"] = msg.speed_level
            else:
                problems.append(f"speed level {msg.speed_level} is out of range")
        if msg.has_oscillating:
            args["oscillating"] = new["oscillating"] = msg.oscillating
        if msg.has_direction:
            args["direction"] = "reverse" if msg.direction else "forward"
            new["direction"] = msg.direction
        if msg.has_preset_mode:
            args["preset_mode"] = msg.preset_mode
            if msg.preset_mode in self.spec.preset_modes or msg.preset_mode == "":
                new["preset_mode"] = msg.preset_mode
            else:
                problems.append(f"preset mode {msg.preset_mode!r} is not supported")
        for problem in problems:
            log.warning("%s: fan.%s: %s", self.device, self.object_id, problem)
        self.values.update(new)
        return Result(args, accepted=not problems)


class Lock(Entity):
    kind = "lock"
    list_type = pb.ListEntitiesLockResponse
    state_type = pb.LockStateResponse
    command_type = pb.LockCommandRequest
    __slots__ = ("status",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.status = _LOCK_STATES.get(str(spec.initial), 1)

    def _fill_info(self, msg: Proto) -> None:
        msg.supports_open, msg.requires_code = self.spec.supports_open, self.spec.requires_code

    def state(self) -> Proto:
        return pb.LockStateResponse(key=self.key, state=self.status, device_id=self.spec.device_id)

    def value(self) -> str:
        return names(_LOCK_STATES).get(self.status, "none")

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {"command": _LOCK_COMMANDS.get(msg.command, str(msg.command))}
        if msg.code:
            args["code"] = msg.code
        if msg.command == 2 and not self.spec.supports_open:
            return self._reject(args, "open is not supported")
        self.status = {0: 2, 1: 1, 2: 7}.get(msg.command, self.status)
        return Result(args)


class MediaPlayer(Entity):
    kind = "media_player"
    list_type = pb.ListEntitiesMediaPlayerResponse
    state_type = pb.MediaPlayerStateResponse
    command_type = pb.MediaPlayerCommandRequest
    __slots__ = ("muted", "status", "volume")

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        self.status = _MEDIA_STATES["idle"]
        self.volume = float(spec.initial) if isinstance(spec.initial, int | float) else 0.5
        self.muted = False

    def _fill_info(self, msg: Proto) -> None:
        msg.supports_pause = self.spec.supports_pause
        msg.feature_flags = _MEDIA_FEATURES

    def state(self) -> Proto:
        return pb.MediaPlayerStateResponse(
            key=self.key,
            state=self.status,
            volume=self.volume,
            muted=self.muted,
            device_id=self.spec.device_id,
        )

    def value(self) -> dict[str, Any]:
        state = names(_MEDIA_STATES).get(self.status, "none")
        return {"state": state, "volume": self.volume, "muted": self.muted}

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {}
        if msg.has_command:
            name = _MEDIA_COMMANDS.get(msg.command, str(msg.command))
            args["command"] = name
            self._apply(name)
        if msg.has_volume:
            args["volume"] = msg.volume
            self.volume = min(1.0, max(0.0, msg.volume))
        if msg.has_media_url:
            args["media_url"] = msg.media_url
            self.status = _MEDIA_STATES["playing"]
        if msg.has_announcement:
            args["announcement"] = msg.announcement
        return Result(args)

    def _apply(self, name: str) -> None:
        playing, paused = _MEDIA_STATES["playing"], _MEDIA_STATES["paused"]
        if name == "play":
            self.status = playing
        elif name == "pause":
            self.status = paused
        elif name == "stop":
            self.status = _MEDIA_STATES["idle"]
        elif name in ("mute", "unmute"):
            self.muted = name == "mute"
        elif name == "toggle":
            self.status = paused if self.status == playing else playing
        elif name == "volume_up":
            self.volume = min(1.0, self.volume + _VOLUME_STEP)
        elif name == "volume_down":
            self.volume = max(0.0, self.volume - _VOLUME_STEP)
        elif name == "turn_on":
            self.status = _MEDIA_STATES["on"]
        elif name == "turn_off":
            self.status = _MEDIA_STATES["off"]


class Climate(Entity):
    kind = "climate"
    list_type = pb.ListEntitiesClimateResponse
    state_type = pb.ClimateStateResponse
    command_type = pb.ClimateCommandRequest
    __slots__ = ("values",)

    def __init__(self, spec: EntitySpec, device: str) -> None:
        super().__init__(spec, device)
        mid = round((spec.min_temperature + spec.max_temperature) / 2)
        self.values: dict[str, Any] = {
            "mode": CLIMATE_MODES[spec.modes[0]] if spec.modes else 0,
            "current_temperature": float(mid),
            "target_temperature": float(mid),
            "target_temperature_low": float(mid - 2),
            "target_temperature_high": float(mid + 2),
            "fan_mode": CLIMATE_FAN_MODES[spec.fan_modes[0]] if spec.fan_modes else 0,
            "swing_mode": 0,
            "preset": 0,
            "custom_fan_mode": "",
            "custom_preset": "",
            "target_humidity": 50.0,
        }

    def _fill_info(self, msg: Proto) -> None:
        s = self.spec
        msg.supports_current_temperature = True
        msg.supports_two_point_target_temperature = s.two_point
        msg.supported_modes.extend(CLIMATE_MODES[m] for m in s.modes)
        msg.supported_fan_modes.extend(CLIMATE_FAN_MODES[m] for m in s.fan_modes)
        msg.supported_swing_modes.extend(CLIMATE_SWING_MODES[m] for m in s.swing_modes)
        msg.supported_presets.extend(CLIMATE_PRESETS[m] for m in s.presets)
        msg.visual_min_temperature, msg.visual_max_temperature = (
            s.min_temperature,
            s.max_temperature,
        )
        msg.visual_target_temperature_step = s.temperature_step
        msg.visual_current_temperature_step = s.temperature_step
        msg.feature_flags = 1 | (2 if s.two_point else 0)  # current temperature (+ two point)

    def state(self) -> Proto:
        return pb.ClimateStateResponse(key=self.key, device_id=self.spec.device_id, **self.values)

    def value(self) -> dict[str, Any]:
        v = dict(self.values)
        v["mode"] = names(CLIMATE_MODES).get(v["mode"])
        v["fan_mode"] = names(CLIMATE_FAN_MODES).get(v["fan_mode"])
        v["swing_mode"] = names(CLIMATE_SWING_MODES).get(v["swing_mode"])
        v["preset"] = names(CLIMATE_PRESETS).get(v["preset"])
        return v

    def command(self, msg: Proto) -> Result:
        args: dict[str, Any] = {}
        new: dict[str, Any] = {}
        problems = []
        s = self.spec
        for field, table, allowed in (
            ("mode", CLIMATE_MODES, s.modes),
            ("fan_mode", CLIMATE_FAN_MODES, s.fan_modes),
            ("swing_mode", CLIMATE_SWING_MODES, s.swing_modes),
            ("preset", CLIMATE_PRESETS, s.presets),
        ):
            if not getattr(msg, f"has_{field}"):
                continue
            name = names(table).get(getattr(msg, field), str(getattr(msg, field)))
            args[field] = name
            if name in allowed:
                new[field] = getattr(msg, field)
            else:
                problems.append(f"{field} {name} is not supported")
        for field in (
            "target_temperature",
            "target_temperature_low",
            "target_temperature_high",
            "target_humidity",
            "custom_fan_mode",
            "custom_preset",
        ):
            if getattr(msg, f"has_{field}"):
                args[field] = new[field] = getattr(msg, field)
        for problem in problems:
            log.warning("%s: climate.%s: %s", self.device, self.object_id, problem)
        self.values.update(new)
        return Result(args, accepted=not problems)
