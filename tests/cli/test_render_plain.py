"""`render.line` off a terminal writes what rich would, without making a console (or importing
rich: ~20 ms of every `send`). Compared here with what rich itself writes for the same line."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator

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


def by_rich(message: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    out = Pipe()
    monkeypatch.setattr(sys, "stdout", out)
    render.stdout().print(message, markup=False)
    return out.getvalue(), out.flushes


def by_line(message: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    out = Pipe()
    monkeypatch.setattr(sys, "stdout", out)
    render.line(message)
    return out.getvalue(), out.flushes


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
@example("bar-tv-1: switch.tv_power confirmed in 0.01s")
@example("queued as 01JABC, due tomorrow 07:30")
@example("tv:1 :tv: :smile: a:b:c")
@example("tab\there and \x1b[2J a\u202eb\r\n two lines\n")
@example("[bold]not markup[/bold] " + "x" * 400)
def test_a_line_off_a_terminal_is_what_rich_writes(message: str) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
        monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
        monkeypatch.delenv("TTY_INTERACTIVE", raising=False)
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
