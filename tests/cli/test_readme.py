"""The README and the CLI stay in step: every command the README shows exists with the options
it uses, every command's --help has an example, and the README's two first commands are true."""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import pytest

from tests.cli.helpers import invoke

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[list[str]]:
    """Every `cmdctl ...` invocation in the README's code blocks and inline code."""
    found: list[list[str]] = []
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    inline = re.findall(r"`(cmdctl [^`]+)`", README)
    for text in [*blocks, *inline]:
        lines = text.splitlines()
        if any(line.startswith("$ ") for line in lines):  # a console block: only the prompts
            lines = [line for line in lines if line.startswith("$ ")]
        for line in lines:
            line = line.strip().removeprefix("$ ")
            line = re.sub(r"^\*/5 \* \* \* \* ", "", line)  # the cron line
            for part in re.split(r"&&|;|\|", line):
                part = part.split("#")[0].strip().rstrip("&").strip()
                if part.startswith(("cmdctl ", ".venv/bin/cmdctl ")):
                    try:
                        words = shlex.split(part)
                    except ValueError:
                        continue
                    found.append(words[1:])
    return found


@cache
def help_text(*path: str) -> str:
    result = invoke(
        *path,
        "--help",
        env={"COLUMNS": "200", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    assert result.returncode == 0, (path, result.stderr)
    return result.stdout


GROUPS = {"queue", "journal", "devices", "inventory", "scene"}


def command_path(words: list[str]) -> tuple[str, ...]:
    if words and words[0] in GROUPS and len(words) > 1:
        return (words[0], words[1])
    return (words[0],) if words else ()


def all_commands() -> list[tuple[str, ...]]:
    top = help_text()
    names = re.findall(r"^  ([a-z][a-z-]+)\s", top.split("Commands:")[1], flags=re.M)
    out: list[tuple[str, ...]] = []
    for name in names:
        if name in GROUPS:
            sub = help_text(name)
            subs = re.findall(r"^  ([a-z][a-z-]+)\s", sub.split("Commands:")[1], flags=re.M)
            out += [(name, s) for s in subs]
        else:
            out.append((name,))
    return out


def test_readme_has_the_two_first_commands() -> None:
    first_screen = README.split("---")[0]
    assert "cmdctl demo" in first_screen
    assert "<!-- test-command -->" in first_screen
    test_cmd = re.search(r"<!-- test-command -->\n```sh\n(.*?)\n```", first_screen, flags=re.S)
    assert test_cmd and test_cmd.group(1).strip().endswith(".venv/bin/pytest")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci  # CI runs exactly the README's test command


def test_readme_commands_exist_with_their_options() -> None:
    commands = readme_commands()
    assert len(commands) >= 15, commands
    for words in commands:
        if words[0].startswith("-"):
            text = help_text()
        else:
            path = command_path(words)
            text = help_text(*path)
        for word in words:
            if word.startswith("--"):
                option = word.split("=")[0]
                assert option in text, (words, option)


@pytest.mark.parametrize("path", all_commands())
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    text = help_text(*path)
    assert "Example: cmdctl " + " ".join(path) in text, path
    assert "Traceback" not in text


def test_every_command_is_in_the_readme() -> None:
    shown = {command_path(words) for words in readme_commands()}
    missing = [p for p in all_commands() if p not in shown and (p[0],) not in shown]
    assert missing == [], f"commands the README never shows: {missing}"
