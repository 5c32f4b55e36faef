"""Merge imported devices into `devices.yml` + `secrets.yaml`, editing lines, never rewriting.

What the user wrote stays as written (comments, order, other devices, fields the import does not
own such as `timeout:` or `pace:`); the import sets `host`, `port`, `key`, `expected_name` and adds
groups, line by line. The result is loaded back with `load_inventory` before anything is replaced,
and each file is replaced atomically (secrets first, so a key exists before a line names it).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from cmdctl.core import durable
from cmdctl.core.errors import InputError
from cmdctl.inputs import yamlsrc
from cmdctl.inputs.esphome_config import DeviceConfig
from cmdctl.inputs.inventory import (
    DEFAULT_PORT,
    SECRETS_FILE,
    Device,
    Inventory,
    load_inventory,
)
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode

PRIVATE = 0o600
_DEVICES_HEADER = (
    "# written by `cmdctl inventory import`; edit freely: a re-import keeps what you add\n"
)
_SECRETS_HEADER = "# API encryption keys for devices.yml (written by `cmdctl inventory import`)\n"
_LITERAL_KEY = re.compile(r"(\bkey:[ \t]*)(?!!secret\b|[\"']?\$\{)(\"[^\"]*\"|'[^']*'|[^\s,}#]+)")

Kind = Literal["added", "changed", "unchanged"]


@dataclass(frozen=True, slots=True)
class Change:
    """What the import does to one device."""

    device: str
    kind: Kind
    details: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Merge:
    """The planned result: per-device changes and the new text of both files."""

    inventory: Path
    changes: tuple[Change, ...]
    devices_before: str | None
    devices_after: str
    secrets_before: str | None
    secrets_after: str | None  # None: no secrets file needed
    secret_changes: tuple[str, ...]  # "+ name", "~ name": names only, never values
    devices_mode: int = PRIVATE

    @property
    def writes(self) -> bool:
        """Whether any file would change."""
        return (
            self.devices_after != self.devices_before or self.secrets_after != self.secrets_before
        )

    def diff(self) -> list[str]:
        """A unified diff of devices.yml (literal keys masked) and the secret names touched."""
        before = _mask(self.devices_before or "").splitlines(keepends=True)
        after = _mask(self.devices_after).splitlines(keepends=True)
        name = str(self.inventory)
        lines = [
            line.rstrip("\n")
            for line in difflib.unified_diff(before, after, f"{name} (now)", f"{name} (imported)")
        ]
        secrets = self.inventory.with_name(SECRETS_FILE)
        lines += [f"{secrets}: {change}" for change in self.secret_changes]
        return lines


def _mask(text: str) -> str:
    return _LITERAL_KEY.sub(r"\1***", text)


def secret_name(device: str) -> str:
    """`bar-tv-1` → `bar_tv_1_key` (the name `cmdctl simulate --write-inventory` uses too)."""
    return "".join(c if c.isalnum() else "_" for c in device) + "_key"


def _scalar(value: object) -> str:
    """One YAML flow scalar or sequence, quoted only when needed."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


@dataclass
class _Lines:
    """A file's lines and the edits planned on them (applied last to first)."""

    lines: list[str]
    edits: list[tuple[int, int, int, list[str]]] = field(default_factory=list)  # at, seq, drop, new

    def insert(self, at: int, new: list[str]) -> None:
        self.edits.append((at, len(self.edits), 0, new))

    def replace(self, at: int, new: str) -> None:
        self.edits.append((at, len(self.edits), 1, [new]))

    def delete(self, at: int) -> None:
        self.edits.append((at, len(self.edits), 1, []))

    def text(self) -> str:
        lines = list(self.lines)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        for at, _, drop, new in sorted(self.edits, reverse=True):
            lines[at : at + drop] = [line + "\n" for line in new]
        return "".join(lines)

    def set_value(self, node: Node, text: str, what: str) -> None:
        """Replace the scalar `node` with `text`, keeping a comment after it."""
        loc = node.loc
        if not isinstance(node, ScalarNode) and not _is_flow(node, self.lines):
            raise loc.error(
                f"{what} is written as a block here; the import edits one-line values only",
                hint="write it on one line",
            )
        line = self.lines[loc.line - 1].rstrip("\n")
        start = loc.column - 1
        self.replace(
            loc.line - 1, line[:start] + text + line[start + _token_length(line[start:]) :]
        )

    def end_of_block(self, start_line: int, next_line: int | None) -> int:
        """The index after a block that starts at `start_line` (1-based) and ends before
        `next_line` (1-based, or the end), trailing blank and comment lines left out."""
        end = (next_line - 1) if next_line is not None else len(self.lines)
        while end > start_line and self.lines[end - 1].strip()[:1] in ("", "#"):
            end -= 1
        return end


def _token_length(rest: str) -> int:
    """How many characters of `rest` the value at its start takes (a scalar, tag included, or a
    one-line flow list); the rest of the line, if it cannot tell."""
    depth = 0
    try:
        for token in yaml.scan(rest):
            if isinstance(token, yaml.FlowSequenceStartToken | yaml.FlowMappingStartToken):
                depth += 1
            elif isinstance(token, yaml.FlowSequenceEndToken | yaml.FlowMappingEndToken):
                depth -= 1
                if depth == 0:
                    return int(token.end_mark.index)
            elif isinstance(token, yaml.ScalarToken) and depth == 0:
                return int(token.end_mark.index)
    except yaml.YAMLError:
        pass
    return len(rest)


def _is_flow(node: Node, lines: list[str]) -> bool:
    line = lines[node.loc.line - 1]
    return line[node.loc.column - 1 : node.loc.column] in ("{", "[")


def plan_merge(configs: Sequence[DeviceConfig], inventory_path: Path) -> Merge:
    """What importing `configs` into the inventory at `inventory_path` would change."""
    secrets_path = inventory_path.with_name(SECRETS_FILE)
    secrets_before = secrets_path.read_text(encoding="utf-8") if secrets_path.is_file() else None
    secrets = _Secrets(secrets_path, secrets_before)
    if not inventory_path.is_file():
        return _fresh(configs, inventory_path, secrets)
    return _Merger(inventory_path, secrets).plan(configs)


def _device_lines(config: DeviceConfig, key_name: str | None, indent: str, port: int) -> list[str]:
    body = indent + "  "
    lines = [f"{indent}{_scalar(config.name)}:", f"{body}host: {_scalar(config.host)}"]
    if config.port != port:
        lines.append(f"{body}port: {config.port}")
    if key_name is not None:
        lines.append(f"{body}key: !secret {_scalar(key_name)}")
    if config.expected_name is not None:
        lines.append(f"{body}expected_name: {_scalar(config.expected_name)}")
    if config.groups:
        lines.append(f"{body}groups: {_scalar(list(config.groups))}")
    return lines


def _added(config: DeviceConfig, key_name: str | None) -> Change:
    details = [f"{config.host}:{config.port}"]
    details.append(f"key !secret {key_name}" if key_name else "no key (plaintext)")
    if config.groups:
        details.append(f"groups {', '.join(config.groups)}")
    return Change(config.name, "added", tuple(details))


def _fresh(configs: Sequence[DeviceConfig], path: Path, secrets: _Secrets) -> Merge:
    lines = [_DEVICES_HEADER.rstrip("\n"), "devices:"]
    changes = []
    for config in configs:
        key_name = secrets.allocate(config, owners={})
        lines += _device_lines(config, key_name, "  ", DEFAULT_PORT)
        changes.append(_added(config, key_name))
    return secrets.merge(path, tuple(changes), None, "\n".join(lines) + "\n", PRIVATE)


class _Secrets:
    """The inventory's secrets.yaml: reads it, hands out names, edits its lines."""

    def __init__(self, path: Path, text: str | None) -> None:
        self.path = path
        self.text = text
        self.values: dict[str, str | None] = {}
        self.nodes: dict[str, Node] = {}
        self.root: MapNode | None = None
        if text is not None:
            root = yamlsrc.load_text(text, str(path))
            if root is not None:
                self.root = yamlsrc.want_map(root, SECRETS_FILE, Loc(str(path), 1, 1))
                self.nodes = dict(self.root.items)
                for name, node in self.nodes.items():
                    value = node.value if isinstance(node, ScalarNode) else None
                    self.values[name] = value.strip() if isinstance(value, str) else None
        self.lines = _Lines((text or "").splitlines(keepends=True))
        self.assigned: dict[str, str] = {}  # name → value, set by this import
        self.changes: list[str] = []

    def allocate(self, config: DeviceConfig, owners: dict[str, set[str]]) -> str | None:
        """The secret name to write for `config`'s key; adds or updates it as needed.

        `owners`: secret name → inventory devices using it; a name whose other users are not
        part of this import is never changed under them.
        """
        if config.key is None:
            return None
        value = config.key.reveal()
        preferred = config.key_secret or secret_name(config.name)
        candidates = [preferred, secret_name(config.name)]
        candidates += [f"{secret_name(config.name)}_{i}" for i in range(2, 100)]
        for name in dict.fromkeys(candidates):
            if name in self.assigned:
                if self.assigned[name] == value:
                    return name
                continue
            if name not in self.values:
                self.assigned[name] = value
                self.changes.append(f"+ {name} (new key)")
                return name
            if self.values[name] == value:
                self.assigned[name] = value
                return name
            if owners.get(name, set()) <= {config.name}:  # only this device uses it
                self.assigned[name] = value
                self.changes.append(f"~ {name} (key changed)")
                self.values[name] = value
                node = self.nodes[name]
                self.lines.set_value(node, f'"{value}"', f"secret {name}")
                return name
        raise config.loc.error(f"no free secret name for {config.name}")  # pragma: no cover

    def after(self) -> str | None:
        added = [n for n in self.assigned if n not in self.nodes]
        if self.text is None and not added:
            return None
        if self.text is None:
            self.lines.lines = [_SECRETS_HEADER]
        if added:
            self.lines.insert(
                len(self.lines.lines), [f'{_scalar(n)}: "{self.assigned[n]}"' for n in added]
            )
        return self.lines.text()

    def merge(
        self,
        path: Path,
        changes: tuple[Change, ...],
        devices_before: str | None,
        devices_after: str,
        mode: int,
    ) -> Merge:
        return Merge(
            inventory=path,
            changes=changes,
            devices_before=devices_before,
            devices_after=devices_after,
            secrets_before=self.text,
            secrets_after=self.after(),
            secret_changes=tuple(self.changes),
            devices_mode=mode,
        )


class _Merger:
    """Plans line edits on an existing devices.yml."""

    def __init__(self, path: Path, secrets: _Secrets) -> None:
        self.path = path
        self.secrets = secrets
        self.inventory: Inventory = load_inventory(path)  # must load as it is, first
        self.text = path.read_text(encoding="utf-8")
        self.lines = _Lines(self.text.splitlines(keepends=True))
        root = yamlsrc.load_text(self.text, str(path), allow_secret=True)
        self.root = yamlsrc.want_map(root, "the inventory", Loc(str(path), 1, 1))
        devices = self.root.items["devices"]
        if not isinstance(devices, MapNode) or _is_flow(devices, self.lines.lines):
            raise devices.loc.error(
                "'devices:' is written in flow style ({...}); the import edits block style only",
                hint="write one device per indented block, as in the README",
            )
        self.devices = devices
        self.owners: dict[str, set[str]] = {}
        for name, body in devices.items.items():
            key = body.items.get("key") if isinstance(body, MapNode) else None
            if isinstance(key, ScalarNode) and key.tag == yamlsrc.SECRET_TAG:
                self.owners.setdefault(str(key.value), set()).add(name)
        port = DEFAULT_PORT
        defaults = self.root.items.get("defaults")
        if isinstance(defaults, MapNode) and "port" in defaults.items:
            port = yamlsrc.want_int(defaults.items["port"], "port", low=1, high=65535)
        self.default_port = port

    def plan(self, configs: Sequence[DeviceConfig]) -> Merge:
        changes: list[Change] = []
        new: list[str] = []
        indent = " " * (next(iter(self.devices.keys.values())).column - 1)
        for config in configs:
            existing = self.inventory.by_name.get(config.name)
            if existing is None:
                key_name = self.secrets.allocate(config, self.owners)
                new += _device_lines(config, key_name, indent, self.default_port)
                changes.append(_added(config, key_name))
            else:
                changes.append(self.update(config, existing))
        if new:
            self.lines.insert(self.end_of_devices(), new)
        after = self.lines.text()
        mode = os.stat(self.path).st_mode & 0o777
        if _LITERAL_KEY.search(after):
            mode = PRIVATE  # a literal key is in it: owner only
        return self.secrets.merge(self.path, tuple(changes), self.text, after, mode)

    def end_of_devices(self) -> int:
        devices_line = self.root.keys["devices"].line
        later = [loc.line for loc in self.root.keys.values() if loc.line > devices_line]
        return self.lines.end_of_block(devices_line, min(later) if later else None)

    def update(self, config: DeviceConfig, device: Device) -> Change:
        body = self.devices.items[config.name]
        assert isinstance(body, MapNode)  # load_inventory checked it
        if _is_flow(body, self.lines.lines):
            raise body.loc.error(
                f"device {config.name!r} is written in flow style ({{...}});"
                " the import edits block style only",
                hint="write it as an indented block, as in the README",
            )
        details: list[str] = []
        inserts: list[str] = []
        pad = " " * (body.loc.column - 1)

        def put(field_name: str, text: str) -> None:
            if field_name in body.items:
                self.lines.set_value(body.items[field_name], text, f"{field_name} of {config.name}")
            else:
                inserts.append(f"{pad}{field_name}: {text}")

        if device.host != config.host:
            details.append(f"host {device.host} → {config.host}")
            put("host", _scalar(config.host))
        if device.port != config.port:
            details.append(f"port {device.port} → {config.port}")
            put("port", str(config.port))
        if device.key != config.key:
            key_name = self.secrets.allocate(config, self.owners)
            if key_name is None:
                details.append("key removed (the configuration has no encryption key)")
                self.lines.delete(body.keys["key"].line - 1)
            else:
                details.append("key added" if device.key is None else "key changed")
                put("key", f"!secret {_scalar(key_name)}")
        if config.expected_name is not None and device.expected_name != config.expected_name:
            was = device.expected_name
            details.append(
                "expected_name added" if was is None else f"expected_name {was} → {config.name}"
            )
            put("expected_name", _scalar(config.expected_name))
        missing = [g for g in config.groups if g not in device.groups]
        if missing:
            details.append(f"groups + {', '.join(missing)}")
            self.add_groups(body, missing, [*device.groups, *missing], inserts, pad)
        if inserts:
            names = sorted(self.devices.keys.values(), key=lambda loc: loc.line)
            later = [loc.line for loc in names if loc.line > self.devices.keys[config.name].line]
            end = min(later) if later else None
            at = self.lines.end_of_block(self.devices.keys[config.name].line, end)
            if end is None:
                at = min(at, self.end_of_devices())
            self.lines.insert(at, inserts)
        return Change(config.name, "changed" if details else "unchanged", tuple(details))

    def add_groups(
        self, body: MapNode, missing: list[str], groups: list[str], inserts: list[str], pad: str
    ) -> None:
        node = body.items.get("groups")
        if node is None:
            inserts.append(f"{pad}groups: {_scalar(groups)}")
        elif isinstance(node, SeqNode) and node.items and not _is_flow(node, self.lines.lines):
            last = node.items[-1].loc
            prefix = self.lines.lines[last.line - 1][: last.column - 1]
            self.lines.insert(last.line, [prefix + _scalar(g) for g in missing])
        else:
            self.lines.set_value(node, _scalar(groups), "groups")


def write_merge(merge: Merge) -> None:
    """Write both files: validated by `load_inventory` first, then each replaced atomically."""
    target = merge.inventory
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_staged(merge, Path(tempfile.mkdtemp(prefix=".cmdctl-import-", dir=directory)))
    except OSError as err:
        raise InputError(
            f"cannot write the inventory: {err.strerror}",
            file=str(err.filename or target),
            hint="pick a directory you can write with -o",
        ) from None


def _write_staged(merge: Merge, staging: Path) -> None:
    target = merge.inventory
    directory = target.parent
    try:
        staged_devices = staging / target.name
        _write(staged_devices, merge.devices_after, merge.devices_mode)
        staged_secrets = staging / SECRETS_FILE
        if merge.secrets_after is not None:
            _write(staged_secrets, merge.secrets_after, PRIVATE)
        try:
            load_inventory(staged_devices)
        except InputError as err:
            if err.file is not None:
                err.file = err.file.replace(str(staging), str(directory))
            raise InputError(
                f"the imported inventory would not load: {err.one_line()}",
                hint="nothing was written; fix the inventory or the configuration",
            ) from None
        if merge.secrets_after is not None and merge.secrets_after != merge.secrets_before:
            os.replace(staged_secrets, target.with_name(SECRETS_FILE))
        if merge.devices_after != merge.devices_before:
            os.replace(staged_devices, target)
        durable.fsync_dir(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write(path: Path, text: str, mode: int) -> None:
    durable.create_file(path, text.encode("utf-8"), mode=mode)
