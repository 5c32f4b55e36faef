"""Playbook variables: `${name}` in step values, and the values a device gives them.

A value is set by `vars:` on a device, on a group or in the inventory's `defaults:`, by the
playbook's `vars:`, or by `bulk --var name=value`; for one device the most specific wins:
`--var`, then the device, then its most specific group, then the playbook, then the inventory's
defaults (README: Variables). `${VAR}` in an inventory's `key:` is the environment, not this.

A scalar that is exactly `${name}` takes the variable's typed value (`${volume}` → 30), quoted
or not (YAML needs the quotes inside `{...}`: `{box: "${box}"}`); a reference inside a longer
string inserts the value's text as written (`"Table ${table}"`). `$${` is a literal `${`. Values
are taken as written: a `${` inside a value is not expanded (write `$${` for a literal one).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.inputs import yamlsrc
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_HINT = "variable names use letters, digits and '_', and do not start with a digit"
_TOKEN = re.compile(r"\$\$\{|\$\{")  # an escaped `${`, or the start of a reference
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\}")
_REF_HINT = "a reference is ${name} (letters, digits, '_'); write $${ for a literal ${"
_ONE_VALUE = (
    "a variable holds one value: text, a number or true/false; give each field of a"
    " mapping its own variable, like {brightness: ${level}}"
)

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class Value:
    """One variable's value: as YAML typed it, the text as written, and who set it."""

    value: Scalar
    text: str  # what `"...${name}..."` inserts: `30`, `0.40`, `HDMI 1`
    # Equal values are equal wherever they were set: expansion makes one command per distinct
    # set of values, however many devices share it.
    source: str = field(compare=False)  # `device bar-tv-1`, `group bar`, `the playbook`, ...
    loc: Loc | None = field(default=None, compare=False)

    def described(self, name: str) -> str:
        """`${volume} is 'loud' (group bar, devices.yml:31:9)`."""
        where = f"{self.source}, {self.loc}" if self.loc is not None else self.source
        return f"${{{name}}} is {self.value!r} ({where})"


@dataclass(frozen=True, slots=True)
class _Text:
    """A string scalar that refers to variables: literal pieces and names, in order."""

    parts: tuple[str | _Ref, ...]
    typed: bool  # exactly one reference: the value keeps its type


@dataclass(frozen=True, slots=True)
class _Ref:
    name: str
    loc: Loc


Values = Mapping[str, Value]
Lookup = Callable[[str], Value | None]


@dataclass(frozen=True, slots=True)
class Template:
    """A step value as written, with the references it makes; `fill` gives one device's value.

    Without references (`names` empty) `value` is the plain value, `$${` already undone.
    """

    value: Any
    names: tuple[str, ...] = ()  # every variable referred to, in order of first reference
    first: Mapping[str, Loc] = field(default_factory=dict, compare=False)  # where each first is
    node: Node | None = field(default=None, compare=False)  # as written, to locate errors in it

    def fill(self, values: Values) -> Any:
        """The plain value with each reference replaced (every name must be in `values`)."""
        return _fill(self.value, values)

    def resolve(self, lookup: Lookup, device: str) -> dict[str, Value]:
        """Each referenced variable's value for `device`; a located InputError for the first
        one that is not set."""
        found: dict[str, Value] = {}
        for name in self.names:
            value = lookup(name)
            if value is None:
                raise unset(name, device, self.first[name])
            found[name] = value
        return found


Words = Callable[[str], tuple[str, str | None]]  # option -> (message, hint)


class VariableError(InputError):
    """An input error whose words name how a run's variables are given: `--var name=value` on
    the command line. A caller that takes them another way (the HTTP API's `?var=name=value`)
    re-words it with `given_as` (`var`), so the hint names what that caller can actually do."""

    def __init__(self, words: Words, loc: Loc | None = None, option: str = "--var") -> None:
        message, hint = words(option)
        where = (loc.file, loc.line, loc.column) if loc is not None else (None, None, None)
        super().__init__(message, file=where[0], line=where[1], column=where[2], hint=hint)
        self.words, self.loc, self.option = words, loc, option

    def given_as(self, option: str) -> VariableError:
        """The same error, worded for variables given as `option` (`var`: `var=name=value`)."""
        return VariableError(self.words, self.loc, option)


def passing(option: str, assignment: str) -> str:
    """How to give `assignment` (`channel=206`): `--var channel=206` for an option, and
    `var=channel=206` for a `name=value` parameter (`option` not starting with `-`)."""
    return f"{option} {assignment}" if option.startswith("-") else f"{option}={assignment}"


def unset(name: str, device: str, loc: Loc) -> VariableError:
    """`${channel} is not set for bar-tv-3`, at the reference."""
    return VariableError(
        lambda option: (
            f"${{{name}}} is not set for {device}",
            f"set vars: {{{name}: ...}} on the device, a group or the inventory's defaults,"
            f" in the playbook's vars:, or pass {passing(option, f'{name}=...')}",
        ),
        loc,
    )


def disagree(loc: Loc, step: str, pick: str, first: str, other: str) -> VariableError:
    """A failover/any step whose variables give its candidates different commands."""
    return VariableError(
        lambda option: (
            f"step {step!r} is one command for its {pick} candidates, but its variables give"
            f" {first} and {other} different values",
            f"set them the same for every candidate (the playbook's vars: or {option}), or give"
            " the step plain targets",
        ),
        loc,
    )


def unreferenced(name: str, playbook: str, referred: Sequence[str]) -> VariableError:
    """A given variable that no step of `playbook` refers to (a typo would change nothing)."""
    listed = ", ".join(referred)
    hint = yamlsrc.did_you_mean(name, list(referred)) or (
        f"its variables: {listed}" if referred else "it refers to no variables"
    )
    return VariableError(
        lambda option: (f"{option} {name}: no step of {playbook} refers to ${{{name}}}", hint)
    )


def template(node: Node | None) -> Template:
    """The located value `node` as a template (references checked; none: a plain value)."""
    first: dict[str, Loc] = {}
    value = _compile(node, first) if node is not None else None
    return Template(value, tuple(first), first, node)


def _compile(node: Node, first: dict[str, Loc]) -> Any:
    if isinstance(node, MapNode):
        return {key: _compile(item, first) for key, item in node.items.items()}
    if isinstance(node, SeqNode):
        return [_compile(item, first) for item in node.items]
    value = node.value
    if node.tag is not None or not isinstance(value, str) or "$" not in value:
        return node.plain
    parts = _pieces(value, node.loc)
    if len(parts) == 1 and isinstance(parts[0], str):
        return parts[0]  # only escapes
    for part in parts:
        if isinstance(part, _Ref):
            first.setdefault(part.name, part.loc)
    return _Text(parts, typed=len(parts) == 1)


def _pieces(text: str, loc: Loc) -> tuple[str | _Ref, ...]:
    parts: list[str | _Ref] = []
    literal: list[str] = []
    at = 0
    while (token := _TOKEN.search(text, at)) is not None:
        literal.append(text[at : token.start()])
        if token.group() == "$${":
            literal.append("${")
            at = token.end()
            continue
        body = _BODY.match(text, token.end())
        if body is None:
            shown = text[token.start() : token.start() + 24]
            raise loc.error(f"bad variable reference {shown!r}", hint=_REF_HINT)
        if any(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(_Ref(body.group(1), loc))
        at = body.end()
    literal.append(text[at:])
    if any(literal) or not parts:
        parts.append("".join(literal))
    return tuple(parts)


def _fill(value: Any, values: Values) -> Any:
    if isinstance(value, _Text):
        if value.typed:
            ref = value.parts[0]
            assert isinstance(ref, _Ref)
            return values[ref.name].value
        return "".join(
            part if isinstance(part, str) else values[part.name].text for part in value.parts
        )
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


# --- values: `vars:` mappings, `--var name=value`, the library's mapping ----------------------


def values_of(node: Node, source: str, what: str) -> dict[str, Value]:
    """A `vars:` mapping of name → scalar, each value set by `source` (`group bar`)."""
    body = yamlsrc.want_map(node, what, node.loc)
    found: dict[str, Value] = {}
    for name, item in body.items.items():
        check_name(name, body.keys[name])
        found[name] = _value(item, name, source)
    return found


def check_name(name: str, loc: Loc) -> None:
    """Refuse a variable name that `${name}` could not refer to."""
    if not NAME.fullmatch(name):
        raise loc.error(f"bad variable name {name!r}", hint=NAME_HINT)


def _value(node: Node, name: str, source: str) -> Value:
    if not isinstance(node, ScalarNode):
        raise node.loc.error(
            f"variable {name} must be one value, not {yamlsrc.kind_name(node)}", hint=_ONE_VALUE
        )
    if node.tag == yamlsrc.SECRET_TAG:
        raise node.loc.error(
            f"variable {name} cannot be a !secret",
            hint="vars: hold plain values; write the !secret in the step's value itself",
        )
    value = node.value
    if value is None or node.tag is not None:
        raise node.loc.error(
            f"variable {name} has no value",
            hint="write a value after the ':'; for empty text write ''",
        )
    if isinstance(value, str):
        text = _literal(value, name, node.loc)
        return Value(text, text, source, node.loc)
    return Value(value, node.text, source, node.loc)


def _literal(text: str, name: str, loc: Loc) -> str:
    """A value's text, `$${` undone; a bare `${` is refused (values are never expanded)."""
    if "${" not in text:
        return text
    pieces = text.split("$${")
    if any("${" in piece for piece in pieces):
        raise loc.error(
            f"variable {name}: ${{...}} inside a value is not expanded",
            hint="values are taken as written (the environment is read only by an inventory"
            " key:); write $${ for a literal ${",
        )
    return "${".join(pieces)


def parse_assignment(text: str, option: str = "--var") -> tuple[str, Value]:
    """`--var name=value`: the value read as one YAML scalar (`30` is a number). `option` is
    how errors name where it came from (`var` for the HTTP API's `?var=`)."""
    name, equals, raw = text.partition("=")
    name = name.strip()
    if not equals or not name:
        raise InputError(
            f"{option} {text!r} is not name=value",
            hint=f"for example {passing(option, 'channel=206')}",
        )
    if not NAME.fullmatch(name):
        raise InputError(f"{option}: bad variable name {name!r}", hint=NAME_HINT)
    if not raw.strip():
        return name, Value("", "", option)  # `--var banner=`: empty text
    quoted = f'{name}="{raw}"'
    quote = "quote the value: " + passing(option, f"'{quoted}'" if option[:1] == "-" else quoted)
    try:
        node = yamlsrc.load_text(raw, option, max_alias_nodes=100)
    except InputError as err:
        raise InputError(f"{option} {name}: {err.message}", hint=quote) from None
    if not isinstance(node, ScalarNode):
        shown = yamlsrc.kind_name(node) if node is not None else "nothing"
        raise InputError(f"{option} {name} must be one value, not {shown}", hint=quote)
    try:
        value = _value(node, name, option)
    except InputError as err:
        raise InputError(f"{option}: {err.message}", hint=err.hint) from None
    return name, Value(value.value, value.text, option)


def given(
    values: Mapping[str, Value | Scalar] | Iterable[str] | None, option: str = "--var"
) -> dict[str, Value]:
    """Values given for one run (`bulk --var`, the library's `variables=`): `name=value`
    strings, or a mapping of name → value (a `Value`, text, number or true/false)."""
    if values is None:
        return {}
    if isinstance(values, str):
        values = (values,)
    if not isinstance(values, Mapping):
        return dict(parse_assignment(text, option) for text in values)
    found: dict[str, Value] = {}
    for name, value in values.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise InputError(f"bad variable name {name!r}", hint=NAME_HINT)
        if isinstance(value, Value):
            found[name] = value
        elif isinstance(value, bool):
            found[name] = Value(value, "true" if value else "false", "--var")
        elif isinstance(value, str | int | float):
            found[name] = Value(value, str(value), "--var")
        else:
            raise InputError(
                f"variable {name} must be text, a number or true/false", hint=_ONE_VALUE
            )
    return found
