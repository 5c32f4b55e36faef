"""Coalescing, rolling windows, failure thresholds and tags, against simulated devices."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.core.ids import IdFactory, new_id
from cmdctl.core.model import Condition, Coordination, Entry
from cmdctl.drain import engine as eng
from cmdctl.drain import loops
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.retry import RetryPolicy
from cmdctl.journal.store import Journal
from cmdctl.simulator import ConnectionEvent, Fleet, VirtualDevice, write_inventory

from .conftest import (
    Address,
    acmdctl,
    address,
    addresses,
    cli_env,
    make_entry,
    queue,
    received,
    tvs,
)

ONE_TRY = RetryPolicy(tries=1, ambiguous_tries=1, initial=0.01, maximum=0.01, jitter=0.0)


def with_keys(entry: Entry, **keys: Any) -> Entry:
    """The entry as the playbook expansion builds it, with its step's fleet keys."""
    keys = {k: tuple(v) if isinstance(v, list) else v for k, v in keys.items()}
    return replace(entry, coordination=Coordination(**keys))


def peak_devices_open(connections: list[ConnectionEvent]) -> int:
    """The most devices that had a connection open at the same moment, from the record."""
    open_now: dict[str, int] = {}
    peak = 0
    for event in connections:
        if event.event == "reject":
            continue
        open_now[event.device] = event.open_connections
        peak = max(peak, sum(1 for n in open_now.values() if n > 0))
    return peak


def options(**changes: Any) -> DrainOptions:
    return DrainOptions(policy=ONE_TRY, connect_timeout=0.5, verify_timeout=0.5, **changes)


# -- coalescing --------------------------------------------------------------------------------


async def test_forty_volume_changes_for_a_device_back_online_run_once(journal: Journal) -> None:
    async with Fleet(tvs(2)) as fleet:
        dev = fleet.devices[0]
        await dev.set_offline(True)
        # 40 `send`s while it was away: each its own batch, queued one after the other.
        sent = queue(journal, [
            make_entry(dev.name, "number", "volume", {"value": float(n)}, batch=new_id())
            for n in range(1, 41)
        ])
        other = queue(journal, [make_entry("bar-tv-2", "number", "volume", {"value": 5.0})])
        first = await loops.drain(journal, loops.lookup(addresses(fleet)), options())
        assert first.superseded == 39
        winner = sent[-1]
        assert journal.ledger().get(winner.id).state.value == "pending"  # rescheduled
        await dev.set_offline(False)
        later = eng.Engine(journal, loops.lookup(addresses(fleet)), options(),
                           clock=lambda: time.time() + 7200)  # past the reschedule backoff
        second = await loops.drain_with(later)
        assert second.exit_code() == 0, second.as_dict()
        assert received(dev) == [("number.volume", {"value": 40.0})]
        assert received(fleet.devices[1]) == [("number.volume", {"value": 5.0})]
    ledger = journal.ledger()
    assert ledger.get(winner.id).state.value == "done"
    assert ledger.get(other[0].id).state.value == "done"
    for entry in sent[:-1]:
        got = ledger.get(entry.id)
        assert (got.state.value, got.superseded_by) == ("superseded", winner.id)
        assert got.reason == f"superseded by {winner.id}"


async def test_coalescing_spares_one_batch_buttons_partial_lights_and_entries_not_due(
    journal: Journal, fleet3: Fleet
) -> None:
    dev = fleet3.devices[0].name
    later = time.time() + 3600
    sequence = queue(journal, [make_entry(dev, "switch", "tv_power", {"state": s}, batch="B1")
                               for s in (True, False, True)])
    presses = queue(journal, [make_entry(dev, "button", "identify", {}, batch=new_id(),
                                         idempotent=False) for _ in range(2)])
    off = queue(journal, [make_entry(dev, "light", "backlight", {"state": False},
                                     batch=new_id())])
    dim = queue(journal, [make_entry(dev, "light", "backlight", {"brightness": 0.5},
                                     batch=new_id())])
    volume = queue(journal, [make_entry(dev, "number", "volume", {"value": 7.0},
                                        batch=new_id())])
    future = queue(journal, [make_entry(dev, "number", "volume", {"value": 9.0},
                                        batch=new_id(), not_before=later)])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    assert totals.superseded == 0
    got = received(fleet3.devices[0])
    assert [a for s, a in got if s == "switch.tv_power"] == [
        {"state": True}, {"state": False}, {"state": True}]
    assert [s for s, _ in got].count("button.identify") == 2
    assert [s for s, _ in got].count("light.backlight") == 2
    assert ("number.volume", {"value": 7.0}) in got
    ledger = journal.ledger()
    assert {ledger.state(e.id).value for e in (*sequence, *presses, *off, *dim, *volume)} == {
        "done"}
    assert ledger.state(future[0].id).value == "pending"


async def test_coalescing_off_runs_every_entry(journal: Journal, fleet3: Fleet) -> None:
    dev = fleet3.devices[0]
    queue(journal, [make_entry(dev.name, "number", "volume", {"value": float(n)}, batch=new_id())
                    for n in range(3)])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options(coalesce=False))
    assert totals.superseded == 0
    assert [a["value"] for _, a in received(dev)] == [0.0, 1.0, 2.0]


# -- rolling windows ---------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("window", "serial"), [(5, None), (8, "10%")])
async def test_a_window_of_five_over_fifty_devices_never_has_more_than_five_open(
    journal: Journal, window: int, serial: str | None
) -> None:
    async with Fleet(tvs(50)) as fleet:
        extra = {} if serial is None else {"serial": serial}
        entries = []
        for dev in fleet.devices:
            entries.append(with_keys(make_entry(dev.name, "switch", "tv_power", {"state": True}),
                                      **extra))
            entries.append(with_keys(make_entry(dev.name, "number", "volume", {"value": 20.0}),
                                      **extra))
        queue(journal, entries)
        totals = await loops.drain(journal, loops.lookup(addresses(fleet)),
                                 options(window=window, concurrency=64))
        assert totals.exit_code() == 0, totals.as_dict()
        assert all(len(received(d)) == 2 for d in fleet.devices)
        peak = peak_devices_open(fleet.recorder.connections)
    assert peak == 5  # the smaller of --window and serial, and the window was filled


# -- failure thresholds ------------------------------------------------------------------------

#: Ten devices in queue order; F marks one whose command is invalid there (fails for good).
LAYOUT = "OFOFFFFOOO"


@pytest.mark.parametrize(
    ("max_fail", "fail_fast", "failures"),
    [(3, False, 3), ("20%", False, 2), (None, True, 1)],
)
async def test_max_fail_stops_taking_devices_after_exactly_the_threshold(
    journal: Journal, max_fail: int | str | None, fail_fast: bool, failures: int
) -> None:
    async with Fleet(tvs(10)) as fleet:
        names = [d.name for d in fleet.devices]
        entries = []
        for name, kind in zip(names, LAYOUT, strict=True):
            option = "HDMI 9" if kind == "F" else "HDMI 2"
            entries.append(make_entry(name, "select", "input", {"option": option}))
        queue(journal, entries)
        totals = await loops.drain(
            journal, loops.lookup(addresses(fleet)),
            options(window=1, max_fail=max_fail, fail_fast=fail_fast),
        )
        # The device job that makes the count reach the threshold is the last one taken.
        last = [i for i, k in enumerate(LAYOUT) if k == "F"][failures - 1]
        connected = {c.device for c in fleet.recorder.connections if c.event == "open"}
        assert connected == set(names[: last + 1])
        assert [bool(received(d)) for d in fleet.devices[: last + 1]] == [
            k == "O" for k in LAYOUT[: last + 1]]
    ledger = journal.ledger()
    for i, entry in enumerate(entries):
        got = ledger.get(entry.id)
        if i <= last:
            assert got.state.value == ("failed" if LAYOUT[i] == "F" else "done")
        else:
            assert got.state.value == "pending"
            assert got.reason is not None and got.reason.startswith("held: batch B reached")
            assert f"{failures} devices failed" in got.reason
    assert totals.held == len(entries) - last - 1
    assert totals.count("failed") == failures


async def test_unreachable_devices_count_toward_max_fail(journal: Journal) -> None:
    async with Fleet(tvs(4)) as fleet:
        for dev in fleet.devices[:2]:
            await dev.set_offline(True)
        entries = queue(journal, [make_entry(d.name, "switch", "tv_power", {"state": True})
                                  for d in fleet.devices])
        totals = await loops.drain(journal, loops.lookup(addresses(fleet)),
                                 options(window=1, max_fail=2))
        assert all(received(d) == [] for d in fleet.devices)
    ledger = journal.ledger()
    assert [ledger.get(e.id).attempts for e in entries] == [1, 1, 0, 0]
    assert all(ledger.state(e.id).value == "pending" for e in entries)
    assert [("held" in (ledger.get(e.id).reason or "")) for e in entries] == [
        False, False, True, True]
    assert (totals.count("unreachable"), totals.held) == (2, 2)


async def test_held_entries_run_in_the_next_drain_and_lose_their_reason(
    journal: Journal, fleet3: Fleet
) -> None:
    bad = make_entry("bar-tv-1", "select", "input", {"option": "HDMI 9"})
    good = make_entry("bar-tv-2", "select", "input", {"option": "HDMI 2"})
    queue(journal, [bad, good])
    first = await loops.drain(journal, loops.lookup(addresses(fleet3)),
                            options(window=1, fail_fast=True))
    assert first.held == 1
    assert "--fail-fast" in (journal.ledger().get(good.id).reason or "")
    await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    got = journal.ledger().get(good.id)
    assert (got.state.value, got.reason) == ("done", None)


async def test_run_mode_records_a_held_reason_once_not_every_pass(
    journal: Journal, fleet3: Fleet
) -> None:
    bad = make_entry("bar-tv-1", "select", "input", {"option": "HDMI 9"})
    good = make_entry("bar-tv-2", "select", "input", {"option": "HDMI 2"})
    queue(journal, [bad, good])
    engine = eng.Engine(journal, loops.lookup(addresses(fleet3)), options(window=1, fail_fast=True))
    serving = asyncio.ensure_future(loops.serve(engine, poll=0.02))
    await asyncio.sleep(1.0)
    engine.request_stop("test over", signal=False)
    await asyncio.wait_for(serving, 5)
    records = journal.ledger().records(good.id)
    assert sum(1 for r in records if isinstance(r, bytes) and b'"t":"held"' in r) == 1
    assert journal.ledger().get(good.id).state.value == "pending"
    assert received(fleet3.devices[1]) == []


def test_limits_resolve_counts_and_percentages() -> None:
    from cmdctl.core.errors import InputError
    from cmdctl.drain.rollout import parse, resolve

    assert resolve("20%", 50, "w") == 10
    assert resolve("1%", 50, "w") == 1  # at least one device
    assert resolve("15%", 10, "w") == 2  # rounds up
    assert resolve(3, 50, "w") == 3
    assert resolve(None, 50, "w") is None
    for bad in ("0", "0%", "150%", "x", -1):
        with pytest.raises(InputError):
            resolve(bad, 10, "--max-fail")
    assert (parse("5", "--window"), parse(" 10% ", "--max-fail")) == (5, "10%")
    with pytest.raises(InputError, match="--max-fail must be N or N%"):
        parse("three", "--max-fail")


# -- tags --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "skip_tags", "ran"),
    [({"power"}, None, {"power"}), (None, {"power"}, {"volume", "plain"}),
     ({"power", "volume"}, {"volume"}, {"power"})],
)
async def test_tags_and_skip_tags_select_entries(
    journal: Journal, fleet3: Fleet, tags: set[str] | None, skip_tags: set[str] | None,
    ran: set[str],
) -> None:
    dev = fleet3.devices[0].name
    made = {
        "power": with_keys(make_entry(dev, "switch", "tv_power", {"state": True}),
                            tags=["power", "night"]),
        "volume": with_keys(make_entry(dev, "number", "volume", {"value": 3.0}),
                             tags=["volume"]),
        "plain": make_entry(dev, "select", "input", {"option": "Cable"}),
    }
    queue(journal, made.values())
    await loops.drain(journal, loops.lookup(addresses(fleet3)), options(
        tags=None if tags is None else frozenset(tags),
        skip_tags=None if skip_tags is None else frozenset(skip_tags)))
    ledger = journal.ledger()
    assert {k for k, e in made.items() if ledger.state(e.id).value == "done"} == ran
    assert {k for k, e in made.items() if ledger.state(e.id).value == "pending"} == (
        set(made) - ran)


# -- pace --------------------------------------------------------------------------------------




async def test_pace_spaces_commands_to_a_device_and_only_to_it(
    journal: Journal, fleet3: Fleet
) -> None:
    slow, fast = fleet3.devices[0], fleet3.devices[1]
    devices: dict[str, Address] = {
        slow.name: replace(address(slow), pace=0.2),
        fast.name: address(fast),
    }
    queue(journal, [make_entry(d.name, "number", "volume", {"value": float(n)})
                    for d in (slow, fast) for n in range(4)])
    totals = await loops.drain(journal, loops.lookup(devices), options())
    assert totals.exit_code() == 0, totals.as_dict()

    def gaps(dev: VirtualDevice) -> list[float]:
        times = [r.ts for r in dev.received]
        assert len(times) == 4
        return [b - a for a, b in itertools.pairwise(times)]

    assert min(gaps(slow)) >= 0.2 - 0.005
    assert max(gaps(fast)) < 0.05  # sent back to back
    assert [a["value"] for _, a in received(slow)] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("domain", "args", "idempotent", "extra", "expected"),
    [
        ("switch", {"state": True}, True, {}, True),
        ("light", {"brightness": 0.5}, True, {}, True),
        ("cover", {"position": 0.3}, True, {}, True),
        ("cover", {"stop": True}, True, {}, False),
        ("valve", {"stop": True}, True, {}, False),
        ("lock", {"command": "lock"}, True, {}, True),
        ("lock", {"command": "open"}, True, {}, False),
        ("media_player", {"volume": 0.4}, True, {}, True),
        ("media_player", {"command": "volume_up"}, False, {}, False),
        ("media_player", {"command": "play"}, True, {}, False),
        ("button", {}, False, {}, False),
        ("action", {"code": "1"}, True, {}, False),
        ("number", {"value": 3.0}, False, {}, False),  # `idempotent: false` step
        ("switch", {"state": True}, True, {"pick": "failover", "candidates": ("a", "b")}, False),
        # a conditional command may not run; a waiting one's wait is part of what it does
        ("select", {"option": "A"}, True, {"when": Condition("switch", "p", True)}, False),
        ("switch", {"state": True}, True,
         {"wait_until": Condition("binary_sensor", "on", True, 5.0)}, False),
        ("switch", {"state": True}, True, {"after": "x", "scope": "device", "gap": 5.0}, True),
    ],
)
def test_which_commands_coalesce(
    domain: str, args: dict[str, Any], idempotent: bool, extra: dict[str, Any], expected: bool
) -> None:
    from cmdctl.drain.coalesce import coalescible

    entry = replace(make_entry("tv", domain, "x", args, idempotent=idempotent),
                    coordination=Coordination(**extra))
    assert coalescible(entry) is expected


@pytest.mark.timeout(90)
async def test_queued_sends_coalesce_in_a_real_cmdctl_drain(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        inventory = tmp_path / "devices.yml"
        write_inventory(fleet.devices, inventory)
        journal = Journal(tmp_path / "journal")
        env = cli_env(journal.directory, inventory)
        for value in ("10", "20", "30"):
            code, _, err = await acmdctl("send", "bar-tv-1", "number.volume", value, "--queue",
                                         env=env)
            assert code == ExitCode.OK, err
        code, out, err = await acmdctl("drain", "--json", env=env, timeout=60)
        assert code == ExitCode.OK, err
        assert received(fleet.devices[0]) == [("number.volume", {"value": 30.0})]
    result = json.loads(out)
    assert result["superseded"] == 2
    entries = journal.ledger().entries()
    winner = entries[-1]
    assert [(e.state.value, e.superseded_by) for e in entries] == [
        ("superseded", winner.id), ("superseded", winner.id), ("done", None)]


# -- "newer" is later in the journal (issue 13, item 1) ---------------------------------------


@pytest.mark.timeout(120)
async def test_a_newer_queued_value_supersedes_an_older_one_waiting_out_its_backoff(
    tmp_path: Path,
) -> None:
    """The reproduction: 25 is sent while the TV is away (queued), a drain fails and backs it
    off, 10 is queued; the TV comes back. The TV must end on 10, now and after any later drain."""
    async with Fleet(tvs(1)) as fleet:
        tv = fleet.devices[0]
        inventory = tmp_path / "devices.yml"
        write_inventory(fleet.devices, inventory)
        journal = Journal(tmp_path / "journal")
        env = cli_env(journal.directory, inventory)
        await tv.set_offline(True)
        code, _, err = await acmdctl("send", tv.name, "number.volume", "25", env=env)
        assert code == ExitCode.QUEUED, err
        code, _, err = await acmdctl("drain", env=env, timeout=60)
        assert code == ExitCode.UNREACHABLE, err
        stale = journal.ledger().entries()[0]
        assert stale.state.value == "pending" and stale.not_before > time.time() + 5  # backoff
        code, _, err = await acmdctl("send", tv.name, "number.volume", "10", "--queue", env=env)
        assert code == ExitCode.OK, err
        await tv.set_offline(False)
        code, out, err = await acmdctl("drain", "--json", env=env, timeout=60)
        assert code == ExitCode.OK, err
        assert json.loads(out)["superseded"] == 1
        assert received(tv) == [("number.volume", {"value": 10.0})]
        # Long after the backoff, nothing stale is left to land.
        later = eng.Engine(journal, loops.lookup(addresses(fleet)), options(),
                           clock=lambda: time.time() + 7200)
        totals = await loops.drain_with(later)
        assert totals.entries == 0 and received(tv) == [("number.volume", {"value": 10.0})]
    stale = journal.ledger().get(stale.id)
    assert stale.state.value == "superseded" and stale.superseded_by is not None


async def test_newer_means_later_in_the_journal_not_a_larger_id(
    journal: Journal, fleet3: Fleet
) -> None:
    """Two processes whose clocks differ by an hour: the one queued last wins, and a device's
    entries run in journal order, whatever their ids say."""
    dev = fleet3.devices[0].name
    fast_clock = replace(make_entry(dev, "number", "volume", {"value": 25.0}, batch="FAST"),
                         id=new_id_at(time.time() + 3600))
    slow_clock = replace(make_entry(dev, "number", "volume", {"value": 10.0}, batch="SLOW"),
                         id=new_id_at(time.time()))
    assert slow_clock.id < fast_clock.id  # the later-queued entry has the smaller id
    queue(journal, [fast_clock])
    queue(journal, [slow_clock])
    first = replace(make_entry(dev, "switch", "tv_power", {"state": True}, batch="A"),
                    id=new_id_at(time.time() + 3600))
    second = replace(make_entry(dev, "select", "input", {"option": "HDMI 2"}, batch="A"),
                     id=new_id_at(time.time()))
    queue(journal, [first, second])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    assert totals.superseded == 1
    got = received(fleet3.devices[0])
    assert ("number.volume", {"value": 10.0}) in got
    assert ("number.volume", {"value": 25.0}) not in got
    order = [s for s, _ in got]
    assert order.index("switch.tv_power") < order.index("select.input")  # journal order
    assert journal.ledger().get(fast_clock.id).superseded_by == slow_clock.id


def new_id_at(ts: float) -> str:
    """An id as a process whose clock reads `ts` would make it."""
    return IdFactory(clock=lambda: int(ts * 1000)).new()


@pytest.mark.timeout(60)
async def test_what_a_superseded_entry_says_in_history_and_the_recap(tmp_path: Path) -> None:
    """Its own reason (superseded by ID), not the error of an attempt before it; and the drain's
    one-line recap counts it (`1 superseded by a newer command`)."""
    async with Fleet(tvs(1)) as fleet:
        tv = fleet.devices[0]
        inventory = tmp_path / "devices.yml"
        write_inventory(fleet.devices, inventory)
        journal = Journal(tmp_path / "journal")
        env = cli_env(journal.directory, inventory, COLUMNS="80")
        await tv.set_offline(True)
        code, _, err = await acmdctl("send", tv.name, "number.volume", "25", env=env)
        assert code == ExitCode.QUEUED, err
        await acmdctl("drain", env=env, timeout=60)
        await acmdctl("send", tv.name, "number.volume", "10", "--queue", env=env)
        await tv.set_offline(False)
        code, out, err = await acmdctl("drain", env=env, timeout=60)
        assert code == ExitCode.OK, err
        assert "1 superseded by a newer command" in err + out
        code, out, _ = await acmdctl("history", env=env)
    winner = journal.ledger().entries()[-1]
    assert f"superseded by {winner.id}" in " ".join(out.split())  # wrapped at 80 columns
    assert "connection refused" not in out
