"""`cmdctl queue cancel` while a drain is working through the same entries.

The drain read the journal before the cancel, so its plan still holds the entries. What a person
is told must be what happens: an entry `queue cancel` reports cancelled is never sent, and an
entry the drain already started is refused by the cancel ("running now"), never both.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from cmdctl.drain import engine as eng
from cmdctl.drain import loops
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.retry import RetryPolicy
from cmdctl.drain.totals import Totals
from cmdctl.journal import archive
from cmdctl.journal import events as ev
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet

from .conftest import Address, acmdctl, address, cli_env, make_entry, queue, received, tvs


def _all_events(journal: Journal) -> list[ev.Event]:
    """Every event: the archive's (older), then the journal's."""
    archived, current = archive.read_all(journal.directory)
    return [ev.decode(line) for line in [*archived, *current]]


ONE_TRY = RetryPolicy(tries=1, ambiguous_tries=1, initial=0.01, maximum=0.01, jitter=0.0)




@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "press"])
async def test_cancel_during_a_drain_is_either_refused_or_never_sent(
    tmp_path: Path, idempotent: bool
) -> None:
    journal = Journal(tmp_path / "home")
    async with Fleet(tvs(1)) as fleet:
        dev = fleet.devices[0]
        base = address(dev)
        paced = replace(base, pace=0.25)
        made = queue(journal, [
            make_entry(dev.name, "number", "volume", {"value": float(n)}, idempotent=idempotent)
            for n in range(16)
        ])
        options = DrainOptions(policy=ONE_TRY, coalesce=False, connect_timeout=2.0)
        lookup = loops.lookup({dev.name: paced})
        drain = asyncio.ensure_future(loops.drain(journal, lookup, options))
        for _ in range(200):  # until the drain is under way (its plan holds all sixteen)
            if received(dev):
                break
            await asyncio.sleep(0.02)
        assert received(dev), "the drain never started"
        code, out, err = await acmdctl("queue", "cancel", "--batch", "B", "--json",
                                       env=cli_env(journal.directory))
        totals = await drain
    assert code == 0, err
    said = json.loads(out)
    cancelled = set(said["cancelled"])
    refused = {r["id"]: r["reason"] for r in said["refused"]}
    assert cancelled, "the cancel came too late to test anything: slow the device down"
    # Entries already done are not asked about; one being sent at that instant is refused.
    assert all("running now" in why for why in refused.values()), refused

    by_value = {e.command.args["value"]: e.id for e in made}
    sent = {by_value[args["value"]] for _, args in received(dev)}
    history = _all_events(journal)  # the archive first: compaction moves finished entries there
    ledger = Ledger.from_events(history)
    done = {e.id for e in made if ledger.state(e.id).value == "done"}
    assert sent == done  # everything sent is done; nothing cancelled was sent
    assert not sent & cancelled
    assert {ledger.state(i).value for i in cancelled} == {"cancelled"}
    assert done | cancelled == {e.id for e in made}
    assert totals.count("skipped") == len(cancelled)
    # Nothing was appended for an entry after its `cancelled` event.
    ended: set[str] = set()
    for event in history:
        assert event.id not in ended, f"{event.type} for {event.id} after it was cancelled"
        if event.type == ev.CANCELLED:
            ended.add(event.id)


async def test_a_cancel_archived_by_compaction_while_a_drain_connects_still_wins(
    tmp_path: Path,
) -> None:
    """`queue cancel`, then `journal compact --keep 0s`, both while the drain is still in its
    handshake: the compaction moves the cancelled entries, cancel and all, to the archive before
    the drain appends anything, so the drain never reads those `cancelled` lines (seen in the
    chaos soak: cancelled entries sent anyway). None may be sent."""
    journal = Journal(tmp_path / "home")
    async with Fleet(tvs(1, slow_handshake=4.0)) as fleet:
        dev = fleet.devices[0]
        made = queue(journal, [
            make_entry(dev.name, "number", "volume", {"value": float(n)}) for n in range(4)
        ])
        options = DrainOptions(policy=ONE_TRY, coalesce=False, connect_timeout=10.0)
        devices = loops.lookup({dev.name: address(dev)})
        drain = asyncio.ensure_future(loops.drain(journal, devices, options))
        for _ in range(200):  # until the drain has read the journal and is connecting
            if dev.connections_made:
                break
            await asyncio.sleep(0.02)
        assert dev.connections_made, "the drain never connected"
        env = cli_env(journal.directory)
        cancel = await acmdctl("queue", "cancel", "--batch", "B", "--json", env=env)
        compact = await acmdctl("journal", "compact", "--keep", "0s", "--json", env=env)
        assert not drain.done(), "the handshake ended too soon to test anything"
        totals = await drain
    assert cancel[0] == 0 and compact[0] == 0, (cancel, compact)
    assert sorted(json.loads(cancel[1])["cancelled"]) == sorted(e.id for e in made)
    assert json.loads(compact[1])["archived_entries"] == len(made)
    assert received(dev) == []
    assert totals.count("skipped") == len(made)
    assert not list(journal.events()), "nothing written for entries archived as cancelled"
    history = _all_events(journal)
    assert {Ledger.from_events(history).state(e.id).value for e in made} == {"cancelled"}


async def test_entries_cancelled_after_the_read_are_no_outcome_of_the_pass(tmp_path: Path) -> None:
    """Cancels landing between a pass's read and its first append: not counted, not dialled.

    The pass's own bookkeeping (an expiry, a coalesced pair) is dropped by the claims for the
    cancelled entries, so the recap must not report them either; and a device whose every
    entry was cancelled meanwhile is not connected to (here it could not be: its port is closed,
    so a connection attempt would show as `unreachable`).
    """
    import socket
    import time

    from cmdctl.drain import totals as tot
    from cmdctl.journal.claims import Claims
    from cmdctl.journal.recorder import Recorder

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    devices = {n: Address(n, "127.0.0.1", port) for n in ("tv-a", "tv-b")}
    journal = Journal(tmp_path / "home")
    now = time.time()
    expired, older = queue(journal, [
        make_entry("tv-a", "switch", "tv_power", {"state": True}, expires=now - 60),
        make_entry("tv-b", "number", "volume", {"value": 10.0}),
    ])
    # another batch: a newer volume for the same entity supersedes the older one (coalescing)
    [newer] = queue(journal, [make_entry("tv-b", "number", "volume", {"value": 20.0}, batch="C")])
    claims = Claims(journal)
    scan, ledger = journal.load()  # the pass's picture: all three are still its to handle
    claims.seen(scan)
    person = Journal(tmp_path / "home")  # `queue cancel` in another process, meanwhile
    person.append([ev.cancelled(e.id, now, who="ops@desk") for e in (expired, older, newer)])

    options = DrainOptions(policy=ONE_TRY, coalesce=True, connect_timeout=2.0)
    engine = eng.Engine(journal, loops.lookup(devices), options)
    totals = Totals()
    async with Recorder(claims.append) as rec:
        await engine.drain_pass(rec, totals, ledger, claims.withdrawn)

    assert totals.count(tot.EXPIRED) == 0 and totals.superseded == 0
    assert totals.count(tot.UNREACHABLE) == 0, "dialled a device whose entries were all cancelled"
    assert totals.count(tot.SKIPPED) == 1  # the one the pass had planned to send
    assert {journal.ledger().state(e.id).value for e in (expired, older, newer)} == {"cancelled"}
    assert [e.type for e in journal.events()] == [ev.QUEUED] * 3 + [ev.CANCELLED] * 3
