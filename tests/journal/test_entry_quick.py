"""The drain's quick decode of a plain `queued` line (`entry._quick`) and the state-only fold
(`entry.state_after`) give exactly what the general path gives, for any line or events."""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.model import Command, Coordination, Entry, Priority, State
from cmdctl.journal import entry as journal_entry
from cmdctl.journal import events as ev
from cmdctl.journal.entry import entry_of, fold, state_after
from cmdctl.journal.events import Event

from .test_events import entries, json_value


def general(records: list[Any], *, intern: bool = False) -> Entry:
    """`entry_of` through the general path (a decode that is not `ev.decode` skips the quick)."""
    return entry_of(records, decode=lambda raw: ev.decode(raw), intern=intern)


def typed(entry: Entry) -> list[tuple[str, type, Any]]:
    """Every field with its type: `1 == 1.0`, but an int `created` is not what the fold gives."""
    out = []
    for f in dataclasses.fields(entry):
        value = getattr(entry, f.name)
        out.append((f.name, type(value), value))
    args = entry.command.args
    out.append(("args", type(args), [(k, type(v), repr(v)) for k, v in args.items()]))
    return out


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", typed(fn())
    except Exception as err:  # the same error, of the same type, from both paths
        return type(err).__name__, str(err)


def framed(line: str) -> bytes:
    """`line` as the journal stores it: the framing's `m` and `c` at the end."""
    return (line[:-1] + ',"m":"1/1","c":"0123abcd"}').encode()


coordinations = st.just(Coordination()) | st.builds(
    Coordination, tags=st.tuples(st.text(min_size=1, max_size=5)), after=st.none() | st.text()
)


@settings(max_examples=300)
@given(entries, coordinations, st.booleans(), st.booleans())
def test_quick_decode_equals_the_general_one(
    entry: Entry, coordination: Coordination, with_framing: bool, intern: bool
) -> None:
    entry = dataclasses.replace(entry, coordination=coordination)
    line = ev.encode(ev.queued(entry))
    raw = framed(line) if with_framing else line.encode()
    assert typed(entry_of([raw], intern=intern)) == typed(general([raw], intern=intern))


@settings(max_examples=300)
@given(entries, st.sampled_from([*ev.QUEUED_KEYS, "t", "id", "ts", "v", "extra"]), json_value)
def test_quick_decode_of_an_odd_field_is_the_general_decode(
    entry: Entry, key: str, value: Any
) -> None:
    obj = json.loads(ev.encode(ev.queued(entry)))
    obj[key] = value
    raw = json.dumps(obj).encode()
    assert outcome(lambda: entry_of([raw])) == outcome(lambda: general([raw]))


@settings(max_examples=200)
@given(entries, st.sampled_from(["domain", "target", "args", "more"]), json_value)
def test_quick_decode_of_an_odd_command_is_the_general_decode(
    entry: Entry, key: str, value: Any
) -> None:
    obj = json.loads(ev.encode(ev.queued(entry)))
    obj["command"][key] = value
    raw = json.dumps(obj).encode()
    assert outcome(lambda: entry_of([raw])) == outcome(lambda: general([raw]))


def test_plain_and_fleet_keyed_queued_lines_take_the_quick_path_and_newer_fields_do_not() -> None:
    line = (
        '{"t":"queued","id":"01J0000000000000000000000A","ts":1.5,"v":1,"batch":"B","device":"tv",'
        '"command":{"domain":"number","target":"volume","args":{"value":3.0}},'
        '"priority":"normal","created":1,"not_before":1.5,"expires":null,"idempotent":true,'
        '"verify":true,"max_attempts":3,"who":"me@h","origin":"bulk","step":"s",'
        '"playbook":null,"m":"1/1","c":"0123abcd"}'
    )
    quick = journal_entry._quick(line.encode(), True)
    assert quick is not None and quick == general([line.encode()])
    assert type(quick.created) is float
    tagged = line.replace('"playbook":null', '"playbook":null,"tags":["x"],"after":"setup"')
    quick = journal_entry._quick(tagged.encode(), True)
    assert quick is not None and quick == general([tagged.encode()])
    assert (quick.coordination.tags, quick.coordination.after) == (("x",), "setup")
    newer = line.replace('"playbook":null', '"playbook":null,"colour":"red"')
    assert journal_entry._quick(newer.encode(), True) is None  # kept in `extra` by the general
    assert dict(entry_of([newer.encode()]).extra) == {"colour": "red"}


@settings(max_examples=200)
@given(entries, st.lists(st.sampled_from([True, False, 1, 0, 1.0, 0.0, -0.0, "1", None]),
                         min_size=2, max_size=6))
def test_shared_commands_keep_each_value_and_its_type(entry: Entry, values: list[Any]) -> None:
    """A drain shares one `Command` per distinct command: `True`, `1` and `1.0` are not one."""
    obj = json.loads(ev.encode(ev.queued(entry)))
    for value in values:
        obj["command"]["args"] = {"value": value}
        raw = json.dumps(obj).encode()
        assert typed(entry_of([raw], intern=True)) == typed(general([raw], intern=True))


def test_equal_commands_are_one_object_in_a_drain() -> None:
    obj = json.loads(ev.encode(ev.queued(_entry())))
    obj["command"]["args"] = {"state": True}
    one = entry_of([json.dumps(obj).encode()], intern=True)
    obj["id"] = "01J0000000000000000000000B"
    two = entry_of([json.dumps(obj).encode()], intern=True)
    assert one.command is two.command and one.id != two.id
    assert one.not_before is one.created and one.updated is one.created


def test_later_records_are_folded_after_the_quick_decode() -> None:
    entry = _entry()
    head = ev.encode(ev.queued(entry)).encode()
    later = [ev.encode(ev.started(entry.id, 2.0, attempt=1, run="r")).encode(),
             ev.done(entry.id, 3.0, outcome="confirmed", duration=0.1)]
    got = entry_of([head, *later])
    assert got == general([head, *later])
    assert got.state is State.DONE and got.attempts == 1 and got.updated == 3.0


event_types = st.sampled_from(sorted(ev.KNOWN_TYPES))


@settings(max_examples=300)
@given(st.sampled_from(list(State)), st.lists(event_types, max_size=6))
def test_state_after_is_the_state_the_fold_leaves(state: State, types: list[str]) -> None:
    fields = {
        ev.REPRIORITISED: {"priority": "high"},
        ev.RESCHEDULED: {"not_before": 5.0, "attempts": 1},
        ev.RETRIED: {"not_before": 6.0},
    }
    events = [Event(t, "01J0000000000000000000000A", float(n), fields.get(t, {}))
              for n, t in enumerate(types)]
    start = dataclasses.replace(entry_of([framed(ev.encode(ev.queued(_entry())))]), state=state)
    folded = start
    for event in events:
        folded = fold(folded, event)
    assert state_after(state, events) is folded.state


def _entry() -> Entry:
    return Entry("01J0000000000000000000000A", "B", "tv", Command("switch", "power", {}),
                 Priority.NORMAL, 1.0, 1.0, None, True, True, 3, "me@h", "bulk", "s")


@settings(max_examples=100)
@given(entries, st.sampled_from(["", " ", "\n", " \t", "x", "{}", "\ufeff"]),
       st.sampled_from(["", " ", "\n", "\ufeff"]))
def test_quick_decode_of_a_padded_line_is_the_general_decode(
    entry: Entry, tail: str, head: str
) -> None:
    raw = (head + ev.encode(ev.queued(entry)) + tail).encode()
    assert outcome(lambda: entry_of([raw])) == outcome(lambda: general([raw]))


def test_a_bad_later_record_fails_the_quick_decode_as_it_fails_the_general_one() -> None:
    head = ev.encode(ev.queued(_entry())).encode()
    bad_fold = ev.encode(Event(ev.RESCHEDULED, _entry().id, 2.0, {"not_before": "soon"})).encode()
    for later in ([bad_fold, b"{not json"], [b'{"t":"done"}'], [bad_fold]):
        records = [head, *later]
        assert outcome(partial(entry_of, records)) == outcome(partial(general, records))


def test_a_known_id_is_kept_when_it_matches_and_ignored_when_it_does_not() -> None:
    head = ev.encode(ev.queued(_entry())).encode()
    held = "".join(["01J0000000000000000000000", "A"])  # equal, not the same object
    got = entry_of([head], intern=True, ident=held)
    assert got.id is held and got == general([head], intern=True)
    other = entry_of([head], intern=True, ident="01J0000000000000000000000B")
    assert other.id == "01J0000000000000000000000A"


def test_entries_queued_at_one_moment_share_that_time_in_a_drain() -> None:
    obj = json.loads(ev.encode(ev.queued(_entry())))
    obj["created"] = obj["not_before"] = 1796531860.4867792
    one = entry_of([json.dumps(obj).encode()], intern=True)
    obj["id"] = "01J0000000000000000000000B"
    two = entry_of([json.dumps(obj).encode()], intern=True)
    assert one.created is two.created and one.not_before is two.created
    obj["created"] = obj["not_before"] = 1796531861.0
    three = entry_of([json.dumps(obj).encode()], intern=True)
    assert three.created == 1796531861.0 and one.created == 1796531860.4867792


# -- a bulk's lines: the tail after the device, decoded once per distinct tail --------------------


def typed_exactly(entry: Entry) -> list[tuple[str, type, str]]:
    """`typed`, with floats by repr: -0.0 is not 0.0 here."""
    return [(name, kind, repr(value)) for name, kind, value in typed(entry)]


def exactly(fn: Any) -> tuple[str, Any]:
    """`outcome`, with `typed_exactly`."""
    try:
        return "ok", typed_exactly(fn())
    except Exception as err:
        return type(err).__name__, str(err)


def both_ways(raw: bytes) -> tuple[Any, Any, Any]:
    """(a first decode, a second one: its tail known by then, the general decode)."""
    drained = partial(entry_of, [raw], intern=True)
    result = exactly(drained), exactly(drained), exactly(partial(general, [raw], intern=True))
    assert result[2][0] != "TypeError", result[2]  # the harness itself must work
    return result


def compact(obj: dict[str, Any], framing: bool) -> bytes:
    """`obj` as the encoder lays a line out (no spaces, key order kept), framed or not."""
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return framed(line) if framing else line.encode()


@settings(max_examples=300)
@given(entries, coordinations,
       st.sampled_from([*ev.QUEUED_KEYS, "t", "id", "ts", "v", "m", "c", "extra", None]),
       json_value, st.booleans())
def test_a_line_decoded_by_its_known_tail_is_the_general_decode(
    entry: Entry, coordination: Coordination, key: str | None, value: Any, framing: bool
) -> None:
    """Any field changed to any value, the line still laid out as the encoder does: decoded
    twice (the second time its tail is known) it is what the general path makes of it."""
    obj = json.loads(ev.encode(ev.queued(dataclasses.replace(entry, coordination=coordination))))
    if key is not None:
        obj[key] = value
    first, second, expected = both_ways(compact(obj, framing))
    assert first == second == expected


@settings(max_examples=200)
@given(entries, st.sampled_from(["0", "-0", "-0.0", "1e400", "-1E-400", "1.5E+3", "12" * 10,
                                 "1" * 19, "1" * 5000, "0.1", "00", "1.", "+1", "1e", "-"]),
       st.sampled_from(["1", "0", "01", "1234567890", "-1", "1.0"]))
def test_a_head_with_any_number_for_its_time_or_version_is_the_general_decode(
    entry: Entry, ts: str, version: str
) -> None:
    line = ev.encode(ev.queued(entry)).replace(f'"ts":{entry.created!r},', f'"ts":{ts},', 1)
    line = line.replace('"v":1,', f'"v":{version},', 1)
    first, second, expected = both_ways(framed(line))
    assert first == second == expected


@pytest.mark.parametrize(
    "change",
    [
        # a head key again in the tail: JSON's last one wins, as in the general decode
        ('"playbook":null', '"playbook":null,"device":"other"'),
        ('"playbook":null', '"playbook":null,"id":"01J0000000000000000000000Z"'),
        ('"playbook":null', '"playbook":null,"t":"done"'),
        # the framing's keys inside the arguments, at the very end of the tail
        ('"args":{}', '"args":{"m":"1/1","c":"0123abcd"}'),
        # not JSON: a control character, a bad byte, an unfinished tail
        ('"device":"tv"', '"device":"t\x01v"'),
        ('"id":"01J0000000000000000000000A"', '"id":"01J000000000000000000000\x1fA"'),
        ('"batch":"B"', '"batch":"\x7fB"'),  # DEL is no control character to JSON
        ('"device":"tv"', '"device":"t\udcffv"'),
        ('"playbook":null', '"playbook":nul'),
        ('"device":"tv"', '"device":"tv\\u0041"'),
    ],
)
def test_odd_lines_are_decoded_as_the_general_path_decodes_them(change: tuple[str, str]) -> None:
    line = ev.encode(ev.queued(_entry()))
    assert change[0] in line
    raw = framed(line.replace(*change)) if "\udcff" not in change[1] else framed(
        line.replace(change[0], '"device":"tXv"')).replace(b"tXv", b"t\xffv")
    first, second, expected = both_ways(raw)
    assert first == second == expected


def test_entries_of_one_step_share_the_decoded_tail() -> None:
    journal_entry._TAILS.clear()
    base = _entry()
    lines = [framed(ev.encode(ev.queued(dataclasses.replace(base, id=f"01J{n:023d}",
                                                            device=f"tv-{n}"))))
             for n in range(5)]
    got = [entry_of([raw], intern=True) for raw in lines]
    assert len(journal_entry._TAILS) == 1
    assert [typed_exactly(e) for e in got] == [typed_exactly(general([raw])) for raw in lines]
    assert len({id(e.command) for e in got}) == 1 and got[0].created is got[4].created
