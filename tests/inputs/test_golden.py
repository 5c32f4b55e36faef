"""Golden tests: each example playbook + the example inventory → exactly these entries.

Regenerate after an intended change with `CMDCTL_REGEN_GOLDEN=1 pytest tests/inputs/test_golden.py`
and review the diff; without the variable any difference fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.model import Command, Coordination, Entry
from cmdctl.inputs.inventory import Inventory
from cmdctl.inputs.playbook import expand, load_playbook
from cmdctl.journal import fleetkeys

from .conftest import EXAMPLES, NOW, counter_ids

GOLDEN = Path(__file__).parent / "golden"
PLAYBOOKS = ("game-night", "closing-time", "volume", "rollout", "match-day")


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Coordination):  # as the journal stores it
        return fleetkeys.coordination_fields(value)
    if isinstance(value, Command):
        return {"domain": value.domain, "target": value.target, "args": _plain(value.args)}
    if hasattr(value, "items"):  # any mapping
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _entry(entry: Entry) -> dict[str, Any]:
    return {f.name: _plain(getattr(entry, f.name)) for f in dataclasses.fields(entry)}


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_golden_expansion(venue: Inventory, name: str) -> None:
    plan = expand(
        load_playbook(EXAMPLES / f"{name}.yml"), venue, now=NOW, ids=counter_ids(), who="ann@bar"
    )
    actual = {
        "batch": plan.batch,
        "playbook": plan.name,
        "devices": [device.name for device in plan.devices],
        "steps": [step.name for step in plan.steps],
        "queued": [_entry(entry) for entry in plan.queued],
        "immediate": [_entry(entry) for entry in plan.immediate],
    }
    text = json.dumps(actual, indent=1, sort_keys=True) + "\n"
    path = GOLDEN / f"{name}.json"
    if os.environ.get("CMDCTL_REGEN_GOLDEN"):
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"regenerated {path}")
    assert path.is_file(), f"{path} is missing; run with CMDCTL_REGEN_GOLDEN=1 to create it"
    assert text == path.read_text(encoding="utf-8")  # exact: 18.0 and 18 differ
