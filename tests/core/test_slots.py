"""`core.slots.constructor`: the same object as the dataclass's own constructor makes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from cmdctl.core import slots
from cmdctl.drain.observer import Finished, new_finished
from cmdctl.drain.outcomes import Verdict, new_verdict
from cmdctl.journal.events import Event, new_event

from .test_model import ARGS


def _exact(obj: object) -> list[tuple[str, type, object]]:
    return [(f.name, type(getattr(obj, f.name)), getattr(obj, f.name))
            for f in dataclasses.fields(obj)]  # type: ignore[arg-type]


def test_the_drain_s_per_command_objects_equal_their_constructors() -> None:
    fields = {"outcome": "confirmed", "duration": 0.5}
    event = new_event("done", "01JX", 2.5, fields, 1)
    assert _exact(event) == _exact(Event("done", "01JX", 2.5, fields, 1))
    assert event.fields is fields
    verdict = new_verdict("confirmed", "", (event,), 0.5)
    assert _exact(verdict) == _exact(Verdict("confirmed", "", (event,), 0.5))
    from cmdctl.core.model import Entry

    entry = Entry(**ARGS)  # type: ignore[arg-type]
    done = new_finished(entry, "confirmed", "", None, (event,))
    assert _exact(done) == _exact(Finished(entry, "confirmed", "", None, (event,)))
    assert done == Finished(entry, "confirmed", "", None, (event,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.ts = 3.0  # type: ignore[misc]


def test_every_field_is_required_and_in_order() -> None:
    with pytest.raises(TypeError):
        new_event("done", "01JX", 2.5, {})  # type: ignore[call-arg]
    assert new_event("a", "b", 1.0, {}, 7).v == 7


def test_classes_it_cannot_build_faithfully_are_refused() -> None:
    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            raise ValueError

    for cls in (Unslotted, Checked, int):
        with pytest.raises(TypeError):
            slots.constructor(cls)
