"""`queued_entry`, the drain's fast `Entry` constructor, against the dataclass's own."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from cmdctl.core.model import (
    NO_COORDINATION,
    Command,
    Coordination,
    Entry,
    Priority,
    State,
    queued_entry,
)

ARGS = dict(
    id="01JABC",
    batch="01JBATCH",
    device="tv-1",
    command=Command("number", "volume", {"value": 30.0}),
    priority=Priority.HIGH,
    created=1.5,
    not_before=2.5,
    expires=9.5,
    idempotent=False,
    verify=True,
    max_attempts=4,
    who="alice@bar",
    origin="bulk",
    step="volume",
    playbook="Game night",
    updated=3.5,
    coordination=Coordination(tags=("tv",), after="power on"),
    extra=MappingProxyType({"x": 1}),
)


@pytest.mark.parametrize(
    "changes", [{}, {"expires": None, "playbook": None, "coordination": NO_COORDINATION}]
)
def test_equals_the_dataclass_constructor(changes: dict[str, object]) -> None:
    args = {**ARGS, **changes}
    fast = queued_entry(**args)  # type: ignore[arg-type]
    slow = Entry(**args)  # type: ignore[arg-type]
    assert fast == slow
    for f in dataclasses.fields(Entry):  # every slot set, to the same value and type
        assert getattr(fast, f.name) == getattr(slow, f.name)
        assert type(getattr(fast, f.name)) is type(getattr(slow, f.name))
    assert fast.state is State.PENDING and fast.attempts == 0


def test_is_still_frozen() -> None:
    entry = queued_entry(**ARGS)  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.state = State.DONE  # type: ignore[misc]
    assert dataclasses.replace(entry, state=State.DONE).state is State.DONE
