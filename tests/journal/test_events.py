"""Event records: event → line → event is the identity; ids sort and never repeat."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core import ids
from cmdctl.core.model import (
    NO_COORDINATION,
    Command,
    Condition,
    Coordination,
    Entry,
    Priority,
)
from cmdctl.journal import events as ev
from cmdctl.journal import fleetkeys, heads
from cmdctl.journal.entry import entry_of
from cmdctl.journal.events import Event, EventDecodeError

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.text(min_size=1, max_size=12).filter(lambda k: k not in ev.RESERVED)
finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=30)

events_any = st.builds(
    Event,
    type=st.sampled_from(sorted(ev.KNOWN_TYPES)) | st.text(min_size=1, max_size=15),
    id=st.text(min_size=1, max_size=30),
    ts=finite,
    fields=st.dictionaries(field_names, json_value, max_size=6),
    v=st.integers(min_value=1, max_value=3),
)

entries = st.builds(
    Entry,
    id=st.text(alphabet=ids.ALPHABET, min_size=26, max_size=26) | text.filter(bool),
    batch=text,
    device=text,
    command=st.builds(
        Command,
        domain=st.sampled_from(["switch", "light", "action"]),
        target=text,
        args=st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    ),
    priority=st.sampled_from(list(Priority)),
    created=finite,
    not_before=finite,
    expires=st.none() | finite,
    idempotent=st.booleans(),
    verify=st.booleans(),
    max_attempts=st.integers(min_value=0, max_value=100),
    who=text,
    origin=text,
    step=text,
    playbook=st.none() | text,
)


@settings(max_examples=150)
@given(events_any)
def test_any_event_round_trips(event: Event) -> None:
    line = ev.encode(event)
    assert "\n" not in line and not line.endswith("\n")
    assert ev.decode(line) == event
    assert ev.decode(line.encode()) == event


@settings(max_examples=150)
@given(entries)
def test_queued_round_trips_and_peeks(entry: Entry) -> None:
    event = ev.queued(entry)
    line = ev.encode(event)
    back = ev.decode(line)
    assert back == event
    assert list(back.fields) == list(ev.QUEUED_KEYS)
    head = heads.peek(line.encode())
    if head is not None:  # None only for ids/batches/devices that need JSON escapes
        assert head == (b"queued", entry.id, (entry.batch, entry.device))
    schedule = heads.peek_schedule(line.encode())
    if schedule is not None:
        assert schedule == (entry.created, entry.not_before, entry.expires)


@settings(max_examples=50)
@given(st.lists(entries, min_size=1, max_size=20))
def test_batch_encoding_matches_one_by_one(batch: list[Entry]) -> None:
    evs = [ev.queued(e) for e in batch]
    assert ev.encode_many(evs) == [ev.encode(e) for e in evs]


@settings(max_examples=100)
@given(
    st.lists(entries, min_size=1, max_size=20),
    st.sampled_from([NO_COORDINATION, Coordination(tags=("night",), after="power on")]),
    st.sampled_from([{}, {"future_key": 1}]),
    st.sampled_from([None, 0, 1, 2.5]),  # an int created/ts takes the generic path
)
def test_a_queued_event_read_from_its_entry_encodes_as_its_dict(
    batch: list[Entry], coordination: Coordination, extra: dict[str, int], created: float | None
) -> None:
    # `queued()` reads fields from the entry (no dict per event in a bulk); the bytes must be
    # those of the event built from the plain dict, entry by entry and as one batch.
    batch = [
        replace(e, coordination=coordination, extra=extra,
                created=e.created if created is None else created)
        for e in batch
    ]  # fmt: skip
    lazy = [ev.queued(e) for e in batch]
    plain = [Event(ev.QUEUED, e.id, e.created, ev.queued_fields(e)) for e in batch]
    assert ev.encode_many(lazy) == ev.encode_many(plain)
    assert [ev.encode(e) for e in lazy] == [ev.encode(e) for e in plain]
    assert all(a == b for a, b in zip(lazy, plain, strict=True))


def test_entries_sharing_a_command_differ_in_every_other_field() -> None:
    # A bulk's entries share one command (one args dict); the encoder caches what follows the
    # device by the rest of the fields, so each field must be part of that key.
    base = Entry(
        id="A" * 26, batch="B", device="tv-1", command=Command("number", "volume", {"value": 3}),
        priority=Priority.NORMAL, created=1.5, not_before=2.5, expires=None, idempotent=True,
        verify=True, max_attempts=3, who="al@h", origin="bulk", step="s", playbook="p",
    )  # fmt: skip
    changes = [
        {"priority": Priority.HIGH}, {"created": 9.5}, {"not_before": 9.5}, {"expires": 9.5},
        {"idempotent": False}, {"verify": False}, {"max_attempts": 4}, {"who": "bo@h"},
        {"origin": "send"}, {"step": "t"}, {"playbook": None},
        {"command": Command("number", "level", base.command.args)},
        {"command": Command("switch", "volume", base.command.args)},
    ]  # fmt: skip
    batch = [base] + [replace(base, id=f"{i:026d}", **change) for i, change in enumerate(changes)]
    lazy = ev.encode_many([ev.queued(e) for e in batch])
    plain = [ev.encode(Event(ev.QUEUED, e.id, e.created, ev.queued_fields(e))) for e in batch]
    assert lazy == plain
    assert len({line.split('"device"')[1] for line in lazy}) == len(batch)


def test_fast_path_is_plain_json_with_fixed_head() -> None:
    entry = Entry(
        id=ids.new_id(),
        batch="B1",
        device="bar-tv-1",
        command=Command("switch", "tv_power", {"state": True}),
        priority=Priority.HIGH,
        created=1.5,
        not_before=2.25,
        expires=None,
        idempotent=False,
        verify=True,
        max_attempts=3,
        who='al"ice@host',
        origin="bulk",
        step="power on",
        playbook=None,
    )
    line = ev.encode(ev.queued(entry))
    obj = json.loads(line)
    assert list(obj)[:5] == ["t", "id", "ts", "v", "batch"]
    assert obj["who"] == 'al"ice@host'
    assert obj["idempotent"] is False and obj["expires"] is None


def test_non_finite_times_are_refused() -> None:
    with pytest.raises(ValueError):
        ev.encode(Event("done", "X", float("nan")))
    with pytest.raises(ValueError):
        ev.encode(Event("done", "X", 1.0, {"duration": float("inf")}))


def test_reserved_field_names_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        ev.encode(Event("done", "X", 1.0, {"m": 1}))


@pytest.mark.parametrize(
    "line",
    [
        "",
        "garbage",
        "[1, 2]",
        '{"id": "X", "ts": 1, "v": 1}',
        '{"t": "done", "ts": 1, "v": 1}',
        '{"t": "done", "id": "X", "v": 1}',
        '{"t": "done", "id": "X", "ts": true, "v": 1}',
        '{"t": "done", "id": "X", "ts": 1}',
        '{"t": "done", "id": "X", "ts": 1, "v": 1',
        b"\xff\xfe",
    ],
)
def test_damaged_lines_raise_decode_error(line: str | bytes) -> None:
    with pytest.raises(EventDecodeError):
        ev.decode(line)


def test_unknown_future_types_decode() -> None:
    event = ev.decode('{"t":"teleported","id":"X","ts":3.0,"v":2,"where":"mars"}')
    assert event == Event("teleported", "X", 3.0, {"where": "mars"}, 2)


def test_constructors_build_the_documented_fields() -> None:
    assert ev.started("X", 1.0, attempt=2, run="r").fields == {"attempt": 2, "run": "r"}
    assert ev.done("X", 1.0, outcome="confirmed", duration=0.5).fields == {
        "outcome": "confirmed",
        "duration": 0.5,
    }
    assert ev.reprioritised("X", 1.0, priority=Priority.LOW).get("priority") == "low"


# -- ids ---------------------------------------------------------------------------------------


def test_ids_are_sortable_unique_and_monotonic() -> None:
    made = [ids.new_id() for _ in range(20_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(len(i) == 26 and set(i) <= set(ids.ALPHABET) for i in made[:100])
    assert all(ids.is_valid(i) for i in made[:100])


def test_id_factory_is_deterministic_and_increments_within_a_millisecond() -> None:
    def make() -> list[str]:
        clock = iter([1000, 1000, 1000, 999, 1001])
        factory = ids.IdFactory(clock=lambda: next(clock), randbits=lambda bits: 5)
        return [factory.new() for _ in range(5)]

    first = make()
    assert first == make()
    assert first == sorted(first) and len(set(first)) == 5
    assert [ids.timestamp_ms(i) for i in first] == [1000, 1000, 1000, 1000, 1001]
    assert ids.encode((1000 << 80) | 7) == first[2]  # 5, 6, 7 within the same ms


def test_id_factory_survives_random_part_overflow() -> None:
    factory = ids.IdFactory(clock=lambda: 42, randbits=lambda bits: (1 << bits) - 1)
    a, b = factory.new(), factory.new()
    assert a < b and ids.timestamp_ms(b) == 43


def test_id_timestamp_uses_the_wall_clock() -> None:
    import time

    now_ms = time.time_ns() // 1_000_000
    assert abs(ids.timestamp_ms(ids.new_id()) - now_ms) < 5_000


def test_batch_encoding_keeps_values_that_compare_equal_apart() -> None:
    # Found by hypothesis in CI: the batch cache compared 0.0 == -0.0 and reused the wrong text.
    from dataclasses import replace

    from cmdctl.core.model import Command, Entry, Priority

    base = Entry(
        id="01" + "0" * 24,
        batch="b",
        device="d",
        command=Command("switch", "x", {}),
        priority=Priority.HIGH,
        created=0.0,
        not_before=0.0,
        expires=None,
        idempotent=False,
        verify=False,
        max_attempts=1,
        who="w",
        origin="bulk",
        step="s",
    )
    batch = [base, replace(base, created=-0.0), replace(base, not_before=-0.0, expires=0.0)]
    evs = [ev.queued(e) for e in batch] + [ev.queued(base, ts=-0.0)]
    assert ev.encode_many(evs) == [ev.encode(e) for e in evs]
    assert [ev.decode(line) for line in ev.encode_many(evs)] == evs


# -- the fleet keys at the journal edge ----------------------------------------------------------


def test_fleet_keys_round_trip_through_a_queued_line() -> None:
    keys = Coordination(tags=("tv", "night"), after="power", on_failure="continue",
                        pick="failover", candidates=("a", "b"), serial="25%")
    entry = Entry("01A", "B", "a", Command("switch", "p", {"state": True}), Priority.NORMAL,
                  1.0, 1.0, None, True, True, 3, "w", "bulk", "s", "pb", updated=1.0)
    entry = replace(entry, coordination=keys)
    line = ev.encode(ev.queued(entry))
    assert '"tags":["tv","night"],"after":"power","on_failure":"continue"' in line
    back = entry_of([line.encode()])
    assert back.coordination == keys and back.extra == {}
    assert back == entry


def test_fleet_keys_of_the_wrong_type_are_ignored_not_fatal() -> None:
    fields = {"tags": 5, "after": ["x"], "on_failure": "explode", "pick": None,
              "candidates": ["a", 3, "b"], "serial": True, "future": 1}
    keys = fleetkeys.pop_coordination(fields)
    assert keys.tags == () and keys.after is None and keys.on_failure == "skip"
    assert keys.candidates == ("a", "b") and keys.serial is None
    assert fields == {"future": 1}  # what is not a fleet key stays for `Entry.extra`


def test_equal_fleet_keys_share_one_instance() -> None:
    one = fleetkeys.pop_coordination({"tags": ["tv"], "serial": 2})
    two = fleetkeys.pop_coordination({"tags": ["tv"], "serial": 2})
    assert one is two and one.tags == ("tv",)
    assert fleetkeys.pop_coordination({"nothing": 1}) is NO_COORDINATION


# -- the device flow keys (issue 15: delay, wait_until, when, after scope) ----------------------

#: A `queued` line as this version writes one with every flow key: the journal format.
FLOW_LINE = (
    '{"t":"queued","id":"01A","ts":1.0,"v":1,"batch":"B","device":"a",'
    '"command":{"domain":"select","target":"input","args":{"option":"HDMI 1"}},'
    '"priority":"normal","created":1.0,"not_before":1.0,"expires":null,"idempotent":true,'
    '"verify":true,"max_attempts":3,"who":"w","origin":"bulk","step":"s","playbook":"pb",'
    '"after":"power on","on_failure":"skip","scope":"device","gap":5.0,'
    '"when":{"entity":"switch.tv_power","value":true},'
    '"wait_until":{"entity":"binary_sensor.tv_on","value":true,"timeout":20.0}}'
)


def _flow_entry() -> Entry:
    return Entry("01A", "B", "a", Command("select", "input", {"option": "HDMI 1"}),
                 Priority.NORMAL, 1.0, 1.0, None, True, True, 3, "w", "bulk", "s", "pb",
                 updated=1.0)


def test_flow_keys_are_written_as_the_golden_line_and_read_back() -> None:
    keys = Coordination(
        after="power on", scope="device", gap=5.0,
        when=Condition("switch", "tv_power", True),
        wait_until=Condition("binary_sensor", "tv_on", True, 20.0),
    )
    entry = replace(_flow_entry(), coordination=keys)
    assert ev.encode(ev.queued(entry)) == FLOW_LINE
    back = entry_of([FLOW_LINE.encode()])
    assert back == entry and back.extra == {}


def test_a_line_without_flow_keys_reads_as_before() -> None:
    # What every older cmdctl wrote: a batch barrier, no scope, gap or conditions.
    old = FLOW_LINE.split(',"scope"')[0] + "}"
    back = entry_of([old.encode()])
    assert back.coordination == Coordination(after="power on")
    assert back.coordination.scope == "batch" and back.coordination.gap == 0.0
    assert back.coordination.when is None and back.coordination.wait_until is None
    assert not back.coordination.per_device


def test_flow_keys_of_the_wrong_shape_are_ignored_not_fatal() -> None:
    fields = {"after": "x", "scope": "planet", "gap": "5s", "when": {"entity": "toaster.t",
              "value": True}, "wait_until": {"entity": "binary_sensor.x", "value": [1]}}
    keys = fleetkeys.pop_coordination(fields)
    assert keys == Coordination(after="x")
    numbers = fleetkeys.pop_coordination({"when": {"entity": "sensor.temp", "value": 21}})
    assert numbers.when == Condition("sensor", "temp", 21.0)


flat_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and the infinities too: refused as before
    | st.text(max_size=20)
)


def _reference(event: Event) -> str:
    """The line as `json.dumps` writes the fields after the fixed head."""
    head = (f'{{"t":{json.dumps(event.type, ensure_ascii=False)},'
            f'"id":{json.dumps(event.id, ensure_ascii=False)},"ts":{event.ts!r},"v":{event.v}')
    if not event.fields:
        return head + "}"
    body = json.dumps(dict(event.fields), separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return f"{head},{body[1:]}"


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.text(alphabet=ids.ALPHABET + '"\\é\n', min_size=1, max_size=26), finite,
                  st.dictionaries(field_names, flat_leaf, max_size=6), st.booleans(),
                  st.booleans(), st.sampled_from(["done", "started"])),
        min_size=1, max_size=6,
    )
)
def test_scalar_fields_encode_byte_for_byte_as_json_dumps(
    made: list[tuple[str, float, dict[str, object], bool, bool, str]],
) -> None:
    """The drain's `started`/`done` events skip json.dumps; the line must not change, also
    when several events share one fields object and one time object (a chunk's `started`
    events: each after the first is its id spliced into the first one's line)."""
    events: list[Event] = []
    for ident, ts, fields, share, same_time, kind in made:
        shared = events[-1].fields if share and events else fields
        when = events[-1].ts if same_time and events else ts
        events.append(Event(kind, ident, when, shared))  # type: ignore[arg-type]
    try:
        expected = [_reference(e) for e in events]
    except ValueError:
        with pytest.raises(ValueError):
            ev.encode_many(events)
        return
    assert list(ev.encode_many(events)) == expected
    assert [ev.encode(e) for e in events] == expected
