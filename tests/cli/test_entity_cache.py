"""The entity cache end to end: real `cmdctl` processes against the simulator over TCP.

A connection (probe, entities, send, drain) records each device's entity list; while the device
is away, `validate`, `bulk` and `send --queue` refuse what that list refuses (exit 2, the journal
untouched); a device whose firmware changed is re-checked on connect and its cache refreshed.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cmdctl.simulator import DeviceSpec, venue
from tests.cli.helpers import RunningFleet, assert_clean, make_workspace, row_of

NEW_BUILD = "2026-12-01 08:00:00 +0000"


class Site:
    """A workspace whose inventory points at a simulated fleet that a test can stop or replace."""

    def __init__(self, tmp_path: Path, specs: list[DeviceSpec]) -> None:
        self.ws = make_workspace(tmp_path)
        self.dir = tmp_path / "site"
        self.dir.mkdir()
        self.fleet: RunningFleet | None = None
        self.start(specs)

    def start(self, specs: list[DeviceSpec]) -> None:
        self.fleet = RunningFleet(specs, self.dir)
        self.ws.env["CMDCTL_INVENTORY"] = str(self.fleet.inventory)

    def stop(self) -> list[DeviceSpec]:
        """Stop every device; returns their specs with the ports they had (to come back on)."""
        assert self.fleet is not None
        specs = [replace(d.spec, port=d.port) for d in self.fleet.fleet.devices]
        self.fleet.close()
        self.fleet = None
        return specs

    def cache_file(self, device: str) -> Path:
        return self.ws.journal / "entities" / f"{device}.json"

    def journal_bytes(self) -> dict[str, bytes]:
        """Every journal file, byte for byte (the entity cache left out)."""
        if not self.ws.journal.exists():
            return {}
        return {p.name: p.read_bytes() for p in self.ws.journal.iterdir() if p.is_file()}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, venue(2, encrypted=True, seed=3))
    try:
        yield s
    finally:
        if s.fleet is not None:
            s.fleet.close()


TYPO = """\
name: typo
targets: tvs
steps:
  - name: power
    switch.tv_powr: on
"""
BAD_OPTION = """\
name: bad option
targets: tvs
steps:
  - switch.tv_power: on
  - select.input: HDMI 9
"""


def _one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def test_offline_typos_and_bad_values_exit_2_and_leave_the_journal_alone(site: Site) -> None:
    ws = site.ws
    assert_clean(ws.run("send", "bar-tv-1", "number.volume", "5", "--queue"), 0)  # a journal
    assert_clean(ws.run("devices", "probe"), 0)
    for device in ("bar-tv-1", "bar-tv-2"):
        assert stat.S_IMODE(site.cache_file(device).stat().st_mode) == 0o600
    assert stat.S_IMODE(site.cache_file("bar-tv-1").parent.stat().st_mode) == 0o700
    site.stop()
    before = site.journal_bytes()
    typo = ws.playbook("typo.yml", TYPO)
    bad = ws.playbook("bad.yml", BAD_OPTION)

    for verb in ("bulk", "validate"):
        result = ws.run(verb, str(typo))
        assert_clean(result, 2)
        line = _one_error(result.stderr)
        assert line.startswith(
            f"cmdctl: {typo}:5:5: bar-tv-1: no switch 'tv_powr' (did you mean switch.tv_power?)"
        )
        assert "cached entity list (ESPHome 2026.10.0" in line
        assert "refresh it: cmdctl devices probe bar-tv-1" in line

    result = ws.run("bulk", str(bad))
    assert_clean(result, 2)
    assert _one_error(result.stderr).startswith(
        f"cmdctl: {bad}:5:19: bar-tv-1: select.input has no option 'HDMI 9' "
        "(options: HDMI 1, HDMI 2, Cable) (hint: did you mean 'HDMI 2'?;"
    )

    for args, words in (
        (("switch.tv_pwer", "on"), "no switch 'tv_pwer' (did you mean switch.tv_power?)"),
        (("select.input", "HDMI 9"), "select.input has no option 'HDMI 9'"),
        (("number.volume", "101"), "number.volume value 101 is out of range 0..100"),
    ):
        result = ws.run("send", "bar-tv-2", *args, "--queue")
        assert_clean(result, 2)
        assert _one_error(result.stderr).startswith(f"cmdctl: bar-tv-2: {words}")

    assert site.journal_bytes() == before  # byte for byte

    # What the cached list accepts is queued as ever, device away or not.
    good = ws.playbook("good.yml", BAD_OPTION.replace("HDMI 9", "HDMI 2"))
    assert_clean(ws.run("bulk", str(good)), 0)
    assert_clean(ws.run("send", "bar-tv-2", "select.input", "Cable", "--queue"), 0)
    assert site.journal_bytes() != before


def test_a_failover_step_is_checked_against_each_candidates_cache(site: Site) -> None:
    """The entry names its first candidate, but may run on any: each cached list is asked."""
    ws = site.ws
    assert_clean(ws.run("devices", "probe"), 0)
    site.stop()
    site.cache_file("bar-tv-1").unlink()  # the first candidate is checked on connect only
    before = site.journal_bytes()
    failover = ws.playbook(
        "failover.yml",
        "name: fo\ntargets: {failover: [bar-tv-1, bar-tv-2]}\nsteps:\n  - select.input: HDMI 9\n",
    )
    result = ws.run("bulk", str(failover))
    assert_clean(result, 2)
    assert _one_error(result.stderr).startswith(
        f"cmdctl: {failover}:4:19: bar-tv-2: select.input has no option 'HDMI 9'"
    )
    assert site.journal_bytes() == before


CONDITIONS = """\
name: conditions
targets: tvs
steps:
  - name: power
    switch.tv_power: on
    wait_until: {WAIT, timeout: 5s}
  - name: volume
    number.volume: 20
    when: {WHEN}
"""


def test_when_and_wait_until_entities_are_checked_against_the_cache(site: Site) -> None:
    """A typo in a condition's entity, or a select option it could never show, is refused at
    its place while the devices are away, as a command's is."""
    ws = site.ws
    assert_clean(ws.run("devices", "probe"), 0)
    site.stop()
    before = site.journal_bytes()

    def bulk(wait: str, when: str) -> str:
        text = CONDITIONS.replace("WAIT", wait).replace("WHEN", when)
        result = ws.run("bulk", str(ws.playbook("c.yml", text)))
        assert_clean(result, 2 if result.returncode else 0)
        return result.stderr if result.returncode else "queued"

    where = ws.playbook("c.yml", "")
    assert bulk("switch.tv_power: on", "switch.tv_powr: on").startswith(
        f"cmdctl: {where}:9:12: bar-tv-1: when: no switch 'tv_powr' (did you mean "
        "switch.tv_power?) (hint: checked against bar-tv-1's cached entity list"
    )
    assert bulk("select.input: HDMI 9", "switch.tv_power: on").startswith(
        f"cmdctl: {where}:6:18: bar-tv-1: wait_until: select.input has no option 'HDMI 9' "
        "(options: HDMI 1, HDMI 2, Cable) (hint: checked against"
    )
    assert site.journal_bytes() == before  # byte for byte
    assert bulk("select.input: HDMI 2", "switch.tv_power: on") == "queued"


def test_without_a_cache_commands_are_queued_and_checked_on_connect(site: Site) -> None:
    ws = site.ws
    site.stop()
    result = ws.invoke("send", "bar-tv-1", "switch.tv_powr", "on", "--queue")
    assert_clean(result, 0)
    assert "queued as" in result.stdout


def test_a_changed_firmware_is_rechecked_on_connect_and_its_cache_refreshed(site: Site) -> None:
    ws = site.ws
    assert_clean(ws.run("devices", "probe"), 0)
    old = json.loads(site.cache_file("bar-tv-1").read_text())
    specs = site.stop()
    # New firmware: "Cable" is gone, "HDMI 3" is new, and the build time says so.
    site.start(
        [
            replace(
                s,
                compilation_time=NEW_BUILD,
                entities=tuple(
                    replace(e, options=("HDMI 1", "HDMI 2", "HDMI 3"), initial="HDMI 1")
                    if e.kind == "select"
                    else e
                    for e in s.entities
                ),
            )
            for s in specs
        ]
    )
    hdmi3 = ws.playbook("hdmi3.yml", BAD_OPTION.replace("HDMI 9", "HDMI 3"))
    cable = ws.playbook("cable.yml", BAD_OPTION.replace("HDMI 9", "Cable"))
    # Nothing has connected since: the cache still holds the old list.
    refused = ws.run("bulk", str(hdmi3), "--limit", "bar-tv-1")
    assert_clean(refused, 2)
    assert "no option 'HDMI 3'" in refused.stderr
    assert "refresh it: cmdctl devices probe bar-tv-1" in refused.stderr
    assert_clean(ws.run("bulk", str(cable), "--limit", "bar-tv-1"), 0)

    drained = ws.run("drain", "--json")
    assert drained.returncode == 1, drained.stderr  # the new firmware refuses "Cable"
    assert "select.input has no option 'Cable' (options: HDMI 1, HDMI 2, HDMI 3)" in (
        drained.stderr
    )
    assert site.fleet is not None
    tv1 = site.fleet.fleet.device("bar-tv-1")
    assert [r.selector for r in tv1.received if r.accepted] == ["switch.tv_power"]

    new = json.loads(site.cache_file("bar-tv-1").read_text())
    assert old["firmware"]["compilation_time"] != NEW_BUILD
    assert new["firmware"]["compilation_time"] == NEW_BUILD
    assert new["hash"] != old["hash"]
    select = next(e for e in new["entities"] if e["$type"] == "SelectInfo")
    assert select["options"] == ["HDMI 1", "HDMI 2", "HDMI 3"]
    assert_clean(ws.run("bulk", str(hdmi3), "--limit", "bar-tv-1"), 0)


def test_devices_ls_shows_firmware_cached_entities_and_last_seen(site: Site) -> None:
    ws = site.ws
    before = ws.invoke("devices", "ls")
    assert_clean(before, 0)
    assert before.stdout.splitlines()[0].split() == [
        "device", "address", "encrypted", "groups", "timeout", "last", "seen", "firmware",
        "entities", "last", "outcome",
    ]  # fmt: skip
    assert row_of(before.stdout, "bar-tv-1").split()[-4:] == ["never", "-", "-", "-"]

    assert_clean(ws.invoke("devices", "probe", "bar-tv-1"), 0)
    after = ws.invoke("devices", "ls")
    row = row_of(after.stdout, "bar-tv-1")
    assert " ago " in row and " 2026.10.0 " in row and " 6 +2 actions " in row
    assert row_of(after.stdout, "bar-tv-2").split()[-4:] == ["never", "-", "-", "-"]

    data = {d["name"]: d for d in json.loads(ws.invoke("devices", "ls", "--json").stdout)}
    tv1, tv2 = data["bar-tv-1"], data["bar-tv-2"]
    assert tv1["firmware"] == "2026.10.0"
    assert (tv1["cache"]["entities"], tv1["cache"]["actions"]) == (6, 2)
    assert tv1["cache"]["compilation_time"] == "2026-11-23 12:00:00 +0000"
    assert tv1["last_seen"] == tv1["cache"]["seen_at"]
    assert (tv2["firmware"], tv2["cache"], tv2["last_seen"]) == (None, None, None)


def test_devices_entities_cached_works_offline(site: Site) -> None:
    ws = site.ws
    assert_clean(ws.invoke("devices", "entities", "bar-tv-1"), 0)
    site.stop()
    result = ws.run("devices", "entities", "bar-tv-1", "--cached")
    assert_clean(result, 0)
    assert "options: HDMI 1, HDMI 2, Cable" in row_of(result.stdout, "select.input")
    assert "action.send_tv_command" in result.stdout
    assert result.stdout.splitlines()[0].split() == ["selector", "name", "details"]
    assert "6 entities, 2 actions (cached, built 2026-11-23 12:00:00 +0000" in result.stderr

    data = json.loads(ws.invoke("devices", "entities", "bar-tv-1", "--cached", "--json").stdout)
    assert data["cached"]["compilation_time"] == "2026-11-23 12:00:00 +0000"
    select = next(e for e in data["entities"] if e["selector"] == "select.input")
    assert select["options"] == ["HDMI 1", "HDMI 2", "Cable"] and "state" not in select

    missing = ws.invoke("devices", "entities", "bar-tv-2", "--cached")
    assert_clean(missing, 2)
    assert _one_error(missing.stderr) == (
        f"cmdctl: no cached entity list for bar-tv-2 in {ws.journal / 'entities'} "
        "(hint: connect once while it is online: cmdctl devices probe bar-tv-2)"
    )


def test_an_unreadable_cache_is_named_and_ignored(site: Site) -> None:
    ws = site.ws
    assert_clean(ws.invoke("devices", "probe"), 0)
    site.cache_file("bar-tv-2").write_text("{damaged")
    result = ws.invoke("bulk", str(ws.playbook("typo.yml", TYPO)), "--limit", "bar-tv-2")
    assert_clean(result, 0)  # no usable list: queued, and checked on connect as before
    assert "ignoring the entity cache of bar-tv-2" in result.stderr
    assert "damaged" in result.stderr
