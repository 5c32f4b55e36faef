"""Editing devices.yml for `devices discover --merge`: only the changed values move."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.inputs.inventory import load_inventory
from cmdctl.inputs.inventory_edit import Addition, Move, apply, plan

KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

INVENTORY = """\
# the bar, hand-written
defaults:
  port: 6053

devices:
  bar-tv-1:   # by the window
    host: "10.0.0.5"
    key: !secret tv1_key
    groups: [bar]
  bar-tv-2: {host: 10.0.0.6, port: 6053}
  patio:
    host: patio.local
    port: 7000
    expected_name: patio

groups:
  outside: [patio]
"""


def write(tmp_path: Path, text: str = INVENTORY) -> Path:
    (tmp_path / "secrets.yaml").write_text(f"tv1_key: {KEY}\n")
    path = tmp_path / "devices.yml"
    path.write_text(text)
    return path


def test_moves_replace_only_the_values_and_keep_quotes_and_comments(tmp_path: Path) -> None:
    path = write(tmp_path)
    edit = plan(
        INVENTORY,
        path,
        [],
        [Move("bar-tv-1", host="10.0.0.50"), Move("bar-tv-2", port=6054), Move("patio", port=7001)],
    )
    assert edit.text == INVENTORY.replace('"10.0.0.5"', '"10.0.0.50"').replace(
        "port: 6053}", "port: 6054}"
    ).replace("port: 7000", "port: 7001")
    assert [(c.device, c.action, c.detail) for c in edit.changes] == [
        ("bar-tv-1", "moved", "host 10.0.0.5 → 10.0.0.50"),
        ("bar-tv-2", "moved", "port 6053 → 6054"),
        ("patio", "moved", "port 7000 → 7001"),
    ]


def test_a_missing_port_key_is_added_beside_host(tmp_path: Path) -> None:
    path = write(tmp_path)
    edit = plan(INVENTORY, path, [], [Move("bar-tv-1", host="10.0.0.9", port=7002)])
    assert '    host: "10.0.0.9"\n    port: 7002\n    key: !secret tv1_key\n' in edit.text
    flow = plan("devices:\n  a: {host: 10.0.0.1}\n", path, [], [Move("a", port=7003)]).text
    assert flow == "devices:\n  a: {host: 10.0.0.1, port: 7003}\n"


def test_additions_go_after_the_last_device_in_its_indentation(tmp_path: Path) -> None:
    path = write(tmp_path)
    new = Addition(
        "kitchen",
        "10.0.0.8",
        6053,
        expected_name="kitchen",
        expected_mac="a0b765010203",
        comment="it announces api_encryption: add key: !secret kitchen_key",
    )
    edit = plan(INVENTORY, path, [new, Addition("hall", "10.0.0.9", 6060)], [])
    assert edit.text == INVENTORY.replace(
        "    expected_name: patio\n",
        "    expected_name: patio\n"
        "  # it announces api_encryption: add key: !secret kitchen_key\n"
        "  kitchen:\n"
        "    host: 10.0.0.8\n"
        "    expected_name: kitchen\n"
        "    expected_mac: a0:b7:65:01:02:03\n"
        "  hall:\n"
        "    host: 10.0.0.9\n"
        "    port: 6060\n",
    )
    apply(path, edit)
    inv = load_inventory(path)
    assert inv.names == ("bar-tv-1", "bar-tv-2", "patio", "kitchen", "hall")
    assert inv.by_name["kitchen"].expected_mac == "a0b765010203"
    assert inv.by_name["hall"].port == 6060 and inv.groups["outside"] == ("patio",)


def test_a_new_file_and_a_file_without_a_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "devices.yml"
    edit = plan("", path, [Addition("a", "10.0.0.1", 6053)], [])
    assert edit.text == "devices:\n  a:\n    host: 10.0.0.1\n"
    text = "devices:\n    a:\n        host: 10.0.0.1"
    edit = plan(text, path, [Addition("b", "10.0.0.2", 6053)], [])
    assert edit.text == text + "\n    b:\n        host: 10.0.0.2\n"


def test_names_already_taken_and_aliases_are_skipped_with_a_reason(tmp_path: Path) -> None:
    path = write(tmp_path)
    aliased = "x: &ip 10.0.0.1\ndevices:\n  a: {host: *ip}\n"
    edit = plan(aliased, path, [], [Move("a", host="10.0.0.2")])
    assert edit.text == aliased
    assert edit.changes[0].action == "skipped" and "alias" in edit.changes[0].detail
    edit = plan(
        INVENTORY, path, [Addition("outside", "10.0.0.3", 6053)], [], taken=frozenset({"outside"})
    )
    assert edit.text == INVENTORY and edit.changes[0].action == "skipped"


def test_flow_devices_mapping_cannot_take_additions(tmp_path: Path) -> None:
    path = write(tmp_path)
    with pytest.raises(InputError, match="flow mapping"):
        plan("devices: {a: {host: 10.0.0.1}}\n", path, [Addition("b", "10.0.0.2", 6053)], [])


def test_apply_keeps_the_mode_and_refuses_a_file_changed_meanwhile(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.chmod(0o600)
    edit = plan(INVENTORY, path, [Addition("hall", "10.0.0.9", 6053)], [])
    apply(path, edit)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stale = plan(INVENTORY, path, [Addition("attic", "10.0.0.10", 6053)], [])
    before = path.read_text()
    with pytest.raises(InputError, match="changed while devices were being discovered"):
        apply(path, stale)
    assert path.read_text() == before
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_apply_refuses_an_edit_that_would_not_load(tmp_path: Path) -> None:
    path = write(tmp_path)
    # a device called like a group: the plan cannot know, the loader does
    edit = plan(INVENTORY, path, [Addition("outside", "10.0.0.3", 6053)], [])
    with pytest.raises(InputError, match="would not load: 'outside' is both a device and a group"):
        apply(path, edit)
    assert path.read_text() == INVENTORY
