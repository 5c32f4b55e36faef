"""`kill -9` of a real `cmdctl drain` during delays and waits, at random moments, repeated.

The TVs run in this process (a background thread) and record every command with its time, so
the record outlives each drain we kill. Afterwards every command ran as specified: the
idempotent steps at least once, the `idempotent: false` one never twice, each delay kept on
its device even across a crash (the gap is counted from the journal), and nothing is left
pending or running.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from cmdctl.core.model import State
from cmdctl.journal.store import Journal
from cmdctl.simulator import DeviceSpec, EntitySpec, venue
from tests.cli.helpers import RunningFleet, make_workspace

SEED = 1515
KILLS = 8
DEVICES = 6
# The TV's sensor follows its power switch after 0.6s .. 1.6s (the TVs drift apart, so kills
# land in different phases on different TVs); the amp's follows its switch after 0.2s.
TV_LAG = (0.6, 1.6)
AMP_LAG = 0.2
DELAY = 1.5
FINAL = {"done", "failed", "skipped", "unknown"}

PLAYBOOK = f"""\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
    wait_until: {{binary_sensor.tv_on: on, timeout: 10s}}
    delay: {DELAY}s
  - name: amp on
    switch.amp_power: on
    idempotent: false
    wait_until: {{binary_sensor.amp_on: on, timeout: 10s}}
    delay: {DELAY}s
  - name: channel
    text.channel: "206"
"""


def specs(count: int) -> list[DeviceSpec]:
    low, high = TV_LAG
    out = []
    for n, spec in enumerate(venue(count)):
        lag = low + (high - low) * n / max(1, count - 1)
        extra = (
            EntitySpec("switch", "Amp Power"),
            EntitySpec("binary_sensor", "TV On", follows="switch.tv_power", lag=lag),
            EntitySpec("binary_sensor", "Amp On", follows="switch.amp_power", lag=AMP_LAG),
        )
        out.append(replace(spec, entities=(*spec.entities, *extra)))
    return out


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_kill_9_during_delays_and_waits_repeats_nothing_unsafe_and_skips_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    ws = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet(specs(DEVICES), site)
    try:
        ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
        ws.playbook("warm-up.yml", PLAYBOOK)
        assert ws.run("bulk", "warm-up.yml").returncode == 0
        journal = Journal(ws.journal)
        kills = 0
        for _ in range(KILLS):
            before = journal.path.stat().st_size
            proc = ws.popen("drain")
            deadline = time.monotonic() + 30
            while journal.path.stat().st_size == before and proc.poll() is None:
                assert time.monotonic() < deadline, "the drain never started working"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.1, 0.9))  # somewhere in ~5s of waits and delays
            if proc.poll() is not None:
                proc.communicate()
                break  # it finished everything
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
        # Each kill lands in a later phase (a wait, a delay, the next step): 3 reach them all.
        assert kills >= 3, "the drains finished too fast to be killed mid-way"
        for _ in range(4):  # the rest, without kills (a pass may leave a gap for the next)
            result = ws.run("drain", timeout=120)
            assert result.returncode in (0, 1), result.stderr
            states = Counter(e.state.value for e in journal.ledger().entries())
            if set(states) <= FINAL:
                break
        devices = running.fleet.devices
    finally:
        running.close()

    ledger = journal.ledger()
    entries = {(e.device, e.step): e for e in ledger.entries()}
    states = Counter(e.state.value for e in entries.values())
    assert set(states) <= FINAL, states  # nothing stuck pending or running
    for dev in devices:
        got = {
            sel: [r.ts for r in dev.received if r.selector == sel and r.accepted]
            for sel in ("switch.tv_power", "switch.amp_power", "text.channel")
        }
        power, amp, channel = (entries[(dev.name, s)] for s in ("power on", "amp on", "channel"))
        if power.state.value == "done":
            assert got["switch.tv_power"], dev.name
        else:  # interrupted three times in a row: failed for good, never a silent loss
            assert power.state.value == "failed" and "3 times" in (power.last_error or "")
        # idempotent: false: at most once, exactly once when done, in doubt otherwise
        assert len(got["switch.amp_power"]) <= 1, dev.name
        if amp.state.value == "done":
            assert len(got["switch.amp_power"]) == 1
        elif amp.state.value == "unknown":
            assert "not safe to repeat" in (amp.reason or "")
        else:
            assert amp.state.value == "skipped" and power.state.value != "done"
        if channel.state.value == "done":
            assert got["text.channel"]
        else:  # skipped only because the amp step did not end done
            assert channel.state.value == "skipped" and amp.state.value != "done"
            assert not got["text.channel"]
        # Each delay held, across crashes: from the last time the step before was sent.
        if got["switch.amp_power"]:
            (sent,) = got["switch.amp_power"]
            last = max(t for t in got["switch.tv_power"] if t < sent)
            assert sent - last >= DELAY, (dev.name, sent - last)
            if got["text.channel"]:
                assert min(got["text.channel"]) - sent >= AMP_LAG + DELAY, dev.name
    print(f"{kills} kills; states {dict(states)}")


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _states(journal: Journal) -> dict[str, str]:
    return {e.device + "/" + e.step: e.state.value for e in journal.ledger().entries()}


def test_a_drain_killed_during_a_delay_waits_only_what_is_left_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    ws = make_workspace(tmp_path)
    (tmp_path / "site").mkdir()
    running = RunningFleet(venue(1), tmp_path / "site")
    try:
        ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
        ws.playbook(
            "p.yml",
            "name: p\ntargets: tvs\nsteps:\n"
            "  - {name: power on, switch.tv_power: on, delay: 6s}\n"
            "  - {name: input, select.input: HDMI 2}\n",
        )
        assert ws.run("bulk", "p.yml").returncode == 0
        journal = Journal(ws.journal)
        proc = ws.popen("drain")
        # Killed as soon as the delay is on disk (the `held` note of the input), mid-delay.
        _until(
            lambda: (
                (journal.ledger().entries(state=State.PENDING) or [None])[0] is not None
                and "delay" in (journal.ledger().entries(state=State.PENDING)[0].reason or "")
            ),
            "the drain never began the delay",
        )
        time.sleep(2.0)  # two of the six seconds waited out before the kill
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed = time.time()
        (dev,) = running.fleet.devices
        (power,) = [r.ts for r in dev.received if r.selector == "switch.tv_power"]
        assert not [r for r in dev.received if r.selector == "select.input"]
        result = ws.run("drain", timeout=60)
        assert result.returncode == 0, result.stderr
        (power_again,) = [r.ts for r in dev.received if r.selector == "switch.tv_power"]
        (hdmi,) = [r.ts for r in dev.received if r.selector == "select.input"]
    finally:
        running.close()
    assert power_again == power  # done on disk before the delay: never sent again
    assert hdmi - power >= 6.0  # the delay held across the crash ...
    # ... counted from the journal (about 4 s left), not started over (6 s or more)
    assert hdmi - killed < 5.5
    assert set(_states(journal).values()) == {"done"}


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_drain_killed_during_a_wait_reruns_it_or_leaves_it_unknown(
    tmp_path: Path, idempotent: bool
) -> None:
    ws = make_workspace(tmp_path)
    (tmp_path / "site").mkdir()
    running = RunningFleet(specs(1), tmp_path / "site")  # tv_on follows after 0.6s
    try:
        ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
        ws.playbook(
            "p.yml",
            "name: p\ntargets: tvs\nsteps:\n"
            f"  - name: power on\n    switch.tv_power: on\n"
            f"    idempotent: {str(idempotent).lower()}\n"
            "    wait_until: {binary_sensor.tv_on: on, timeout: 10s}\n"
            "  - {name: input, select.input: HDMI 2,"
            " after: {step: power on, scope: device}}\n",
        )
        assert ws.run("bulk", "p.yml").returncode == 0
        journal = Journal(ws.journal)
        (dev,) = running.fleet.devices
        proc = ws.popen("drain")
        _until(
            lambda: any(r.selector == "switch.tv_power" for r in dev.received),
            "the power never went on",
        )
        proc.send_signal(signal.SIGKILL)  # sent, its wait not over: running on disk
        proc.communicate()
        assert "running" in _states(journal).values()
        ws.run("drain", timeout=60)
        powers = [r for r in dev.received if r.selector == "switch.tv_power"]
        inputs = [r for r in dev.received if r.selector == "select.input"]
    finally:
        running.close()
    states = _states(journal)
    if idempotent:  # run again, wait included: then the next step
        assert len(powers) == 2 and len(inputs) == 1
        assert states == {"bar-tv-1/power on": "done", "bar-tv-1/input": "done"}
    else:  # never twice: in doubt, and the step after it is not run on a guess
        assert len(powers) == 1 and not inputs
        assert states == {"bar-tv-1/power on": "unknown", "bar-tv-1/input": "skipped"}
