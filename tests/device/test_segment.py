"""What each command of a segment comes to when its held write fails or refuses one of them.

Over real TCP a held write does not fail on cue (the session never awaits while holding), so
these drive `Marks` with a client that answers `flush` as a failing write would.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from cmdctl.core.errors import DeliveryUnknown, DeviceRejected, DeviceUnavailable
from cmdctl.core.model import Command
from cmdctl.device import wire
from cmdctl.device.entities import EntityIndex, Plan
from cmdctl.device.segment import Marks, Results
from cmdctl.device.states import StateBook

from .helpers import ENTITIES


class Flushing:
    """`wire.Client.flush` as a write answers it: raising, or refusing some by position."""

    def __init__(self, answer: dict[int, Exception] | Exception) -> None:
        self.answer = answer

    def flush(self) -> dict[int, Exception]:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def volume(value: float) -> Plan:
    return EntityIndex("tv", ENTITIES).plan(Command("number", "volume", {"value": value}))


def marks(n_held: int, total: int) -> Marks:
    results: Results = [None] * total
    return Marks("tv", results, [(i, volume(float(i))) for i in range(n_held)])


def test_a_write_that_fails_leaves_every_held_command_in_doubt_and_the_rest_unsent() -> None:
    m = marks(2, 3)
    with pytest.raises(OSError):
        m.flush(cast(wire.Client, Flushing(OSError("broken pipe"))))
    assert m.pending == [0, 1] and m.held == []
    m.failed(DeviceUnavailable("tv", "connection lost"))
    first, second, third = m.results
    assert isinstance(first, DeliveryUnknown) and isinstance(second, DeliveryUnknown)
    assert "(after sending; delivery unknown)" in first.reason
    assert isinstance(third, DeviceUnavailable) and not isinstance(third, DeliveryUnknown)


async def test_a_refused_message_fails_alone_and_stops_its_wait() -> None:
    m = marks(3, 3)
    plan = volume(1.0)
    assert plan.expect is not None
    waiter = StateBook().wait_for((plan.key, plan.device_id), plan.expect)
    m.waiting[1] = waiter
    m.flush(cast(wire.Client, Flushing({1: ValueError("Value out of range")})))
    assert m.pending == [0, 2] and m.held == []
    refused: Any = m.results[1]
    assert isinstance(refused, DeviceRejected)
    assert "number.volume: cannot be sent: ValueError: Value out of range" in refused.reason
    assert 1 not in m.waiting and waiter.done.cancelled()
    assert m.results[0] is None and m.results[2] is None  # written: the barrier decides
