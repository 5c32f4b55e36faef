"""The drain's quick decode of a plain `queued` line (`entry._quick`) and the state-only fold
(`entry.state_after`) give exactly what the general path gives, for any line or events."""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from typing import Any

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
