"""Issue 15, section 4: `at:` / `--at` as people say it, past times refused, `bulk` saying when
its batch is due, and `send --at / --expires / --attempts`. The zone is Europe/Berlin whatever
the machine's; the clock is read around each command and the answer checked against both."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cmdctl.core.timespec import parse_time
from tests.cli.helpers import Workspace, assert_clean, three_tvs, volume_playbook
from tests.localzone import local_zone

BERLIN = ZoneInfo("Europe/Berlin")
BATCH_RE = re.compile(r"queued batch ([0-9A-Z]{26})")


@pytest.fixture
def ws(workspace: Workspace) -> Iterator[Workspace]:
    """The workspace, with this process and the commands it runs in Europe/Berlin."""
    workspace.env["TZ"] = "Europe/Berlin"
    with local_zone("Europe/Berlin"):
        yield workspace


def _entries(ws: Workspace, *options: str) -> list[dict[str, object]]:
    rows = json.loads(ws.invoke("queue", "ls", "--json", *options).stdout)
    return [json.loads(ws.invoke("queue", "show", row["id"], "--json").stdout) for row in rows]


def _journal_bytes(ws: Workspace) -> bytes:
    return (ws.journal / "journal.jsonl").read_bytes()


def test_at_a_clock_time_queues_for_the_next_one(ws: Workspace) -> None:
    pb = ws.playbook("six.yml", volume_playbook(1, targets="tv-1,tv-2") + 'at: "18:00"\n')
    pb.write_text(pb.read_text() + 'expires: "+1h"\n')
    before = time.time()
    result = ws.invoke("bulk", str(pb))
    after = time.time()
    assert_clean(result, 0)
    entries = _entries(ws)
    assert len(entries) == 2
    not_before = entries[0]["not_before"]
    assert isinstance(not_before, float)
    assert {e["not_before"] for e in entries} == {not_before}
    wall = datetime.fromtimestamp(not_before, BERLIN)
    assert (wall.hour, wall.minute, wall.second) == (18, 0, 0)
    assert before <= not_before <= after + 25 * 3600  # the next 18:00, not a later one
    assert not_before in {parse_time("18:00", now=t, tz=BERLIN) for t in (before, after)}
    assert entries[0]["expires"] == not_before + 3600
    # bulk says when, in local time
    last = result.stdout.strip().splitlines()[-1]
    day = "today" if wall.date() == datetime.fromtimestamp(after, BERLIN).date() else "tomorrow"
    assert re.fullmatch(rf"due 18:00 {day} \(in \d+h \d\dm\), expires 19:00 {day}", last), last
    assert BATCH_RE.search(result.stdout.splitlines()[0])


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('at: "2020-01-01T18:00:00+01:00"', "at: time '2020-01-01T18:00:00+01:00' is in the past"),
        ('at: "today 00:00"', "at: time 'today 00:00' is in the past"),
        ('expires: "2020-01-01 00:00"', "expires: time '2020-01-01 00:00' is in the past"),
    ],
)
def test_a_past_time_in_a_playbook_is_refused_at_its_location(
    ws: Workspace, line: str, needle: str
) -> None:
    assert_clean(ws.invoke("bulk", str(ws.playbook("ok.yml", volume_playbook(1)))), 0)
    journal = _journal_bytes(ws)
    pb = ws.playbook("past.yml", volume_playbook(1) + line + "\n")
    result = ws.invoke("bulk", str(pb))
    assert_clean(result, 2)
    (said,) = result.stderr.strip().splitlines()
    column = line.index('"') + 1
    assert said.startswith(f"cmdctl: {pb}:6:{column}: {needle} ("), said
    assert "(hint: " in said
    assert _journal_bytes(ws) == journal


def test_a_past_at_option_is_refused_and_now_is_fine(ws: Workspace) -> None:
    pb = ws.playbook("v.yml", volume_playbook(1, targets="tv-1"))
    result = ws.invoke("bulk", str(pb), "--at", "2020-01-01T00:00")
    assert_clean(result, 2)
    assert result.stderr.startswith("cmdctl: --at: time '2020-01-01T00:00' is in the past (")
    assert not (ws.journal / "journal.jsonl").exists()
    result = ws.invoke("bulk", str(pb), "--at", "now")
    assert_clean(result, 0)
    assert result.stdout.strip().splitlines()[-1] == "due now"
    before = time.time()
    result = ws.invoke("bulk", str(pb), "--at", "tomorrow 07:30", "--json")
    after = time.time()
    assert_clean(result, 0)
    summary = json.loads(result.stdout)
    wall = datetime.fromtimestamp(summary["not_before"], BERLIN)
    assert (wall.hour, wall.minute) == (7, 30)
    tomorrow = {
        (datetime.fromtimestamp(t, BERLIN) + timedelta(days=1)).date() for t in (before, after)
    }
    assert wall.date() in tomorrow
    assert summary["expires"] is None


def test_send_at_later_queues_without_connecting(tmp_path: Path) -> None:
    with three_tvs(tmp_path) as (running, ws):
        before = time.time()
        result = ws.invoke("send", "bar-tv-1", "switch.tv_power", "off", "--at", "+1h", "--json")
        assert_clean(result, 0)
        sent = json.loads(result.stdout)
        assert sent["status"] == "queued" and sent["error"] is None
        assert before + 3600 <= sent["not_before"] <= time.time() + 3600
        (entry,) = _entries(ws)
        assert (entry["id"], entry["state"], entry["not_before"]) == (
            sent["id"],
            "pending",
            sent["not_before"],
        )
        said = ws.invoke("send", "bar-tv-2", "switch.tv_power", "off", "--at", "+2h")
        assert_clean(said, 0)
        assert re.fullmatch(
            r"queued as [0-9A-Z]{26}, due \d\d:\d\d:\d\d (today|tomorrow) \(in (2h 00m|1h 59m)\)",
            said.stdout.strip(),
        ), said.stdout
        for name in ("bar-tv-1", "bar-tv-2"):
            device = running.fleet.device(name)
            assert (device.connections_made, device.received) == (0, [])
        # without --at, the same send goes to the device at once
        assert_clean(ws.invoke("send", "bar-tv-3", "switch.tv_power", "off"), 0)
        assert running.fleet.device("bar-tv-3").connections_made > 0


def test_send_expires_and_attempts_land_in_the_entry(ws: Workspace) -> None:
    result = ws.invoke(
        "send", "tv-1", "number.volume", "5", "--at", "+1h", "--expires", "+30m",
        "--attempts", "2", "--json",
    )  # fmt: skip
    assert_clean(result, 0)
    sent = json.loads(result.stdout)
    assert sent["max_attempts"] == 2
    assert sent["expires"] == sent["not_before"] + 1800  # counted from the start
    (entry,) = _entries(ws)
    assert (entry["max_attempts"], entry["expires"], entry["not_before"]) == (
        2,
        sent["expires"],
        sent["not_before"],
    )
    said = ws.invoke("send", "tv-2", "number.volume", "5", "--queue", "--expires", "+10m")
    assert_clean(said, 0)
    assert re.fullmatch(
        r"queued as [0-9A-Z]{26}, due now, expires \d\d:\d\d:\d\d (today|tomorrow)",
        said.stdout.strip(),
    ), said.stdout


def test_send_with_one_attempt_is_not_queued_when_the_device_is_away(ws: Workspace) -> None:
    """Nothing listens on the workspace's ports: the direct try was the only one allowed."""
    result = ws.invoke("send", "tv-1", "number.volume", "5", "--attempts", "1", "--json")
    assert_clean(result, 4)
    sent = json.loads(result.stdout)
    assert (sent["status"], sent["max_attempts"]) == ("unreachable", 1)
    assert _entries(ws) == []  # nothing pending
    (entry,) = _entries(ws, "--state", "failed")
    assert (entry["id"], entry["attempts"], entry["max_attempts"]) == (sent["id"], 1, 1)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--at", "+1h", "--now"],
            "cmdctl: --now and --at contradict each other: the command is due",
        ),
        (["--at", "2020-01-01T00:00"], "cmdctl: --at: time '2020-01-01T00:00' is in the past ("),
        (["--expires", "2020-01-01"], "cmdctl: --expires: time '2020-01-01' is in the past ("),
        (
            ["--at", "+2h", "--expires", "today 00:00"],
            "cmdctl: --expires: time 'today 00:00' is in",
        ),
        (["--at", "+2h", "--expires", "+0s"], "cmdctl: --expires +0s is not after the start time"),
        (["--at", "fri"], "cmdctl: --at: bad time 'fri'"),
        (["--attempts", "0"], "cmdctl: --attempts must be 1 to 1,000, not 0"),
    ],
)
def test_bad_send_times_are_input_errors_and_write_nothing(
    ws: Workspace, args: list[str], needle: str
) -> None:
    result = ws.invoke("send", "tv-1", "number.volume", "5", *args)
    assert_clean(result, 2)
    (said,) = result.stderr.strip().splitlines()
    assert said.startswith(needle), said
    assert "(hint: " in said
    assert not (ws.journal / "journal.jsonl").exists()
