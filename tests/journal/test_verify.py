"""`Journal.verify` streams the journal and finds exactly what a read of everything finds.

The reference below is `verify` as it was before it streamed: the whole file scanned at once,
every line decoded into a ledger of events, then every entry folded. Each journal here, crafted
or drawn by hypothesis, must give the same report, whatever the block size the stream reads.
"""

from __future__ import annotations

import json
import os
import tempfile
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.journal import events as ev
from cmdctl.journal import verification
from cmdctl.journal.entry import entry_of
from cmdctl.journal.events import EventDecodeError
from cmdctl.journal.framing import frame, scan_bytes
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.store import Journal, VerifyReport

from .builders import entry, event, queued_batch

Found = tuple[int, int, list[tuple[int, str, bytes]], list[str], int, int]


def reference(data: bytes) -> Found:
    """What `verify` found before it streamed: (events, entries, damaged, problems, torn,
    uncommitted)."""
    scan = scan_bytes(data)
    ledger = Ledger()
    for event_ in scan.events():
        ledger.apply(event_)
    problems = [f"{p.type} {p.entry_id}: {p.reason}" for p in ledger.problems]
    for entry_id in ledger.ids():
        try:
            entry_of(ledger.records(entry_id))
        except (EventDecodeError, ValueError, KeyError) as err:
            problems.append(f"entry {entry_id}: {err}")
    damaged = [(d.line, d.reason, d.raw) for d in scan.damaged]
    return len(scan.lines), len(ledger), damaged, problems, scan.torn, scan.uncommitted


def found(report: VerifyReport) -> Found:
    damaged = [(d.line, d.reason, d.raw) for d in report.damaged]
    return (
        report.events,
        report.entries,
        damaged,
        list(report.problems),
        report.torn,
        report.uncommitted,
    )


def write(journal: Journal, data: bytes) -> None:
    journal.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    journal.path.write_bytes(data)
    journal.path.chmod(0o600)


def lines_of(*events: ev.Event) -> list[str]:
    return ev.encode_many(events)


def queued_line(entry_id: str, **changes: object) -> str:
    """A `queued` line of a fresh entry, its fields changed (None: the field removed)."""
    obj = json.loads(ev.encode(ev.queued(entry(entry_id))))
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj, separators=(",", ":"))


def every_check() -> bytes:
    """A journal with one of each thing `verify` reports, and lines that must pass."""
    a, b, c, d, f, g = (entry(device=f"tv-{i}") for i in range(6))
    good = frame(lines_of(*(ev.queued(e) for e in (a, b, c, d, f, g))))
    singles = b"".join(
        frame([line])
        for line in [
            ev.encode(ev.queued(a)),  # queued twice
            ev.encode(ev.done("NOSUCH", 2.0, outcome="confirmed", duration=0.1)),  # unknown id
            queued_line("NOBATCH", batch=None),  # queued without batch/device
            queued_line("BADDEV", device=7),  # queued without batch/device
            queued_line("NOCMD", command=None),  # its entry cannot be built
            queued_line("BADPRIO", priority="urgent"),  # its entry cannot be built
            '{"t":"started","id":"' + a.id + '","ts":3,"v":1,"attempt":1,"run":"r"}',
            '{"t":"rescheduled","id":"' + a.id + '","ts":4,"v":1,"not_before":"soon"}',
            '{"t":"reprioritised","id":"' + b.id + '","ts":4,"v":1,"priority":"now"}',
            '{"t":"reprioritised","id":"' + c.id + '","ts":4,"v":1}',  # KeyError
            '{"t":"started","id":"' + b.id + '","ts":5,"v":1}',  # after its fold failed
            '{"t":"cancelled","id":"' + d.id + '","ts":5,"v":1,"who":"bob"}',
            # Finished: a bad `rescheduled` is ignored by the fold, a bad `retried` is not.
            '{"t":"rescheduled","id":"' + d.id + '","ts":6,"v":1,"not_before":"x"}',
            '{"t":"done","id":"' + f.id + '","ts":6,"v":1,"outcome":"confirmed"}',
            '{"t":"retried","id":"' + f.id + '","ts":7,"v":1,"not_before":[1]}',
            '{"t":"from_the_future","id":"' + g.id + '","ts":7,"v":2,"x":{"y":1}}',
            '{"t":"queued","id":"Q2","ts":1,"v":1}',  # no batch: not an entry
            '{"id":"X","ts":1,"v":1}',  # missing type
            '{"t":"done","ts":1,"v":1}',  # missing id
            '{"t":"done","id":"X","v":1}',  # missing time
            '{"t":"done","id":"X","ts":1}',  # missing version
        ]
    )
    not_json = frame(['{"t":"done","id":"X","ts":1,"v":1,"bad":tru}'])
    three = frame(lines_of(*(ev.queued(entry(batch="H")) for _ in range(3)))).split(b"\n")
    hole = three[0] + b"\n" + b"garbage in the middle\n" + three[2] + b"\n"
    four = frame(lines_of(*(ev.queued(entry(batch="K")) for _ in range(4)))).split(b"\n")
    broken_off = four[0] + b"\n" + four[1] + b"\n"  # then a single line: broken off
    no_start = four[2] + b"\n" + four[3] + b"\n"  # lines of an append whose start is missing
    torn = frame(lines_of(*(ev.queued(entry(batch="T")) for _ in range(3)))).split(b"\n")
    tail = torn[0] + b"\n" + torn[1] + b"\n" + b'{"t":"que'
    return (
        good
        + singles
        + not_json
        + hole
        + broken_off
        + frame([ev.encode(ev.queued(entry()))])
        + no_start
        + b"\n"
        + tail
    )


@pytest.mark.parametrize("block", [1, 7, 64, 1000, verification.BLOCK])
def test_every_check_reports_what_a_whole_read_reports(
    journal: Journal, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(verification, "BLOCK", block)
    data = every_check()
    write(journal, data)
    report = journal.verify()
    assert found(report) == reference(data)
    assert not report.ok
    reasons = {reason.split(" (")[0].split(":")[0] for _, reason, _ in found(report)[2]}
    assert reasons == {
        "damaged line",
        "append broken off",
        "line of an append whose start is missing",
        "not JSON",
        "missing event type",
        "missing entry id",
        "missing event time",
        "missing record version",
    }
    problems = "\n".join(report.problems)
    for expected in (
        "queued twice",
        "event for an unknown id",
        "queued without batch/device",
        "is incomplete",
        "expected a number, got 'soon'",
        "'now' is not a valid Priority",
        ": 'priority'",
        "expected a number, got [1]",
    ):
        assert expected in problems, expected
    assert "expected a number, got 'x'" not in problems  # finished: the fold ignores it
    assert (report.torn, report.uncommitted) == (9, 2)


def test_a_healthy_journal_is_ok_and_counts_every_line(journal: Journal) -> None:
    first = queued_batch(5)
    journal.append(first)
    journal.append([event(kind, first[0].id, 2.0) for kind in (ev.STARTED, ev.DONE)])
    journal.append([event(ev.RETRIED, first[0].id, 3.0), event(ev.HELD, first[1].id, 3.0)])
    report = journal.verify()
    assert report.ok, report
    assert found(report) == reference(journal.path.read_bytes())
    assert (report.events, report.entries) == (9, 5)


_KINDS = [
    ev.STARTED,
    ev.ATTEMPT_FAILED,
    ev.RESCHEDULED,
    ev.DONE,
    ev.FAILED,
    ev.CANCELLED,
    ev.EXPIRED,
    ev.SUPERSEDED,
    ev.SKIPPED,
    ev.UNKNOWN,
    ev.HELD,
    ev.REPRIORITISED,
    ev.RETRIED,
    "from_the_future",
]
_BAD = [
    '{"t":"rescheduled","id":"%s","ts":1,"v":1,"not_before":"x"}',
    '{"t":"reprioritised","id":"%s","ts":1,"v":1,"priority":9}',
    '{"t":"retried","id":"%s","ts":1,"v":1,"not_before":null}',
    '{"t":"queued","id":"%s","ts":1,"v":1,"batch":"B","device":"d"}',
]


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_any_journal_any_damage_same_report_as_a_whole_read(data: st.DataObject) -> None:
    ids = [f"E{i}" for i in range(4)]
    appends: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 8))):
        lines = []
        for _ in range(data.draw(st.integers(1, 4))):
            ident = data.draw(st.sampled_from([*ids, "NOPE"]))
            choice = data.draw(st.integers(0, 9))
            if choice < 3:
                lines.append(ev.encode(ev.queued(entry(ident))))
            elif choice < 8:
                kind = data.draw(st.sampled_from(_KINDS))
                lines.append(ev.encode(event(kind, ident, float(choice))))
            else:
                lines.append(data.draw(st.sampled_from(_BAD)) % ident)
        appends.append(frame(lines))
    blob = bytearray(b"".join(appends))
    for _ in range(data.draw(st.integers(0, 3))):  # damage: flipped, cut or inserted bytes
        at = data.draw(st.integers(0, max(0, len(blob) - 1)))
        how = data.draw(st.sampled_from(["flip", "cut", "newline"]))
        if how == "flip" and blob:
            blob[at] ^= 0x20
        elif how == "cut":
            del blob[at : at + data.draw(st.integers(1, 40))]
        else:
            blob[at:at] = b"\n"
    block = data.draw(st.sampled_from([1, 5, 97, 4096]))
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j")
        write(journal, bytes(blob))
        old, verification.BLOCK = verification.BLOCK, block
        try:
            report = journal.verify()
        finally:
            verification.BLOCK = old
    assert found(report) == reference(bytes(blob))


def test_verify_holds_a_block_and_the_ids_not_the_events(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(4):
        journal.append(queued_batch(2_500, batch=f"B{n}"))
    size = journal.path.stat().st_size
    monkeypatch.setattr(verification, "BLOCK", 1 << 16)
    tracemalloc.start()
    try:
        report = journal.verify()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.entries == 10_000
    # Reading the whole journal costs at least twice its size (the bytes, then the lines);
    # a streamed check, the ids (about a hundred bytes each) and a few blocks.
    assert peak < size / 2, (peak, size)


def test_an_append_during_verify_is_not_half_seen(journal: Journal) -> None:
    journal.append(queued_batch(3))
    three = frame(ev.encode_many(queued_batch(3, batch="C"))).split(b"\n")
    unfinished = three[0] + b"\n" + three[1] + b"\n"  # a crashed writer's uncommitted lines
    with journal.path.open("ab") as f:
        f.write(unfinished)
    data = journal.path.read_bytes()
    source = verification.Source.open(journal.path)  # as verify does, under the lock
    try:
        journal.append(queued_batch(5, batch="B2"))  # moves them to quarantine, then appends
        checked = verification.check(source)
    finally:
        source.close()
    # What was there when verify looked, not the bytes written in their place since.
    assert (checked.events, checked.entries, checked.uncommitted, checked.torn) == (3, 3, 2, 0)
    assert reference(data)[:2] == (3, 3)
    assert reference(data)[4:] == (0, 2)


def _outcome(decode: object, line: bytes) -> object:
    assert callable(decode)
    try:
        return decode(line)
    except EventDecodeError as err:
        return f"EventDecodeError: {err}"


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
_HEADS = [b"", b" ", b"\xef\xbb\xbf", b"\x00", b"\xff\xfe", b"\n", b"\t"]
_TAILS = [b"", b" ", b"x", b"}", b"\x00", b"\xed\xa0\x80", b" \r\n"]


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.builds(
            lambda obj, head, tail: head + json.dumps(obj).encode() + tail,
            st.fixed_dictionaries(
                {"t": st.sampled_from(["done", "", 1]), "id": st.sampled_from(["A", "", None])},
                optional={"ts": _json, "v": _json, "m": _json, "x": _json},
            ),
            st.sampled_from(_HEADS),
            st.sampled_from(_TAILS),
        ),
        _json.map(lambda obj: json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")),
        st.binary(max_size=40),
        st.binary(max_size=6).map(lambda raw: b'{"t":"done","id":"A%s","ts":1,"v":1}' % raw),
    )
)
def test_the_fast_decode_is_events_decode(line: bytes) -> None:
    assert _outcome(verification._decode, line) == _outcome(ev.decode, line)


def test_lines_changed_in_place_between_the_passes_are_a_journal_error(journal: Journal) -> None:
    """Only another program can do this (cmdctl appends past the stable part); say so, no trace."""
    journal.append(queued_batch(2))
    path = journal.path

    class Rewritten(verification.Source):
        calls = 0

        def blocks(self) -> Iterator[bytes]:
            self.calls += 1
            if self.calls == 2:  # before the second pass reads it, a line is split in two
                data = bytearray(path.read_bytes())
                data[40] = ord("\n")
                path.write_bytes(bytes(data))
            return super().blocks()

    fd = os.open(path, os.O_RDONLY)
    with pytest.raises(OSError, match="changed while verify read them"):
        verification.check(Rewritten(fd, path.stat().st_size, b""))
    os.close(fd)


def _framed(line: bytes) -> bytes:
    """`frame` of one line given as bytes (which may be no UTF-8 at all), as the writer frames."""
    body = line[:-1] + b',"m":0'
    return b'%s,"c":"%08x"}\n' % (body, zlib.crc32(body))


_TAIL = ev.encode(ev.queued(entry("T0"))).encode().split(b',"device":"tv-1"', 1)[1]
#: Bytes a head's strings and numbers may hold: canonical and not, UTF-8 and not, escapes,
#: quotes, control characters, and a key the tail then repeats.
_PIECES = [b"E1", b"E2", b"tv-1", b"\xc3\xa9", b"\xff", b"\xed\xa0\x80", b'\\"', b"\\u0041",
           b"\t", b"", b" ", b"0", b"1.5", b"-0", b"01", b"1e3", b"NaN", b'","x":"']


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_lines_that_share_a_tail_get_the_report_of_a_whole_read(data: st.DataObject) -> None:
    # After the first `queued` line with a given tail checks out, verify reads later ones with
    # that tail only by their heads: whatever the heads hold, the report must not change.
    piece = st.sampled_from(_PIECES)
    tails = [_TAIL, _TAIL.replace(b'"who":"t@h"', b'"who":"t@h","id":"SAME"'),
             _TAIL.replace(b'"origin":"bulk"', b'"origin":"bulk","m":0')]
    blob = b""
    for _ in range(data.draw(st.integers(2, 12))):
        ident = data.draw(st.sampled_from([b"E1", b"E2", b"E3"]) | piece)
        ts = data.draw(st.sampled_from([b"0.0", b"7", b"1.5e3"]) | piece)
        batch, device = data.draw(piece), data.draw(piece)
        tail = data.draw(st.sampled_from(tails))
        line = (b'{"t":"queued","id":"%s","ts":%s,"v":1,"batch":"%s","device":"%s"%s'
                % (ident, ts, batch, device, tail))
        blob += _framed(line)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j")
        write(journal, blob)
        report = journal.verify()
    assert found(report) == reference(blob)


def test_a_repeated_tail_is_read_by_its_head_only(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reason the report above can hold: after the first line, no line is decoded.
    lines = [_framed(b'{"t":"queued","id":"E%d","ts":0.0,"v":1,"batch":"B","device":"d"%s'
                     % (n, _TAIL)) for n in range(50)]
    write(journal, b"".join([*lines, lines[7]]))
    decoded: list[bytes] = []
    real = verification._decode

    def counting(line: bytes) -> ev.Event:
        decoded.append(line)
        return real(line)

    monkeypatch.setattr(verification, "_decode", counting)
    report = journal.verify()
    assert decoded == [lines[0][:-1]]
    assert (report.events, report.entries) == (51, 50)
    assert list(report.problems) == ["queued E7: queued twice"]
