"""Time and conditions on one device (`delay:`, `wait_until:`, `when:`, `after: {scope: device}`),
from a playbook through the drain to simulated TVs over TCP; the simulator's record says what
each device received and when."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.ids import new_id
from cmdctl.core.model import Coordination
from cmdctl.drain import loops
from cmdctl.drain.engine import Engine
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.retry import RetryPolicy
from cmdctl.inputs.inventory import Inventory, load_inventory
from cmdctl.inputs.playbook import Plan, expand, parse_playbook
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal
from cmdctl.simulator import (
    DeviceSpec,
    EntitySpec,
    Fleet,
    VirtualDevice,
    venue,
    write_inventory,
)

from .conftest import address, make_entry, queue

ONE_TRY = RetryPolicy(tries=1, ambiguous_tries=1, initial=0.01, maximum=0.01, jitter=0.0)


def options() -> DrainOptions:
    return DrainOptions(policy=ONE_TRY, connect_timeout=0.5, verify_timeout=1.0)


def tvs(count: int, *, lag: float = 0.0, powered: tuple[str, ...] = ()) -> list[DeviceSpec]:
    """Venue TVs with a `binary_sensor.tv_on` that follows the power switch `lag` s later."""
    out = []
    for spec in venue(count):
        on = spec.name in powered
        entities = tuple(
            replace(e, initial=True) if on and e.kind == "switch" else e for e in spec.entities
        )
        sensor = EntitySpec(
            "binary_sensor", "TV On", follows="switch.tv_power", lag=lag, initial=on
        )
        out.append(replace(spec, entities=(*entities, sensor)))
    return out


def queue_playbook(fleet: Fleet, tmp_path: Path, journal: Journal, text: str) -> Inventory:
    """Expand `text` over the fleet's inventory and queue it as one batch."""
    path = tmp_path / "devices.yml"
    write_inventory(fleet.devices, path)
    inventory = load_inventory(path)
    plan: Plan = expand(
        parse_playbook(text), inventory, now=time.time(), ids=new_id, who="tester@localhost"
    )
    journal.append([ev.queued(e) for e in plan.queued])
    return inventory


async def drain(journal: Journal, inventory: Inventory, **engine: Any) -> None:
    devices = {d.name: d for d in inventory.devices}
    await loops.drain_with(Engine(journal, devices.get, options(), **engine))


def times(dev: VirtualDevice, selector: str) -> list[float]:
    return [r.ts for r in dev.received if r.selector == selector and r.accepted]


def history(journal: Journal, entry_id: str) -> list[ev.Event]:
    return [
        r if isinstance(r, ev.Event) else ev.decode(r) for r in journal.ledger().records(entry_id)
    ]


def by_step(journal: Journal) -> dict[tuple[str, str], Any]:
    """(device, step) → entry."""
    ledger = journal.ledger()
    return {(e.device, e.step): e for e in ledger.entries()}


async def test_a_delay_holds_that_devices_next_step_and_no_other_device(
    journal: Journal, tmp_path: Path
) -> None:
    async with Fleet(tvs(3)) as fleet:
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            """\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
    targets: [bar-tv-1, bar-tv-2]
    delay: 2s
  - name: input
    select.input: HDMI 2
""",
        )
        await drain(journal, inventory)
        one, two, three = fleet.devices
        entries = by_step(journal)
        assert {e.state.value for e in entries.values()} == {"done"}
        for dev in (one, two):
            (power,), (hdmi,) = times(dev, "switch.tv_power"), times(dev, "select.input")
            assert hdmi - power >= 2.0, dev.name
        # bar-tv-3 has no power-on step: its input went with the others' power-on, not 2s later.
        (hdmi3,) = times(three, "select.input")
        assert abs(hdmi3 - times(one, "switch.tv_power")[0]) < 1.0


async def test_wait_until_holds_the_step_until_the_state_shows(
    journal: Journal, tmp_path: Path
) -> None:
    async with Fleet(tvs(2, lag=0.6)) as fleet:
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            """\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
    wait_until: {binary_sensor.tv_on: on, timeout: 5s}
  - name: input
    select.input: HDMI 2
    after: {step: power on, scope: device}
""",
        )
        await drain(journal, inventory)
        entries = by_step(journal)
        assert {e.state.value for e in entries.values()} == {"done"}
        for dev in fleet.devices:
            (power,), (hdmi,) = times(dev, "switch.tv_power"), times(dev, "select.input")
            assert hdmi - power >= 0.6  # sent once the sensor followed, not before
            (done,) = [
                e for e in history(journal, entries[(dev.name, "power on")].id) if e.type == ev.DONE
            ]
            assert 0.5 <= done.get("waited") < 5.0


async def test_wait_until_that_times_out_fails_the_step_and_skips_the_next(
    journal: Journal, tmp_path: Path
) -> None:
    async with Fleet(tvs(2, lag=3.0)) as fleet:
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            """\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
    wait_until: {binary_sensor.tv_on: on, timeout: 1s}
    delay: 1s
  - name: input
    select.input: HDMI 2
""",
        )
        began = time.monotonic()
        await drain(journal, inventory)
        assert time.monotonic() - began < 2.9  # the timeout, not the sensor, ended the wait
        entries = by_step(journal)
        for dev in fleet.devices:
            power, hdmi = entries[(dev.name, "power on")], entries[(dev.name, "input")]
            assert power.state.value == "failed"
            assert power.last_error == (
                f"{dev.name}: timed out after 1s waiting for binary_sensor.tv_on to be on "
                "(it is off)"
            )
            assert hdmi.state.value == "skipped"
            assert hdmi.reason == f"prerequisite 'power on' failed on {dev.name}"
            assert times(dev, "switch.tv_power") and not times(dev, "select.input")


async def test_when_runs_only_where_the_state_matches_and_skips_elsewhere_with_the_reason(
    journal: Journal, tmp_path: Path
) -> None:
    async with Fleet(tvs(3, powered=("bar-tv-2",))) as fleet:
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            """\
name: only the TVs that are on
targets: tvs
steps:
  - name: input
    select.input: HDMI 2
    when: {switch.tv_power: on}
  - name: volume
    number.volume: 30
""",
        )
        await drain(journal, inventory)
        entries = by_step(journal)
        got = {d.name: entries[(d.name, "input")] for d in fleet.devices}
        assert got["bar-tv-2"].state.value == "done"
        for name in ("bar-tv-1", "bar-tv-3"):
            assert got[name].state.value == "skipped"
            assert got[name].reason == "condition not met: switch.tv_power is off (wanted on)"
        assert [bool(times(d, "select.input")) for d in fleet.devices] == [False, True, False]
        # The condition is about its own step: the next step ran everywhere.
        assert all(times(d, "number.volume") for d in fleet.devices)


@pytest.mark.parametrize("scope", ["device", "batch"])
async def test_after_scope_device_keeps_going_when_one_tv_is_offline(
    journal: Journal, tmp_path: Path, scope: str
) -> None:
    async with Fleet(tvs(3)) as fleet:
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            f"""\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
  - name: input
    select.input: HDMI 2
    after: {{step: power on, scope: {scope}}}
""",
        )
        offline = fleet.devices[2]
        await offline.set_offline(True)
        await drain(journal, inventory)
        entries = by_step(journal)
        for dev in fleet.devices[:2]:
            assert entries[(dev.name, "power on")].state.value == "done"
            state = entries[(dev.name, "input")].state.value
            # The batch barrier waits for the offline TV; the device one does not.
            assert state == ("done" if scope == "device" else "pending")
        assert entries[(offline.name, "power on")].state.value == "pending"  # retried later
        assert entries[(offline.name, "input")].state.value == "pending"
        if scope == "batch":
            return
        # Back online, a later drain (past the backoff) finishes the offline TV's steps.
        await offline.set_offline(False)
        later = time.time() + 3600
        await drain(journal, inventory, clock=lambda: later)
        entries = by_step(journal)
        assert entries[(offline.name, "input")].state.value == "done"
        assert times(offline, "switch.tv_power")[0] < times(offline, "select.input")[0]


async def test_a_delay_longer_than_a_drain_waits_leaves_the_step_queued_until_then(
    journal: Journal, tmp_path: Path
) -> None:
    async with Fleet(tvs(1)) as fleet:
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            """\
name: slow warm-up
targets: tvs
steps:
  - {name: power on, switch.tv_power: on, delay: 5m}
  - {name: input, select.input: HDMI 2}
""",
        )
        began = time.monotonic()
        await drain(journal, inventory)
        assert time.monotonic() - began < 5.0  # not five minutes: left for later
        (dev,) = fleet.devices
        entries = by_step(journal)
        power, hdmi = entries[("bar-tv-1", "power on")], entries[("bar-tv-1", "input")]
        assert (power.state.value, hdmi.state.value) == ("done", "pending")
        assert hdmi.reason is not None
        assert hdmi.reason.startswith("delay: 5m 00s after 'power on', until ")
        assert power.finished_at is not None
        assert hdmi.not_before == pytest.approx(power.finished_at + 300)  # due then
        assert not times(dev, "select.input")
        connections = dev.connections_made
        await drain(journal, inventory)  # a drain before then leaves it, without connecting
        assert not times(dev, "select.input") and dev.connections_made == connections
        later = time.time() + 301
        await drain(journal, inventory, clock=lambda: later)
        assert by_step(journal)[("bar-tv-1", "input")].state.value == "done"
        assert times(dev, "select.input")


async def test_a_gap_is_counted_from_the_done_in_the_journal(
    journal: Journal, tmp_path: Path
) -> None:
    """A drain that finds the step before done (an earlier run, then a crash) waits out the
    rest of a short gap, and leaves a long one for later without connecting."""
    async with Fleet(tvs(2)) as fleet:
        now = time.time()
        keys = {
            "bar-tv-1": Coordination(after="power on", scope="device", gap=2.0),
            "bar-tv-2": Coordination(after="power on", scope="device", gap=600.0),
        }
        power = [
            make_entry(d.name, "switch", "tv_power", {"state": True}, step="power on")
            for d in fleet.devices
        ]
        inputs = [
            replace(
                make_entry(d.name, "select", "input", {"option": "HDMI 2"}, step="input"),
                coordination=keys[d.name],
            )
            for d in fleet.devices
        ]
        queue(journal, power + inputs)
        journal.append(
            [ev.done(e.id, now - 1.0, outcome="confirmed", duration=0.1) for e in power]
        )  # done a second ago, by a run that died
        devices = {d.name: address(d) for d in fleet.devices}
        one, two = fleet.devices
        await loops.drain_with(Engine(journal, devices.get, options()))
        (sent,) = times(one, "select.input")
        assert sent >= now + 1.0  # the 2s gap from the journal's done: 1s left, waited
        assert sent < now + 1.9
        assert not times(two, "select.input") and two.connections_made == 0
        entry = journal.ledger().get(inputs[1].id)
        assert entry.state.value == "pending"
        assert entry.not_before == pytest.approx(now - 1.0 + 600.0)


async def test_a_connection_lost_during_wait_until_fails_the_step_at_once_and_says_so(
    journal: Journal, tmp_path: Path
) -> None:
    """The device drops off mid-wait: the step fails then (not at the timeout), naming the loss;
    the command it already took is not sent again and the step that waits for it is skipped."""
    async with Fleet(tvs(1, lag=60.0)) as fleet:  # the sensor never follows within the test
        inventory = queue_playbook(
            fleet,
            tmp_path,
            journal,
            """\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
    wait_until: {binary_sensor.tv_on: on, timeout: 20s}
    delay: 1s
  - name: input
    select.input: HDMI 2
""",
        )
        dev = fleet.devices[0]
        began = time.monotonic()
        task = asyncio.ensure_future(drain(journal, inventory))
        while not times(dev, "switch.tv_power"):
            assert time.monotonic() - began < 10
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # waiting on the sensor now
        await dev.set_offline(True)
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - began < 10  # the loss ended the wait, not the 20 s timeout
        entries = by_step(journal)
        power, hdmi = entries[(dev.name, "power on")], entries[(dev.name, "input")]
        assert power.state.value == "failed", power
        assert power.last_error is not None
        assert power.attempts == 1
        assert power.last_error.startswith(
            f"{dev.name}: lost while waiting for binary_sensor.tv_on to be on: "
        )
        assert hdmi.state.value == "skipped"
        assert hdmi.reason == f"prerequisite 'power on' failed on {dev.name}"
        assert len(times(dev, "switch.tv_power")) == 1 and not times(dev, "select.input")
