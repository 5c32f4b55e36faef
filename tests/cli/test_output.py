"""What the CLI prints: true lines, safe text, and what happens when stdout goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.helpers import Workspace, volume_playbook


def _run(workspace: Workspace, *args: str, stdout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmdctl", *args],
        cwd=workspace.root,
        env=workspace.env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )


def _queued_batches(workspace: Workspace) -> list[str]:
    lines = (workspace.journal / "journal.jsonl").read_text().splitlines()
    return sorted({json.loads(line)["batch"] for line in lines if '"queued"' in line})


def test_bulk_to_a_full_disk_says_the_batch_is_queued(workspace: Workspace) -> None:
    pb = workspace.playbook("pb.yml", volume_playbook(2))
    with open("/dev/full", "w") as full:
        proc = _run(workspace, "bulk", str(pb), stdout=full.fileno())
    batches = _queued_batches(workspace)
    assert len(batches) == 1
    assert proc.returncode == 74, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "internal error" not in proc.stderr
    assert "No space left on device" in proc.stderr
    assert f"queued batch {batches[0]}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_status_json_to_a_full_disk_is_not_internal(workspace: Workspace) -> None:
    with open("/dev/full", "w") as full:
        proc = _run(workspace, "status", "--json", stdout=full.fileno())
    assert proc.returncode == 74, proc.stderr
    assert "could not write the output" in proc.stderr
    assert "internal error" not in proc.stderr


def test_a_closed_pipe_is_quiet_and_keeps_the_commands_code(workspace: Workspace) -> None:
    pb = workspace.playbook("pb.yml", volume_playbook(2))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before cmdctl writes a byte
    try:
        bulk = _run(workspace, "bulk", str(pb), stdout=write)
        status = _run(workspace, "status", stdout=write)
        json_status = _run(workspace, "status", "--json", stdout=write)
    finally:
        os.close(write)
    assert (bulk.returncode, bulk.stderr) == (0, "")
    assert len(_queued_batches(workspace)) == 1
    assert (status.returncode, status.stderr) == (0, "")
    assert (json_status.returncode, json_status.stderr) == (0, "")


def test_queue_ls_into_head_exits_0(workspace: Workspace) -> None:
    pb = workspace.playbook("pb.yml", volume_playbook(100))  # 1,000 rows: more than a pipe holds
    assert workspace.invoke("bulk", str(pb), "-q").returncode == 0
    proc = subprocess.run(
        f"{sys.executable} -m cmdctl queue ls -n 1000 | head -1; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        cwd=workspace.root,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("status", "--health", "--max-failure-rate", "2"), "--max-failure-rate"),
        (("status", "--health", "--max-failure-rate", "-1"), "--max-failure-rate"),
        (("status", "--health", "--max-failure-rate", "nan"), "--max-failure-rate"),
        (("status", "--health", "--max-age", "-1m"), "--max-age"),
        (("history", "-n", "-1"), "--last"),
        (("queue", "ls", "-n", "0"), "--last"),
    ],
)
def test_nonsense_option_values_are_bad_input(
    workspace: Workspace, args: tuple[str, ...], needle: str
) -> None:
    result = workspace.invoke(*args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"cmdctl: {needle}: ") and "(hint: " in line, line


ESCAPES = 'name: "\\e]0;pwned\\a\\e[31mred [/] [bold]x"\ntargets: tvs\nsteps:\n'
ESCAPES += '  - name: "step \\e[2J [/]"\n    number.volume: 3\n'


def test_terminal_escapes_from_a_playbook_are_shown_escaped(workspace: Workspace) -> None:
    pb = workspace.playbook("esc.yml", ESCAPES)
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    (entry,) = [
        json.loads(line)["id"]
        for line in (workspace.journal / "journal.jsonl").read_text().splitlines()[:1]
    ]
    for args in (
        ("status",),
        ("queue", "ls"),
        ("queue", "show", entry),
        ("bulk", str(pb), "--check"),
        ("status", "01XYZ\x1b[2J"),
    ):
        result = workspace.invoke(*args)
        assert result.returncode in (0, 2), (args, result)
        shown = result.stdout + result.stderr
        assert "\x1b" not in shown and "\x07" not in shown, (args, shown)
        assert "\\x1b" in shown or args == ("queue", "ls"), (args, shown)
    assert "\\x1b]0;pwned\\x07\\x1b[31mred [/] [bold]x" in workspace.invoke("status").stdout


def test_the_live_view_escapes_playbook_names() -> None:
    import io
    from dataclasses import replace

    from rich.console import Console

    from cmdctl.cli.progress import LiveView
    from tests.journal.builders import entry

    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    pending = replace(entry(batch="01ABCDEF"), playbook="\x1b]0;pwned\x07 [/]")
    with LiveView(console) as view:
        view.planned([pending])
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b]0;" not in text and "\x07" not in text
    assert "\\x1b]0;pwned\\x07 [/]" in text


def test_progress_bars_name_a_batch_by_a_prefix_status_finds() -> None:
    import io
    from dataclasses import replace

    from rich.console import Console

    from cmdctl.cli.progress import LiveView
    from tests.journal.builders import entry

    batch = "01M943BC482W69GASY5SF8WP9G"
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    with LiveView(console) as view:
        view.planned([replace(entry(batch=batch), playbook="game night")])
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "game night 01M943BC482W" in text


UNEVEN = """name: uneven
targets: tvs
steps:
  - name: all of them
    number.volume: 1
  - name: just one
    targets: tv-1
    number.volume: 2
  - name: press
    targets: tv-2
    mode: immediate
    button.identify:
"""


def test_validate_and_bulk_say_what_was_really_expanded(workspace: Workspace) -> None:
    pb = workspace.playbook("uneven.yml", UNEVEN)
    validate = workspace.invoke("validate", str(pb))
    assert validate.stdout == (
        f"ok: {pb}: 12 commands (3 steps over 10 devices): 1 immediate, 11 queued\n"
    ), validate
    check = workspace.invoke("bulk", str(pb), "--check")
    assert check.stdout.endswith("\n12 commands (3 steps over 10 devices)\n"), check
    one = workspace.playbook("one.yml", "name: one\ntargets: tv-1\nsteps:\n  - number.volume: 1\n")
    assert "1 command (1 step over 1 device)" in workspace.invoke("validate", str(one)).stdout
    queued = workspace.invoke("bulk", str(one))
    assert queued.stdout.endswith(": 1 command (1 step over 1 device)\ndue now\n"), queued


def test_the_run_summary_says_which_skipped_entries_are_still_queued() -> None:
    from cmdctl.cli.progress import summary_line
    from cmdctl.drain.totals import SKIPPED, Totals

    finished = Totals()
    finished.tally("tv-1").add(SKIPPED, 8)  # a prerequisite failed: skipped for good
    assert summary_line("drain", finished).endswith("8 skipped")
    assert "queued" not in summary_line("drain", finished)
    assert "on 1 device in" in summary_line("drain", finished)
    stopped = Totals(left=2, timed_out=True)
    stopped.tally("tv-1").add(SKIPPED, 3)
    line = summary_line("drain", stopped)
    assert line.endswith("2 left queued: out of time, 1 skipped"), line


def test_json_of_a_plan_that_was_not_queued_has_no_batch_id(workspace: Workspace) -> None:
    pb = workspace.playbook("pb.yml", volume_playbook(1))
    validate = json.loads(workspace.invoke("validate", str(pb), "--json").stdout)
    check = json.loads(workspace.invoke("bulk", str(pb), "--check", "--json").stdout)
    assert validate["batch"] is None and check["batch"] is None
    queued = json.loads(workspace.invoke("bulk", str(pb), "--json").stdout)
    assert _queued_batches(workspace) == [queued["batch"]]


def test_devices_sort_naturally_in_the_recap() -> None:
    import io

    from rich.console import Console

    from cmdctl.cli.progress import failure_lines, recap_table
    from cmdctl.core.natural import natural_key
    from cmdctl.drain.totals import FAILED, Totals

    names = ["bar-tv-10", "bar-tv-2", "Bar-tv-1", "bar-tv-01", "patio"]
    assert sorted(names, key=natural_key) == [
        "Bar-tv-1", "bar-tv-01", "bar-tv-2", "bar-tv-10", "patio"
    ]  # equal as numbers and case-insensitively: the text breaks the tie
    totals = Totals()
    for name in ("bar-tv-10", "bar-tv-2", "bar-tv-1"):
        totals.tally(name).add(FAILED)
        totals.tally(name).error = "rejected"
    order = ["bar-tv-1", "bar-tv-2", "bar-tv-10"]
    assert [line.split(":")[0] for line in failure_lines(totals)] == order
    assert [d["device"] for d in totals.as_dict()["devices"]] == order  # type: ignore[union-attr]
    console = Console(file=io.StringIO(), width=160)
    console.print(recap_table(totals))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert [line.split()[0] for line in text.splitlines()[1:]] == order


VALUES = """name: values
targets: tv-1
steps:
  - switch.tv_power: on
  - number.volume: 25
  - select.input: HDMI 1
  - light.backlight: {state: on, brightness: 0.4}
"""


def test_values_are_shown_as_a_playbook_writes_them(workspace: Workspace) -> None:
    pb = workspace.playbook("values.yml", VALUES)
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    listing = workspace.invoke("queue", "ls").stdout
    for text in (
        "switch.tv_power: on ",
        "number.volume: 25 ",
        "select.input: HDMI 1 ",
        "light.backlight: {state: on, brightness: 0.4} ",
    ):
        assert text in listing, (text, listing)
    plan = workspace.invoke("bulk", str(pb), "--check").stdout
    assert "{state: on, brightness: 0.4}" in plan and "'" not in plan and '"' not in plan
    light = next(line.split()[0] for line in listing.splitlines() if "light." in line)
    shown = workspace.invoke("queue", "show", light).stdout
    assert "args: {state: on, brightness: 0.4}\n" in shown, shown
    assert "idempotent: true\n" in shown, shown


def test_value_text() -> None:
    from cmdctl.cli.views import value_text

    assert value_text(True) == "on" and value_text(False, "state") == "off"
    assert value_text({"flag": True, "n": 2.0, "x": 0.5}) == "{flag: true, n: 2, x: 0.5}"
    assert value_text({"option": "on"}) == '{option: "on"}'  # YAML would read on as a bool
    assert value_text({"text": "a, b: c"}) == '{text: "a, b: c"}'
    assert value_text({"text": "206"}) == '{text: "206"}'
    assert value_text("HDMI 1") == "HDMI 1" and value_text([1, "a"]) == "[1, a]"


ERRORS = {
    "bar-tv-10": "select.input has no option 'HDMI 5' (options: HDMI 1, HDMI 2, Cable)",
    "patio-speaker-left": "gave up after 5 attempts: connection refused by 10.0.0.52:6053",
}


def _failed_entries(workspace: Workspace) -> None:
    import time
    from dataclasses import replace

    from cmdctl.core.model import Command
    from cmdctl.journal import events as ev
    from cmdctl.journal.store import Journal
    from tests.journal.builders import entry

    t = time.time() - 60
    events = []
    for device, error in ERRORS.items():
        failed = replace(
            entry(device=device, created=t), command=Command("select", "input", {"option": "x"})
        )
        events += [
            ev.queued(failed, t),
            ev.started(failed.id, t + 1, attempt=1, run="r"),
            ev.failed(failed.id, t + 2, error=f"{device}: {error}", kind="rejected"),
        ]
    Journal(workspace.journal).append(events)


def _readable_at_80(text: str, *, commands: bool = True) -> None:
    assert all(len(line) <= 80 for line in text.splitlines()), text
    words = text.split()
    for device, error in ERRORS.items():
        assert device in words, (device, text)
        assert set(error.split()) <= set(words), (error, text)
    assert "select.input:" in words or not commands, text


def test_failed_entries_and_history_are_readable_on_80_columns(workspace: Workspace) -> None:
    _failed_entries(workspace)
    narrow = {"COLUMNS": "80"}
    _readable_at_80(workspace.invoke("queue", "ls", "--state", "failed", extra_env=narrow).stdout)
    _readable_at_80(workspace.invoke("history", extra_env=narrow).stdout)


def test_the_recap_is_readable_on_80_columns() -> None:
    import io

    from rich.console import Console

    from cmdctl.cli.progress import recap_table
    from cmdctl.drain.totals import CONFIRMED, FAILED, UNREACHABLE, Totals

    totals = Totals()
    for device, error in ERRORS.items():
        totals.tally(device).add(CONFIRMED, 4)
        totals.tally(device).add(FAILED if "HDMI" in error else UNREACHABLE)
        totals.tally(device).error = f"{device}: {error}"
        totals.tally(device).retried = 2
    console = Console(file=io.StringIO(), width=80)
    console.print(recap_table(totals, console.width))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    _readable_at_80(text, commands=False)
