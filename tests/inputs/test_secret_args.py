"""`!secret NAME` in playbook values and `send` VALUEs: where it may stand, what is stored, how
secrets.yaml is read, and how values are scrubbed out of messages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cmdctl.core import secretref
from cmdctl.core.errors import DeviceRejected, InputError
from cmdctl.core.secretref import Scrubber
from cmdctl.inputs.commands import parse_cli_value
from cmdctl.inputs.playbook import load_playbook
from cmdctl.inputs.secretfile import SecretsFile

Write = Callable[[str, str], Path]
HEAD = "name: t\ntargets: all\nsteps:\n"
HINT = "a secret can be a lock's code, a text value or an action's data argument"


@pytest.mark.parametrize(
    ("step", "args"),
    [
        (
            "  - lock.front: {command: unlock, code: !secret pin}\n",
            {"command": "unlock", "code": {"!secret": "pin"}},
        ),
        ("  - text.note: !secret pin\n", {"value": {"!secret": "pin"}}),
        (
            "  - action: open_gate\n    data: {pin: !secret pin, box: 2}\n",
            {"data": {"pin": {"!secret": "pin"}, "box": 2}},
        ),
    ],
)
def test_a_secret_is_stored_as_a_reference_with_its_place(
    write: Write, step: str, args: dict[str, object]
) -> None:
    book = load_playbook(write("p.yml", HEAD + step))
    (only,) = book.steps
    assert dict(only.command.args) == args
    ((name, loc),) = only.secrets
    assert name == "pin" and loc.line == 4 + step.count("\n") - 1
    assert step.splitlines()[-1][loc.column - 1 :].startswith("!secret pin")


@pytest.mark.parametrize(
    ("step", "where", "message"),
    [
        (
            "  - switch.power: !secret pin\n",
            (4, 19),
            "switch.power: !secret pin cannot be a switch value",
        ),
        (
            "  - lock.front: !secret pin\n",
            (4, 17),
            "lock.front: !secret pin cannot be a lock value",
        ),
        (
            "  - light.l: {effect: !secret pin}\n",
            (4, 23),
            "light.l: !secret pin cannot be effect of a light",
        ),
        (
            "  - action: a\n    data: {codes: [!secret pin]}\n",
            (5, 20),
            "action.a: !secret pin cannot be in a list",
        ),
    ],
)
def test_a_secret_where_none_fits_is_refused_where_it_is_written(
    write: Write, step: str, where: tuple[int, int], message: str
) -> None:
    with pytest.raises(InputError) as info:
        load_playbook(write("p.yml", HEAD + step))
    err = info.value
    assert (err.line, err.column) == where
    assert err.message == message
    assert err.hint == HINT


def test_a_secret_in_a_key_that_is_no_value_is_refused(write: Write) -> None:
    with pytest.raises(InputError) as info:
        load_playbook(write("p.yml", HEAD + "  - name: !secret pin\n    switch.power: on\n"))
    assert info.value.message == "step name must be a string, not !secret pin"


def test_a_reference_written_over_lines_is_named_on_one_line(write: Write) -> None:
    # Found by the fuzz test: a whole document tagged `!secret`, its "name" a block of lines.
    with pytest.raises(InputError) as info:
        load_playbook(write("p.yml", "!secret ---\n\n- "))
    assert info.value.message == "a playbook must be a mapping, not !secret '---\\n-'"
    assert "\n" not in info.value.one_line()


def test_a_mapping_that_looks_like_a_reference_is_no_reference(write: Write) -> None:
    # Only the tag makes a reference: written as data, the marker is refused like any mapping.
    with pytest.raises(InputError) as info:
        load_playbook(write("p.yml", HEAD + '  - text.note: {"!secret": pin}\n'))
    assert "a text value must be text, not a mapping" in info.value.message


def test_send_carries_a_reference_by_name() -> None:
    command = parse_cli_value("lock", "front", "{command: unlock, code: !secret pin}")
    assert command.args == {"command": "unlock", "code": {"!secret": "pin"}}
    assert parse_cli_value("text", "note", "!secret pin").args == {"value": {"!secret": "pin"}}
    assert parse_cli_value("text", "note", "'!secret pin'").args == {"value": "!secret pin"}
    with pytest.raises(InputError, match="cannot be a select value"):
        parse_cli_value("select", "input", "!secret pin")


def test_secrets_file_values_are_text_as_written(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text('octal: 0123\nplain: 1234\nquoted: "00 12"\nword: on\nlist: [1, 2]\n')
    secrets = SecretsFile(path)
    # YAML reads 0123 as octal 83 and on as true; a PIN is what was typed.
    assert [secrets.value(n) for n in ("octal", "plain", "quoted", "word")] == [
        "0123",
        "1234",
        "00 12",
        "on",
    ]
    with pytest.raises(InputError) as info:
        secrets.value("list")
    assert info.value.one_line() == (
        f"{path}:5:7: secret 'list' must be text or a number, not a list "
        "(hint: write it as `name: value` (quote it if it has special characters))"
    )


def test_secrets_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    secrets = SecretsFile(path)
    with pytest.raises(InputError, match=f"secret 'pin' needs {path}, which does not exist"):
        secrets.value("pin")
    path.write_text("pin: '1111'\n")
    assert secrets.value("pin") == "1111"
    path.write_text("pim: '22222'\n")
    with pytest.raises(InputError) as info:
        secrets.value("pin")
    assert info.value.message == f"secret 'pin' is not in {path}"
    assert info.value.hint is not None and "did you mean 'pim'?" in info.value.hint


def test_resolve_replaces_references_and_scrubs_every_form_of_the_value() -> None:
    values = {"pin": 'a"b\\c'}
    args = {"command": "unlock", "code": {"!secret": "pin"}, "data": {"x": [{"!secret": "pin"}]}}
    resolved, scrub = secretref.resolve(args, values.__getitem__)
    assert resolved == {"command": "unlock", "code": 'a"b\\c', "data": {"x": ['a"b\\c']}}
    assert secretref.names(args) == ("pin",)
    raw, as_repr, as_json = 'a"b\\c', repr('a"b\\c'), '"a\\"b\\\\c"'
    assert scrub(f"got {raw}, {as_repr}, {as_json}") == "got ***, '***', \"***\""


def test_a_scrubbed_error_keeps_its_kind_and_loses_a_chain_that_shows_the_value() -> None:
    scrub = Scrubber(("s3cret",))
    try:
        try:
            raise ValueError("bad code s3cret")
        except ValueError as inner:
            raise DeviceRejected("door", "lock.front: code s3cret refused") from inner
    except DeviceRejected as caught:
        err = scrub.error(caught)
    assert isinstance(err, DeviceRejected)
    assert (err.message, err.reason) == (
        "door: lock.front: code *** refused",
        "lock.front: code *** refused",
    )
    assert str(err) == err.one_line() == "door: lock.front: code *** refused"
    assert err.__cause__ is None and err.__suppress_context__
