"""How a validated command becomes aioesphomeapi client calls: one call per command.

Entity commands are written without a reply (the session proves delivery with a barrier);
actions go through `execute_service`, waiting for an answer only when the action gives one.
Values arrive canonical (`Plan.args`); enum fields travel as names and become the client's enums
here, at the edge. `Client` can hold a run of entity commands and write them at once.
"""

from __future__ import annotations

from typing import Any

from aioesphomeapi.client import APIClient
from aioesphomeapi.connection import APIConnection
from aioesphomeapi.model import (
    ClimateFanMode,
    ClimateMode,
    ClimatePreset,
    ClimateSwingMode,
    ExecuteServiceResponse,
    FanDirection,
    LockCommand,
    MediaPlayerCommand,
)

from cmdctl.core.errors import DeviceRejected
from cmdctl.device.classify import DEVICE_EXCEPTIONS
from cmdctl.device.entities import Plan

#: ESPHome's response modes → execute_service's `return_response` (None: fire and forget).
RETURN_RESPONSE: dict[str, bool | None] = {
    "none": None,
    "optional": False,
    "status": False,
    "only": True,
}


class Client(APIClient):
    """aioesphomeapi's client, able to hold a run of entity commands and write them at once.

    After `hold()`, the messages the client's own `*_command` methods build are kept rather
    than written, until `flush()` hands them to the connection's `send_messages`: one write to
    the socket for the run instead of a `send` system call per command, which was about half of
    what a command cost the client. The messages and their order are the client's; the firmware
    reads the same bytes. Only `send` may run while holding: anything else (a barrier, an action,
    the state subscription) is written at once, so the session flushes before it.
    """

    _holding: _Holding | None = None

    def hold(self) -> None:
        """Keep the messages of the entity commands that follow until `flush`. Refuses, as a
        command would, when not connected; until the next `await` nothing can change that."""
        if self._holding is None:
            super()._get_connection()
            self._holding = _Holding()

    def _get_connection(self) -> APIConnection:
        holding = self._holding
        if holding is not None:
            return holding  # type: ignore[return-value]
        return super()._get_connection()

    def flush(self) -> dict[int, Exception]:
        """Write the held messages in one go and stop holding. The device exceptions of the
        write propagate (some or all may have left). Any other error means nothing was written
        (the client encodes every message before writing): then each is written alone, and the
        ones that could not be, by their place in the run, are returned with their errors."""
        holding, self._holding = self._holding, None
        if holding is None or not holding.messages:
            return {}
        connection = super()._get_connection()
        messages = tuple(holding.messages)
        try:
            connection.send_messages(messages)
        except DEVICE_EXCEPTIONS:
            raise
        except Exception:  # which one: found by writing each alone
            refused: dict[int, Exception] = {}
            for n, message in enumerate(messages):
                try:
                    connection.send_message(message)
                except DEVICE_EXCEPTIONS:
                    raise
                except Exception as err:  # this message's own fault
                    refused[n] = err
            return refused
        return {}

    def release(self) -> None:
        """Stop holding and drop what is held, unwritten."""
        self._holding = None


class _Holding:
    """What the client's command methods take for the connection while it holds."""

    __slots__ = ("messages",)

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def send_message(self, message: Any) -> None:
        self.messages.append(message)


def answers(plan: Plan) -> bool:
    """True for an action that sends an answer back (its response mode is not `none`)."""
    return plan.response not in ("", "none")


def send(client: APIClient, plan: Plan, device: str) -> None:
    """Write one entity command (synchronous: entity commands have no reply)."""
    a, key, dev = plan.args, plan.key, plan.device_id
    match plan.command.domain:
        case "switch":
            client.switch_command(key, a["state"], device_id=dev)
        case "number":
            client.number_command(key, a["value"], device_id=dev)
        case "select":
            client.select_command(key, a["option"], device_id=dev)
        case "text":
            client.text_command(key, a["value"], device_id=dev)
        case "button":
            client.button_command(key, device_id=dev)
        case "light":
            client.light_command(
                key,
                state=a.get("state"),
                brightness=a.get("brightness"),
                color_brightness=a.get("color_brightness"),
                rgb=a.get("rgb"),
                white=a.get("white"),
                color_temperature=a.get("color_temperature"),
                transition_length=a.get("transition"),
                flash_length=a.get("flash"),
                effect=a.get("effect"),
                device_id=dev,
            )
        case "cover":
            client.cover_command(
                key,
                position=a.get("position"),
                tilt=a.get("tilt"),
                stop=bool(a.get("stop")),
                device_id=dev,
            )
        case "valve":
            client.valve_command(
                key, position=a.get("position"), stop=bool(a.get("stop")), device_id=dev
            )
        case "fan":
            client.fan_command(
                key,
                state=a.get("state"),
                speed_level=a.get("speed_level"),
                oscillating=a.get("oscillating"),
                direction=_enum(FanDirection, a.get("direction")),
                preset_mode=a.get("preset_mode"),
                device_id=dev,
            )
        case "climate":
            client.climate_command(
                key,
                mode=_enum(ClimateMode, a.get("mode")),
                target_temperature=a.get("target_temperature"),
                target_temperature_low=a.get("target_temperature_low"),
                target_temperature_high=a.get("target_temperature_high"),
                fan_mode=_enum(ClimateFanMode, a.get("fan_mode")),
                swing_mode=_enum(ClimateSwingMode, a.get("swing_mode")),
                custom_fan_mode=a.get("custom_fan_mode"),
                preset=_enum(ClimatePreset, a.get("preset")),
                custom_preset=a.get("custom_preset"),
                target_humidity=a.get("target_humidity"),
                device_id=dev,
            )
        case "lock":
            client.lock_command(
                key, _enum(LockCommand, a["command"]), code=a.get("code"), device_id=dev
            )
        case "media_player":
            client.media_player_command(
                key,
                command=_enum(MediaPlayerCommand, a.get("command")),
                volume=a.get("volume"),
                media_url=a.get("media_url"),
                announcement=a.get("announcement"),
                device_id=dev,
            )
        case other:
            raise DeviceRejected(device, f"{other} entities take no commands")


async def call(client: APIClient, plan: Plan) -> None:
    """Call an action that gives no answer (written like an entity command; no reply)."""
    await client.execute_service(plan.info, dict(plan.args["data"]))


async def ask(client: APIClient, plan: Plan, timeout: float) -> ExecuteServiceResponse | None:
    """Call an action that answers and wait up to `timeout` s for the answer (TimeoutError)."""
    return await client.execute_service(
        plan.info,
        dict(plan.args["data"]),
        return_response=RETURN_RESPONSE[plan.response],
        timeout=timeout,
    )


def _enum(kind: Any, name: str | None) -> Any:
    """`"heat_cool"` → `ClimateMode.HEAT_COOL` (None stays None)."""
    return None if name is None else kind[name.upper()]
