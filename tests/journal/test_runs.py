"""`QueuedRuns`: a bulk's `queued` events encoded from what its entries share. The reference is
the event-by-event encoder (`encode_many([queued(entry) ...])`): lines, events and the append's
delta record must be exactly its, whatever the entries hold."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core import ids
from cmdctl.core.model import NO_COORDINATION, Command, Condition, Coordination, Entry, Priority
from cmdctl.journal import delta
from cmdctl.journal import events as ev
from cmdctl.journal.framing import frame_lines
from cmdctl.journal.runs import QueuedRuns, Run

from .test_events import json_value

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
coordinations = st.sampled_from([
    NO_COORDINATION,
    Coordination(tags=("night",), after="power on"),
    Coordination(after="power on", scope="device", gap=90.0),
    Coordination(pick="failover", candidates=("tv-1", "tv-\u00e9"), serial="25%"),
    Coordination(when=Condition("switch", "power", "on"), tags=("a", "b")),
])  # fmt: skip
likes = st.builds(
    Entry,
    id=text,
    batch=text,
    device=text,
    command=st.builds(
        Command,
        domain=st.sampled_from(["switch", "number", "action"]),
        target=text,
        args=st.dictionaries(st.text(max_size=8), json_value, max_size=3),
    ),
    priority=st.sampled_from(list(Priority)),
    # an int or a negative zero takes other paths of the encoder
    created=finite | st.sampled_from([0, 1, -0.0]),
    not_before=finite | st.sampled_from([0, -0.0]),
    expires=st.none() | finite,
    idempotent=st.booleans(),
    verify=st.booleans(),
    max_attempts=st.integers(min_value=0, max_value=100),
    who=text,
    origin=text,
    step=text,
    playbook=st.none() | text,
    coordination=coordinations,
    extra=st.sampled_from([{}, {"future_key": 1}, {"later": [1, "x"]}]),
)
entry_ids = st.text(alphabet=ids.ALPHABET, min_size=26, max_size=26) | text.filter(bool)
devices = st.text(max_size=12) | st.sampled_from(["tv-1", "bar \"tv\"", "t\u00e9l\u00e9", "\u2028"])


@st.composite
def runs(draw: st.DrawFn) -> Run:
    like = draw(likes)
    n = draw(st.integers(min_value=0, max_value=6))
    return Run(
        like,
        draw(st.lists(entry_ids, min_size=n, max_size=n)),
        tuple(draw(st.lists(devices, min_size=n, max_size=n))),
    )


def reference(batch: list[Run]) -> list[ev.Event]:
    """What the bulk built before: an entry, and its `queued` event, per command."""
    return [
        ev.queued(replace(run.like, id=i, device=d))
        for run in batch
        for i, d in zip(run.ids, run.devices, strict=True)
    ]


@settings(max_examples=300)
@given(st.lists(runs(), max_size=5))
def test_runs_encode_as_their_entries_event_by_event(batch: list[Run]) -> None:
    plain = reference(batch)
    quick = QueuedRuns(batch)
    assert len(quick) == len(plain)
    want = ev.encode_many(plain)
    got = ev.encode_many(quick)
    assert list(got) == want
    assert [got[i] for i in range(len(want))] == want  # read out of order, one at a time
    assert got[-1:] == want[-1:] and got[::2] == want[::2]
    assert list(quick) == plain  # type, id, ts, every field
    assert [dict(e.fields) for e in quick] == [dict(e.fields) for e in plain]
    lines = frame_lines(got)
    assert lines == frame_lines(want)
    assert delta.record((1, 2), 40, lines, quick) == delta.record((1, 2), 40, lines, plain)
    assert QueuedRuns(batch).columns() == (
        [e.id for e in plain],
        *([e.fields[key] for e in plain] for key in ("batch", "device", "created", "not_before")),
    )


@settings(max_examples=60)
@given(runs(), st.sampled_from([float("nan"), float("inf")]), st.sampled_from(["m", "c", "ts"]))
def test_runs_refuse_what_the_event_encoder_refuses(
    run: Run, bad_time: float, reserved: str
) -> None:
    for like in (replace(run.like, created=bad_time), replace(run.like, extra={reserved: 1})):
        bad = Run(like, ("01A", *run.ids), ("tv-1", *run.devices))
        with pytest.raises(ValueError) as event_by_event:
            ev.encode_many(reference([bad]))
        with pytest.raises(ValueError) as quick:
            list(ev.encode_many(QueuedRuns([bad])))
        assert str(quick.value) == str(event_by_event.value)


def test_a_device_that_is_not_a_string_is_encoded_event_by_event() -> None:
    # A head made from the shared part would quote it as a string: the run falls back.
    like = Entry("01A", "B", "tv-1", Command("switch", "p", {"state": True}), Priority.NORMAL,
                 1.5, 1.5, None, True, True, 3, "w", "bulk", "s", "pb")  # fmt: skip
    odd: Any = 7
    run = Run(like, ("01B", "01C"), ("tv-2", odd))
    assert list(ev.encode_many(QueuedRuns([run]))) == ev.encode_many(reference([run]))
    assert '"device":7,' in ev.encode_many(QueuedRuns([run]))[1]


def test_runs_share_the_part_after_the_device() -> None:
    like = Entry("01A", "B", "tv-1", Command("number", "volume", {"value": 3.0}), Priority.HIGH,
                 1.5, 2.5, None, True, True, 3, "w", "bulk", "vol", "pb")  # fmt: skip
    run = Run(like, [f"01{i:024d}" for i in range(3)], ("tv-1", "tv-2", "tv-3"))
    lines = list(ev.encode_many(QueuedRuns([run, run])))
    assert len(lines) == 6 and len({line.split('"device":')[1][8:] for line in lines}) == 1
    assert lines[0] == (
        '{"t":"queued","id":"01000000000000000000000000","ts":1.5,"v":1,"batch":"B",'
        '"device":"tv-1","command":{"domain":"number","target":"volume","args":{"value":3.0}},'
        '"priority":"high","created":1.5,"not_before":2.5,"expires":null,"idempotent":true,'
        '"verify":true,"max_attempts":3,"who":"w","origin":"bulk","step":"vol","playbook":"pb"}'
    )


def test_a_run_needs_an_id_per_device() -> None:
    like = Entry("01A", "B", "tv-1", Command("switch", "p", {}), Priority.NORMAL,
                 1.5, 1.5, None, True, True, 3, "w", "bulk", "s", "pb")  # fmt: skip
    with pytest.raises(ValueError, match="2 ids on 1 devices"):
        Run(like, ("01A", "01B"), ("tv-1",))
