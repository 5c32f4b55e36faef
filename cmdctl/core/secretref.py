"""Secret arguments: `!secret NAME` kept as a reference, resolved only when a command is sent.

In `Command.args` a reference is the JSON object `{"!secret": NAME}` at a value position (a
lock's `code`, a text value, an action argument). Canonical args never hold a mapping at a value
position otherwise, so the marker cannot be mistaken for data, and every reader and writer of
the journal, its caches, `--json` and the HTTP API carries it unchanged: only the name, never the
value. The drain resolves references just before sending (`resolve`) and scrubs the values out
of whatever comes back from the device (`Scrubber`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cmdctl.core.errors import CmdctlError, DeviceError

#: The marker's one key; the YAML tag that makes one.
KEY = "!secret"
#: What tables show in place of a secret.
MASK = "***"

#: The value of the secret NAME; raises a `CmdctlError` (an `InputError` naming the secret and
#: the file it was looked for in, never a value) when there is none.
Lookup = Callable[[str], str]

E = TypeVar("E", bound=BaseException)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """`!secret NAME` as a playbook or `send` wrote it, before it becomes an argument."""

    name: str

    def marker(self) -> dict[str, str]:
        """The reference as `Command.args` and the journal hold it."""
        return {KEY: self.name}

    def __str__(self) -> str:
        return f"{KEY} {self.name}"


def ref_name(value: object) -> str | None:
    """The secret's name when `value` is a reference marker, else None."""
    if type(value) is dict and len(value) == 1:
        name = value.get(KEY)
        if isinstance(name, str):
            return name
    return None


def names(args: Mapping[str, Any]) -> tuple[str, ...]:
    """Every secret `args` refers to, once each, in order."""
    found: dict[str, None] = {}

    def note(name: str) -> str:
        found[name] = None
        return name

    _walk(args, note)
    return tuple(found)


def resolve(args: Mapping[str, Any], lookup: Lookup) -> tuple[dict[str, Any], Scrubber]:
    """`args` with every reference replaced by its value, and a scrubber for those values.

    A reference that does not resolve raises what `lookup` raises (naming the secret only).
    """
    values: dict[str, str] = {}

    def value(name: str) -> str:
        if name not in values:
            values[name] = lookup(name)
        return values[name]

    resolved = _walk(args, value)
    return resolved, Scrubber(tuple(values.values()))


def _walk(value: Any, swap: Callable[[str], Any]) -> Any:
    name = ref_name(value)
    if name is not None:
        return swap(name)
    if isinstance(value, Mapping):
        return {key: _walk(item, swap) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, swap) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Scrubber:
    """Takes secret values out of text that came back from a device or a client library: an
    error message may echo the arguments it was given."""

    values: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.values)

    def __call__(self, text: str) -> str:
        for form in self._forms():
            text = text.replace(form, MASK)
        return text

    def leaks(self, text: str) -> bool:
        """True when `text` holds a value in any of the forms `__call__` removes."""
        return any(form in text for form in self._forms())

    def _forms(self) -> list[str]:
        # The value itself, and as repr() and JSON escape it (a quote, a backslash, Unicode);
        # longest first, so that no part of a longer form is left behind.
        forms = {
            form
            for value in self.values
            if value
            for form in (value, repr(value)[1:-1], json.dumps(value)[1:-1])
            if form
        }
        return sorted(forms, key=len, reverse=True)

    def error(self, err: E) -> E:
        """`err` with the values taken out of its message (in place), and its chain cut where
        an exception it was raised from would show one in a traceback."""
        if not self.values:
            return err
        if isinstance(err, CmdctlError):
            err.message = self(err.message)
            err.hint = None if err.hint is None else self(err.hint)
            err.args = (err.message,)
            if isinstance(err, DeviceError):
                err.reason = self(err.reason)
        link: BaseException | None = err.__cause__ or err.__context__
        while link is not None:
            if self.leaks(str(link)) or self.leaks(repr(link.args)):
                err.__cause__ = None
                err.__context__ = None
                err.__suppress_context__ = True
                break
            link = link.__cause__ or link.__context__
        return err
