"""The base of every simulated entity and what a command did to it."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from cmdctl.simulator.spec import EntitySpec

log = logging.getLogger("cmdctl.simulator")

Proto = Any  # generated protobuf messages carry no static types


def names(table: dict[str, int]) -> dict[int, str]:
    """Invert a name → enum value table."""
    return {v: k for k, v in table.items()}


class Result:
    """What one command did: canonical args for the record, accepted?, publish a state?"""

    __slots__ = ("accepted", "args", "publish")

    def __init__(self, args: dict[str, Any], accepted: bool = True, publish: bool = True) -> None:
        self.args = args
        self.accepted = accepted
        self.publish = publish


class Entity:
    """One entity of one device: shared frozen spec plus this device's live state."""

    kind: ClassVar[str]
    list_type: ClassVar[Any]
    state_type: ClassVar[Any] = None
    command_type: ClassVar[Any]
    __slots__ = ("device", "key", "object_id", "spec")

    def __init__(self, spec: EntitySpec, device: str) -> None:
        self.spec = spec
        self.key = spec.key
        self.object_id = spec.object_id
        self.device = device  # node name, for log lines

    def info(self, with_object_id: bool) -> Proto:
        """The ListEntities*Response (object_id only for clients below API 1.14)."""
        s = self.spec
        msg = self.list_type(
            key=self.key,
            name=s.name,
            icon=s.icon,
            disabled_by_default=s.disabled_by_default,
            device_id=s.device_id,
        )
        if with_object_id:
            msg.object_id = self.object_id
        self._fill_info(msg)
        return msg

    def _fill_info(self, msg: Proto) -> None:
        pass

    def state(self) -> Proto | None:
        """The *StateResponse for the current state; None for stateless kinds."""
        return None

    def value(self) -> Any:
        """The current state as a JSON-compatible value."""
        return None

    def command(self, msg: Proto) -> Result:
        """Apply one command message."""
        raise NotImplementedError

    def _reject(self, args: dict[str, Any], why: str) -> Result:
        log.warning("%s: %s.%s: %s", self.device, self.kind, self.object_id, why)
        return Result(args, accepted=False, publish=False)
