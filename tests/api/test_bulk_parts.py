"""`bulk` journals a plan from its parts (`Fleet.journal_plan`): the journal gets the bytes the
entry-by-entry path wrote (an `Entry` and a `queued` event per command, encoded one by one),
for the example playbooks and for variables, delays, waits, failover, tags and `!secret`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmdctl.api.fleet import Fleet
from cmdctl.inputs.playbook import Plan, expand, load_playbook
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal
from tests.inputs.conftest import EXAMPLE_ENV, EXAMPLES, NOW, counter_ids

FLOW = """\
name: flow
targets: tvs
tags: [night]
steps:
  - {name: power on, switch.tv_power: on, delay: 5s}
  - name: input
    select.input: ${input}
    wait_until: {binary_sensor.tv_on: on, timeout: 20s}
  - name: channel
    text.channel: ${channel}
    when: {switch.tv_power: "on"}
    after: {step: input, scope: device}
  - {name: volume, number.volume: 30, delay: 1m}
  - {name: blaster, targets: {failover: [ir-blaster-a, ir-blaster-b]}, action: send_ir,
     data: {code: !secret ir_code}}
  - {name: all off, switch.tv_power: off, targets: all}
"""


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    return Fleet.open(inventory=EXAMPLES / "devices.yml", journal=tmp_path / "parts")


def _plan(fleet: Fleet, playbook: Path) -> Plan:
    return expand(
        load_playbook(playbook), fleet.inventory, now=NOW, ids=counter_ids(), who="ann@bar"
    )


def _entry_by_entry(plan: Plan, directory: Path) -> bytes:
    """What `Fleet.queue` appended before plans had parts."""
    Journal(directory).append([ev.queued(entry) for entry in plan.queued])
    return (directory / "journal.jsonl").read_bytes()


@pytest.mark.parametrize("name", ["closing-time", "volume", "rollout", "match-day", "flow"])
def test_a_plan_is_journaled_as_its_entries_one_by_one(
    fleet: Fleet, tmp_path: Path, name: str
) -> None:
    path = EXAMPLES / f"{name}.yml"
    if name == "flow":
        path = tmp_path / "flow.yml"
        path.write_text(FLOW, encoding="utf-8")
    plan = _plan(fleet, path)
    assert not plan.immediate
    fleet.journal_plan(plan)
    written = fleet.journal.path.read_bytes()
    assert written == _entry_by_entry(plan, tmp_path / "entries")
    if name == "flow":  # one part per stretch of devices with the same values and flow
        assert len(plan.parts) > len(plan.steps)
        assert b'{"!secret":"ir_code"}' in written and b"gap" in written
    mine, theirs = fleet.journal.ledger(), Journal(tmp_path / "entries").ledger()
    assert [mine.get(e.id) for e in plan.queued] == [theirs.get(e.id) for e in plan.queued]


def test_a_plan_with_immediate_steps_is_not_journaled_alone(fleet: Fleet) -> None:
    plan = _plan(fleet, EXAMPLES / "game-night.yml")
    assert plan.immediate
    with pytest.raises(ValueError, match="immediate steps"):
        fleet.journal_plan(plan)
    assert not fleet.journal.path.exists() or fleet.journal.path.read_bytes() == b""
