"""Simulated user-defined API actions: listing, typed argument decoding, optional response."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from cmdctl.simulator.proto import pb
from cmdctl.simulator.spec import ActionSpec

log = logging.getLogger("cmdctl.simulator")

_ARG_TYPES = {
    "bool": 0,
    "int": 1,
    "float": 2,
    "string": 3,
    "bool[]": 4,
    "int[]": 5,
    "float[]": 6,
    "string[]": 7,
}
_RESPONSE_MODES = {"none": 0, "optional": 1, "only": 2, "status": 100}


def _arg_value(kind: str, arg: Any) -> Any:
    if kind == "bool":
        return arg.bool_
    if kind == "int":
        return arg.int_ or arg.legacy_int  # legacy_int is what clients below API 1.3 fill
    if kind == "float":
        return arg.float_
    if kind == "string":
        return arg.string_
    return list(getattr(arg, kind[:-2] + "_array"))  # "int[]" -> int_array


class Action:
    """One user action of one device."""

    __slots__ = ("device", "key", "spec")

    def __init__(self, spec: ActionSpec, device: str) -> None:
        self.spec = spec
        self.key = spec.key
        self.device = device

    def info(self) -> Any:
        """The ListEntitiesServicesResponse."""
        msg = pb.ListEntitiesServicesResponse(
            name=self.spec.name,
            key=self.key,
            supports_response=_RESPONSE_MODES[self.spec.response],
            description=self.spec.description,
        )
        for arg in self.spec.args:
            msg.args.add(name=arg.name, type=_ARG_TYPES[arg.type])
        return msg

    def execute(
        self, msg: Any, states: Callable[[], dict[str, Any]]
    ) -> tuple[dict[str, Any], bool, Any | None]:
        """(canonical args, accepted, ExecuteServiceResponse or None) for one request."""
        spec = self.spec
        args: dict[str, Any] = {}
        if msg.call_id:
            args["call_id"] = msg.call_id
            args["return_response"] = msg.return_response
        if len(msg.args) != len(spec.args):
            # firmware: "Could not find service" at VERBOSE, nothing is sent back
            log.warning(
                "%s: action %s: expected %d arguments, got %d",
                self.device,
                spec.name,
                len(spec.args),
                len(msg.args),
            )
            args["data"] = None
            return args, False, None
        args["data"] = {
            a.name: _arg_value(a.type, v) for a, v in zip(spec.args, msg.args, strict=True)
        }
        if spec.response == "none" or not msg.call_id:
            return args, True, None
        reply = pb.ExecuteServiceResponse(
            call_id=msg.call_id, success=spec.error is None, error_message=spec.error or ""
        )
        wants_data = spec.response == "only" or (
            spec.response == "optional" and msg.return_response
        )
        if wants_data and spec.error is None:
            if spec.returns == "states":
                reply.response_data = json.dumps(states(), sort_keys=True).encode()
            elif spec.returns is not None:
                reply.response_data = spec.returns.encode()
        return args, True, reply
