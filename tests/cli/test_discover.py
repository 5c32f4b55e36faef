"""`cmdctl devices discover` end to end against `cmdctl simulate --mdns`.

Multicast only ever happens inside a private network namespace that each test makes
(tests/netns.py); the bodies are in discover_scenarios.py. Where namespaces are not permitted,
these tests skip with one line saying why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import netns

pytestmark = pytest.mark.timeout(120)

SCENARIOS = "tests.cli.discover_scenarios"


def row(text: str, device: str) -> str:
    [line] = [ln for ln in text.splitlines() if ln.startswith(device + " ")]
    return line.rstrip()


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in document["devices"]}


def test_every_announced_device_is_found_with_the_fields_firmware_announces(
    tmp_path: Path,
) -> None:
    r = netns.call(f"{SCENARIOS}:announced", str(tmp_path))
    assert r["simulate_exit"] == 0
    ports = {line.split()[0]: line.split()[1] for line in r["banner"][1:4]}

    fresh = r["fresh"]
    assert fresh["code"] == 0, fresh
    doc = json.loads(fresh["stdout"])
    assert doc["inventory"] is None and doc["not_seen"] == [] and doc["unanswered"] == []
    found = by_name(doc)
    assert sorted(found) == ["bar-tv-1", "bar-tv-2", "patio"]
    tv1, tv2, patio = found["bar-tv-1"], found["bar-tv-2"], found["patio"]
    assert f"{tv1['address']}:{tv1['port']}" == ports["bar-tv-1"]
    assert f"{tv2['address']}:{tv2['port']}" == ports["bar-tv-2"]
    assert tv2["address"] == "127.0.0.2"
    assert (tv1["friendly_name"], tv1["mac"], tv1["esphome_version"]) == (
        "Bar TV 1",
        "a0:b7:65:01:02:03",
        "2026.10.0",
    )
    assert (tv1["platform"], tv1["board"], tv1["network"], tv1["encryption"]) == (
        "ESP32",
        "esp32dev",
        "wifi",
        "required",
    )
    assert (patio["platform"], patio["board"], patio["esphome_version"]) == (
        "ESP8266",
        "esp01_1m",
        "2026.9.1",
    )
    assert patio["encryption"] == "none"
    assert tv1["host"] == "bar-tv-1.local"
    assert tv1["txt"]["api_encryption"] == "Noise_NNpsk0_25519_ChaChaPoly_SHA256"
    assert all(d["inventory"]["status"] == "new" for d in found.values())
    assert "found 3 ESPHome devices" in fresh["stderr"]
    assert "every device is new" in fresh["stderr"]

    table = r["table"]
    assert table["code"] == 0, table
    assert row(table["stdout"], "bar-tv-2").split() == [
        "bar-tv-2",
        "Bar",
        "TV",
        "2",
        ports["bar-tv-2"],
        "a0:b7:65:01:02:04",
        "2026.10.0",
        "ESP32/esp32dev",
        "required",
        "known",
    ]
    assert "3 known, 0 moved, 0 new" in table["stderr"]
    known = by_name(json.loads(r["known"]["stdout"]))
    assert {d["inventory"]["status"] for d in known.values()} == {"known"}
    assert known["patio"]["inventory"]["device"] == "patio"


def test_moved_devices_are_reported_and_merge_fixes_them_keeping_the_users_text(
    tmp_path: Path,
) -> None:
    r = netns.call(f"{SCENARIOS}:moved", str(tmp_path))
    ports = r["ports"]
    before = r["before"]
    assert before["code"] == 0, before
    assert row(before["stdout"], "bar-tv-1").endswith("moved: inventory has 127.0.0.1:1")
    assert row(before["stdout"], "bar-tv-2").endswith(
        f"moved: inventory has 127.0.0.1:{ports['bar-tv-2']}"
    )
    assert row(before["stdout"], "patio").endswith("new")
    assert "0 known, 2 moved, 1 new" in before["stderr"]
    assert (
        "to add the new devices and fix the moved ones: cmdctl devices discover --merge"
        in (before["stderr"])
    )

    merge = r["merge"]
    assert merge["code"] == 0, merge
    assert merge["stderr"].splitlines()[-3:] == [
        f"devices.yml: moved bar-tv-1: port 1 → {ports['bar-tv-1']}",
        "devices.yml: moved bar-tv-2: host 127.0.0.1 → 127.0.0.2",
        f"devices.yml: added patio: host 127.0.0.1:{ports['patio']}",
    ]
    expected = (
        r["original"]
        .replace("port: 1   #", f"port: {ports['bar-tv-1']}   #")
        .replace("host: '127.0.0.1'", "host: '127.0.0.2'")
        + "  patio:\n"
        "    host: 127.0.0.1\n"
        f"    port: {ports['patio']}\n"
        "    expected_name: patio\n"
        "    expected_mac: a0:b7:65:01:02:05\n"
    )
    assert r["merged"] == expected

    again = r["again"]
    assert again["code"] == 0, again
    doc = json.loads(again["stdout"])
    assert {d["inventory"]["status"] for d in doc["devices"]} == {"known"}
    assert doc["merge"] == {"file": "devices.yml", "written": False, "changes": []}
    assert "devices.yml: nothing to change" in again["stderr"]
    # the merged inventory is one cmdctl can use: every device answers, keys kept
    probe = json.loads(r["probe"]["stdout"])
    assert r["probe"]["code"] == 0, r["probe"]
    assert probe["totals"]["online"] == 3


def test_bad_input_fails_before_browsing_and_a_quiet_network_is_not_an_error(
    tmp_path: Path,
) -> None:
    r = netns.call(f"{SCENARIOS}:bad_input", str(tmp_path))
    expected = {
        "timeout_word": "cmdctl: --timeout: bad duration 'soon' (hint: write a duration like",
        "timeout_zero": "cmdctl: --timeout: must be more than zero, got '0s'",
        "timeout_huge": "cmdctl: --timeout: at most 300s, got '1h'",
        "merge_dir": f"cmdctl: {tmp_path}/adir: --merge: this is a directory (hint:",
        "merge_and_inventory": "cmdctl: --merge and --inventory name different files (hint:",
        "merge_no_dir": f"cmdctl: {tmp_path}/nowhere/devices.yml: --merge: its directory does",
        "missing_inventory": f"cmdctl: {tmp_path}/missing.yml: no inventory at",
        "broken_inventory": f"cmdctl: {tmp_path}/broken.yml:2:24: unknown key 'colour'",
        "broken_merge": f"cmdctl: {tmp_path}/broken.yml:2:24: unknown key 'colour'",
    }
    for name, start in expected.items():
        result = r[name]
        assert result["code"] == 2, (name, result)
        assert result["stdout"] == "", (name, result)
        [line] = result["stderr"].splitlines()
        assert line.startswith(start), (name, line)
        assert result["seconds"] < 3, (name, "should fail before the 3 s browse")

    nothing = r["nothing"]
    assert nothing["code"] == 0 and nothing["stdout"] == ""
    assert nothing["stderr"].splitlines() == [
        "no ESPHome device answered in 300ms "
        "(mDNS stays on this network segment: not across routers or VLANs)",
        "new.yml: nothing to change",
    ]
    assert r["new_file_exists"] is False
    assert r["nothing_json"] == {
        "inventory": None,
        "devices": [],
        "not_seen": [],
        "unanswered": [],
        "merge": None,
    }
