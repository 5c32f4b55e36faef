"""The located YAML loader: locations, limits, aliases, tags and error mapping."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.inputs import yamlsrc
from cmdctl.inputs.yamlsrc import MapNode, Node, ScalarNode, SeqNode, load_file, load_text


def _error(text: str, **kwargs: object) -> InputError:
    with pytest.raises(InputError) as caught:
        load_text(text, "f.yml", **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_every_node_knows_where_it_is() -> None:
    root = load_text("a: 1\nb:\n  - x\n  - {c: on}\n", "f.yml")
    assert isinstance(root, MapNode)
    assert str(root.keys["b"]) == "f.yml:2:1"
    seq = root.items["b"]
    assert isinstance(seq, SeqNode)
    assert (seq.items[0].loc.line, seq.items[0].loc.column) == (3, 5)
    inner = seq.items[1]
    assert isinstance(inner, MapNode)
    assert str(inner.items["c"].loc) == "f.yml:4:9"
    assert root.plain == {"a": 1, "b": ["x", {"c": True}]}


def test_scalars_keep_their_text() -> None:
    root = load_text("t: 1:30\nq: '007'\nw: 2026-11-23T10:00:00Z\nn: ~\n", "f.yml")
    assert isinstance(root, MapNode)
    t = root.items["t"]
    assert isinstance(t, ScalarNode)
    assert (t.value, t.text) == (90, "1:30")  # YAML 1.1 reads 1:30 as 90; the text survives
    assert root.plain == {"t": 90, "q": "007", "w": "2026-11-23T10:00:00Z", "n": None}


def test_empty_document_is_none() -> None:
    assert load_text("# nothing\n", "f.yml") is None


def test_syntax_error_has_1_based_location() -> None:
    err = _error("a: 1\nb: [1, 2\nc: 3\n")
    assert err.file == "f.yml"
    assert err.line is not None and err.line >= 2
    assert err.message.startswith("YAML syntax error")


def test_tab_indentation_error_location() -> None:
    err = _error("a:\n\t- 1\n")
    assert (err.file, err.line) == ("f.yml", 2)


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    err = _error("name: a\nsteps: []\nname: b\n")
    assert (err.line, err.column) == (3, 1)
    assert err.message == "duplicate key 'name' (first at line 1)"


def test_only_string_keys() -> None:
    err = _error("1: a\n")
    assert "mapping keys must be strings" in err.message
    assert err.hint == "quote the key"
    assert "mapping keys must be strings" in _error("[a]: 1\n").message


def test_secret_tag_only_when_allowed() -> None:
    err = _error("key: !secret k\n")
    assert err.message == "!secret is not allowed in this file"
    assert (err.line, err.column) == (1, 6)
    node = load_text("key: !secret k\n", "f.yml", allow_secret=True)
    assert isinstance(node, MapNode)
    key = node.items["key"]
    assert isinstance(key, ScalarNode) and key.tag == yamlsrc.SECRET_TAG and key.value == "k"


@pytest.mark.parametrize("text", ["a: !!binary aGk=\n", "a: !!set {x}\n", "a: !custom 1\n"])
def test_unsupported_tags(text: str) -> None:
    assert "unsupported YAML tag" in _error(text).message


def test_multiple_documents_refused() -> None:
    err = _error("a: 1\n---\nb: 2\n")
    assert err.line == 2 and "single YAML document" in err.message


def test_merge_keys_explicit_wins() -> None:
    root = load_text("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", "f.yml")
    assert isinstance(root, MapNode)
    assert root.plain["use"] == {"y": 3, "x": 1}


def test_alias_bomb_is_refused_quickly() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        prev = f"*a{i - 1}"
        levels.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    started = time.perf_counter()
    err = _error("\n".join(levels) + "\n")
    assert time.perf_counter() - started < 1.0
    assert "alias" in err.message and "100,000" in err.message
    assert err.file == "f.yml" and err.line is not None


def test_small_aliases_are_fine() -> None:
    root = load_text("a: &a {x: 1}\nb: *a\nc: *a\n", "f.yml")
    assert isinstance(root, MapNode)
    assert root.plain == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1}}


def test_self_referencing_alias_is_an_error() -> None:
    err = _error("a: &a [*a]\n")
    assert "unknown alias" in err.message and err.line == 1


@pytest.mark.parametrize("depth", [101, 2_000, 200_000])
def test_deep_nesting_refused_without_crashing(depth: int) -> None:
    # 101 trips our own check; from 1,000 levels libyaml >= 0.2.6 refuses while scanning ahead,
    # and the user must see the same message either way
    err = _error("[" * depth)
    assert err.message == "nested deeper than 100 levels" and err.line == 1
    assert err.hint is not None and "unclosed" in err.hint


def test_nesting_at_the_limit_is_fine() -> None:
    root = load_text("[" * 100 + "]" * 100 + "\n", "f.yml")
    node = root
    for level in range(1, 100):  # each list holds the next, one column further right
        assert isinstance(node, SeqNode) and len(node.items) == 1, level
        assert (node.loc.line, node.loc.column) == (1, level)
        node = node.items[0]
    assert isinstance(node, SeqNode) and node.items == () and node.loc.column == 100
    assert root is not None and root.size == 100


def test_oversized_file_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yml"
    path.write_bytes(b"a: " + b"x" * 2_000 + b"\n")
    with pytest.raises(InputError) as caught:
        load_file(path, max_bytes=1_000)
    assert caught.value.file == str(path) and caught.value.line == 1
    assert "larger than the 1,000-byte limit" in caught.value.message


def test_default_size_limit_is_10_mb(tmp_path: Path) -> None:
    path = tmp_path / "huge.yml"
    with path.open("wb") as f:
        f.truncate(yamlsrc.MAX_BYTES + 1)
    started = time.perf_counter()
    with pytest.raises(InputError, match="larger than the 10,485,760-byte limit"):
        load_file(path)
    assert time.perf_counter() - started < 0.5


def test_bad_utf8_and_control_characters(write: Callable[[str, str], Path]) -> None:
    path = write("x.yml", "a: 1\n")
    path.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(InputError) as caught:
        load_file(path)
    assert (caught.value.line, caught.value.message) == (2, "not valid UTF-8 text")
    err = _error("a: 1\nb: \x07\n")
    assert err.line == 2 and "control characters" in err.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_file(tmp_path / "nope.yml")
    assert caught.value.file == str(tmp_path / "nope.yml")
    assert "cannot read" in caught.value.message


def test_check_keys_suggests() -> None:
    root = load_text("tragets: x\n", "f.yml")
    assert isinstance(root, MapNode)
    with pytest.raises(InputError) as caught:
        yamlsrc.check_keys(root, ("name", "targets"), "the playbook")
    assert caught.value.one_line() == (
        "f.yml:1:1: unknown key 'tragets' in the playbook (hint: did you mean 'targets'?)"
    )


def _value(text: str) -> yamlsrc.Node:
    """The value of `v:` in a one-line document, located at f.yml:1:4."""
    root = load_text(f"v: {text}\n", "f.yml")
    assert isinstance(root, MapNode)
    return root.items["v"]


def _refused(check: Callable[[yamlsrc.Node], object], text: str) -> str:
    with pytest.raises(InputError) as caught:
        check(_value(text))
    return caught.value.one_line()


MODES = ("queued", "immediate")
LEVELS = ("high", "normal", "low")


def test_want_choice_takes_a_choice() -> None:
    assert yamlsrc.want_choice(_value("queued"), MODES, "mode") == "queued"
    assert yamlsrc.want_choice(_value("' High '"), LEVELS, "priority", fold=True) == "high"


@pytest.mark.parametrize(
    ("choices", "text", "fold", "said"),
    [
        (MODES, "queud", False, "unknown mode 'queud' (hint: did you mean 'queued'?)"),
        (MODES, "later", False, "unknown mode 'later' (hint: queued or immediate)"),
        (MODES, "Queued", False, "unknown mode 'Queued' (hint: did you mean 'queued'?)"),
        (LEVELS, "Urgent", True, "unknown mode 'urgent' (hint: one of: high, normal, low)"),
        (MODES, "[queued]", False, "mode must be a string, not a list"),
        (MODES, "yes", False, "mode must be a string, not 'yes' (hint: quote it)"),
        (MODES, "''", False, "mode must not be empty"),
    ],
)
def test_want_choice_refuses(choices: tuple[str, ...], text: str, fold: bool, said: str) -> None:
    message = _refused(lambda node: yamlsrc.want_choice(node, choices, "mode", fold=fold), text)
    assert message == f"f.yml:1:4: {said}"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("200ms", 0.2), ("1h30m", 5400.0), ("0", 0.0), ("0.01", 0.01), ("'1:30'", None)],
)
def test_want_duration(text: str, seconds: float | None) -> None:
    node = _value(text)
    if seconds is None:  # YAML 1.1 would read an unquoted 1:30 as 90; the text is what counts
        with pytest.raises(InputError) as caught:
            yamlsrc.want_duration(node, "latency")
        assert caught.value.one_line() == (
            "f.yml:1:4: latency: bad duration '1:30'"
            " (hint: write a duration like 200ms, 30s, 10m, 2h, 7d or 1h30m)"
        )
    else:
        assert yamlsrc.want_duration(node, "latency") == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("soon", "latency: bad duration 'soon'"),
        ("-1s", "latency: bad duration '-1s'"),
        ("true", "latency must not be 'true' (hint: quote it)"),
        ("{a: 1}", "latency must be a single value, not a mapping"),
    ],
)
def test_want_duration_refuses(text: str, said: str) -> None:
    message = _refused(lambda node: yamlsrc.want_duration(node, "latency"), text)
    assert message.startswith(f"f.yml:1:4: {said}")


def test_want_number_takes_whole_and_decimal_numbers() -> None:
    assert yamlsrc.want_number(_value("3"), "p") == 3.0
    assert yamlsrc.want_number(_value("0.25"), "p", low=0, high=1) == 0.25
    assert yamlsrc.want_number(_value("-7.5"), "p", high=0) == -7.5


@pytest.mark.parametrize(
    ("text", "low", "high", "said"),
    [
        ("2", 0, 1, "p must be between 0 and 1, not 2"),
        ("-0.5", 0, None, "p must be at least 0, not -0.5"),
        ("150.0", None, 100, "p must be at most 100, not 150.0"),
        ("true", None, None, "p must be a number, not 'true'"),
        ("'5'", None, None, "p must be a number, not '5'"),
        ("[1]", None, None, "p must be a number, not a list"),
    ],
)
def test_want_number_refuses(text: str, low: float | None, high: float | None, said: str) -> None:
    message = _refused(lambda node: yamlsrc.want_number(node, "p", low=low, high=high), text)
    assert message == f"f.yml:1:4: {said}"


def test_local_tags_are_refused_without_a_hook_and_handed_to_it_with_one() -> None:
    text = "on: !lambda return 1;\nx: !include {file: a.yaml}\nl: !remove\n"
    with pytest.raises(InputError, match="unsupported YAML tag !lambda"):
        load_text(text, "f.yml")
    seen: list[tuple[str, str]] = []

    def hook(tag: str, node: Node) -> Node:
        seen.append((tag, type(node).__name__))
        return node

    root = load_text(text, "f.yml", tags=hook)
    assert isinstance(root, MapNode)
    assert list(root.items) == ["on", "x", "l"]  # `on:` stays the key "on" in this dialect
    assert seen == [("!lambda", "ScalarNode"), ("!include", "MapNode"), ("!remove", "ScalarNode")]
    lam = root.items["on"]
    assert isinstance(lam, ScalarNode) and lam.tag == "!lambda" and lam.value == "return 1;"
