"""`render.line` off a terminal writes what rich would, without making a console (or importing
rich: ~20 ms of every `send`). Compared here with what rich itself writes for the same line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cmdctl.cli import render


class Pipe(io.StringIO):
    """A stdout that is not a terminal; counts flushes (rich flushes every print)."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.fixture(autouse=True)
def fresh_consoles() -> Iterator[None]:
    render._consoles.clear()
    yield
    render._consoles.clear()


def written(
    stream: str, write: Callable[[str], object], message: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, int]:
    """What `write(message)` puts on `sys.<stream>` (a pipe), and how often it flushed it."""
    out = Pipe()
    monkeypatch.setattr(sys, stream, out)
    write(message)
    return out.getvalue(), out.flushes


def by_rich(message: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    return written("stdout", lambda m: render.stdout().print(m, markup=False), message,
                   monkeypatch)


def by_line(message: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    return written("stdout", render.line, message, monkeypatch)


def not_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No environment that makes rich take a pipe for a terminal."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
@example("bar-tv-1: switch.tv_power confirmed in 0.01s")
@example("queued as 01JABC, due tomorrow 07:30")
@example("tv:1 :tv: :smile: a:b:c")
@example("tab\there and \x1b[2J a\u202eb\r\n two lines\n")
@example("[bold]not markup[/bold] " + "x" * 400)
def test_a_line_off_a_terminal_is_what_rich_writes(message: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        not_forced(monkeypatch)
        assert by_line(message, monkeypatch) == by_rich(message, monkeypatch)


def test_a_plain_line_makes_no_console_and_an_emoji_code_goes_to_rich(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    assert by_line("bar-tv-1: switch.tv_power confirmed in 0.01s", monkeypatch)[0].endswith(
        "0.01s\n"
    )
    assert render._consoles == {}
    written, _ = by_line("rack :tv: 1", monkeypatch)
    assert written == "rack \U0001f4fa 1\n" and render._consoles  # rich's, as before


def test_printing_a_plain_line_does_not_import_rich() -> None:
    code = (
        "import sys\n"
        "from cmdctl.cli import render\n"
        "render.line('bar-tv-1: switch.tv_power confirmed in 0.01s')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout == "bar-tv-1: switch.tv_power confirmed in 0.01s\n[]\n"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
@example("cmdctl drain: 10,000 commands on 100 devices in 0.5s: 100 confirmed, 9,900 delivered")
@example("tv:1 :tv: a\tb \x1b[2J\r\n")
def test_an_info_line_off_a_terminal_is_what_rich_writes_to_stderr(message: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        not_forced(monkeypatch)
        by_rich = written(
            "stderr", lambda m: render.stderr().print(m, markup=False), message, monkeypatch
        )
        assert written("stderr", render.info, message, monkeypatch) == by_rich


@pytest.mark.parametrize("forced", [None, "FORCE_COLOR", "TTY_COMPATIBLE"])
def test_stderr_is_a_terminal_exactly_when_rich_says_so(
    monkeypatch: pytest.MonkeyPatch, forced: str | None
) -> None:
    not_forced(monkeypatch)
    if forced is not None:
        monkeypatch.setenv(forced, "1")
    monkeypatch.setattr(sys, "stderr", Pipe())
    said = render.stderr_is_terminal()
    assert said == render.stderr().is_terminal
    assert said is (forced is not None)


def test_a_drain_off_a_terminal_does_not_import_rich(tmp_path: Path) -> None:
    # What a cron drain runs at its end: the observer's choice and the report.
    code = (
        "import sys\n"
        "from cmdctl.cli import exec_cmds\n"
        "from cmdctl.drain.totals import Totals\n"
        "observer, _ = exec_cmds._observer(False, False, 'drain')\n"
        "totals = Totals()\n"
        "totals.tally('tv').add('delivered', 3)\n"
        "exec_cmds.report('drain', totals, json_out=False, quiet=False, tty=False)\n"
        "print(type(observer).__name__, sorted(m for m in sys.modules if m.startswith('rich')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
        env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
    )
    assert proc.stdout == "Silent []\n"
    assert proc.stderr.startswith("cmdctl drain: 3 commands on 1 device")
