"""`secrets.yaml` beside the inventory as the source of `!secret NAME` command arguments.

A playbook or `send` stores only the name; `SecretsFile.value` looks it up when the command is
sent (the drain is given this lookup; it cannot read YAML itself). The file is read again when
it changes, so `cmdctl run` sees an edit. `check` is what `validate`, `bulk` and `send` run
before anything is written. No message ever includes a value.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cmdctl.core.errors import InputError
from cmdctl.inputs import yamlsrc
from cmdctl.inputs.inventory import SECRETS_FILE
from cmdctl.inputs.yamlsrc import Loc, MapNode, ScalarNode

_Stamp = tuple[int, int, int, int]  # device, inode, size, mtime (ns)


class SecretsFile:
    """The secrets of one `secrets.yaml`: names → text values, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: _Stamp | None = None
        self._values: dict[str, str | InputError] = {}

    @classmethod
    def beside(cls, inventory: Path) -> SecretsFile:
        """The `secrets.yaml` in the inventory's directory."""
        return cls(inventory.parent / SECRETS_FILE)

    def value(self, name: str) -> str:
        """The secret's text; an `InputError` naming it and this file when there is none."""
        found = self._load().get(name)
        if isinstance(found, str):
            return found
        if isinstance(found, InputError):
            raise found
        raise self._missing(name)

    def check(self, refs: Iterable[tuple[str, Loc | None]]) -> None:
        """An `InputError` at the first reference (`!secret NAME` and where it is written) that
        names no usable secret."""
        for name, loc in refs:
            try:
                self.value(name)
            except InputError as err:
                if loc is None:
                    raise
                if err.file is None:  # missing: the place that names it is the place to fix
                    raise loc.error(err.message, hint=err.hint) from None
                # secrets.yaml itself is wrong there: say where, from where it is used
                raise loc.error(f"secret {name!r}: {err.one_line()}") from None

    def _missing(self, name: str) -> InputError:
        if not self.path.is_file():
            return InputError(
                f"secret {name!r} needs {self.path}, which does not exist",
                hint=f"create {SECRETS_FILE} beside the inventory with `{name}: <value>`",
            )
        hint = f"add `{name}: <value>` to {self.path}"
        near = yamlsrc.did_you_mean(name, self._values)
        return InputError(
            f"secret {name!r} is not in {self.path}",
            hint=f"{hint}, or if {name!r} is a typo, {near}" if near else hint,
        )

    def _load(self) -> dict[str, str | InputError]:
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self._values = None, {}
            return self._values
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp != self._stamp:
            root = yamlsrc.load_file(self.path)
            start = Loc(str(self.path), 1, 1)
            body = yamlsrc.want_map(root, SECRETS_FILE, start) if root is not None else None
            self._values = {} if body is None else _values(body)
            self._stamp = stamp
        return self._values


def _values(body: MapNode) -> dict[str, str | InputError]:
    """Each entry's text; an entry that cannot be one is kept as its (value-free) error."""
    out: dict[str, str | InputError] = {}
    for name, node in body.items.items():
        if isinstance(node, ScalarNode) and node.tag is None and node.value is not None:
            # A plain scalar is taken as written: a PIN `0123` is "0123", not YAML's octal 83.
            out[name] = node.value if isinstance(node.value, str) else node.text
        else:
            what = "a mapping" if isinstance(node, MapNode) else "empty"
            if isinstance(node, ScalarNode) and node.value is not None:
                what = "tagged"
            elif not isinstance(node, ScalarNode | MapNode):
                what = "a list"
            out[name] = node.loc.error(
                f"secret {name!r} must be text or a number, not {what}",
                hint="write it as `name: value` (quote it if it has special characters)",
            )
    return out
