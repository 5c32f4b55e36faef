"""Edit a `devices.yml` in place: add devices and fix `host:` / `port:`, keeping the user's text.

Only the characters of the values that change are replaced and new devices are appended after the
last one, so comments, order, quoting, anchors and every other key stay exactly as written. The
file is replaced atomically (temp file, fsync, rename) and keeps its mode.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cmdctl.core import durable
from cmdctl.core.errors import InputError
from cmdctl.inputs import inventory as inventory_mod


@dataclass(frozen=True, slots=True)
class Addition:
    """A device to add (never a key: keys come from the user or `inventory import`)."""

    name: str
    host: str
    port: int
    expected_name: str | None = None
    expected_mac: str | None = None
    comment: str | None = None  # one line written above the device, e.g. that it needs a key


@dataclass(frozen=True, slots=True)
class Move:
    """A device that answers elsewhere: the new `host:` and/or `port:` (None: keep)."""

    name: str
    host: str | None = None
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What one edit did, in words, for the report."""

    device: str
    action: str  # "added", "moved" or "skipped"
    detail: str


@dataclass(frozen=True, slots=True)
class Edit:
    """The new text and what changed; `text == original` when nothing did."""

    original: str
    text: str
    changes: tuple[Change, ...]


@dataclass(slots=True)
class _Value:
    start: int
    end: int
    text: str  # the source text of the scalar (with its quotes)
    flow: bool  # inside a flow collection


@dataclass(slots=True)
class _DeviceSpan:
    key_column: int  # column of this device's own keys (block style)
    flow: bool  # the device's body is a flow mapping: `name: {host: x}`
    end: int  # end offset of the last value inside the device
    host: _Value | None = None
    port: _Value | None = None
    host_is_alias: bool = False
    port_is_alias: bool = False


@dataclass(slots=True)
class _Layout:
    devices_column: int | None = None  # column of device names under `devices:`
    devices_flow: bool = False
    devices_end: int = -1  # end offset of the last thing inside `devices:`
    default_port: int = inventory_mod.DEFAULT_PORT
    spans: dict[str, _DeviceSpan] | None = None


def _scalar(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def plan(
    text: str,
    path: Path,
    additions: list[Addition],
    moves: list[Move],
    *,
    taken: frozenset[str] = frozenset(),
) -> Edit:
    """The inventory text with `moves` applied and `additions` appended.

    An addition named like a listed device or a group (`taken`) is skipped, never renamed.
    """
    layout = _layout(text, path) if text.strip() else _Layout(spans={})
    spans = layout.spans or {}
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), applied back to front
    changes: list[Change] = []
    for move in moves:
        span = spans.get(move.name)
        if span is None:
            changes.append(Change(move.name, "skipped", "not found under devices:"))
            continue
        if (move.host is not None and span.host_is_alias) or (
            move.port is not None and span.port_is_alias
        ):
            changes.append(
                Change(move.name, "skipped", "its host/port is a YAML alias; edit it by hand")
            )
            continue
        words: list[str] = []
        if move.host is not None and span.host is not None:
            edits.append((span.host.start, span.host.end, _requote(span.host.text, move.host)))
            words.append(f"host {_plain(span.host.text)} → {move.host}")
        if move.port is not None:
            if span.port is not None:
                edits.append((span.port.start, span.port.end, str(move.port)))
                words.append(f"port {_plain(span.port.text)} → {move.port}")
            elif span.host is not None:
                edits.append(_insert_key(text, span, "port", str(move.port)))
                words.append(f"port → {move.port} (added port:)")
        if words:
            changes.append(Change(move.name, "moved", ", ".join(words)))
    existing = set(spans) | taken
    fresh = [a for a in additions if a.name not in existing]
    for a in additions:
        if a.name in existing:
            changes.append(
                Change(a.name, "skipped", "a device or group of that name is already listed")
            )
    if fresh:
        if layout.devices_flow:
            raise InputError(
                f"{path}: `devices:` is a flow mapping ({{...}}); cannot append devices to it",
                file=str(path),
                hint="write devices: as a block mapping, one device per line",
            )
        block, where = _additions(text, layout, fresh)
        edits.append((where, where, block))
        for a in fresh:
            port = "" if a.port == layout.default_port else f":{a.port}"
            note = f"; {a.comment}" if a.comment else ""
            changes.append(Change(a.name, "added", f"host {a.host}{port}{note}"))
    out = text
    for start, end, replacement in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + replacement + out[end:]
    return Edit(text, out, tuple(changes))


def _plain(source: str) -> str:
    return source[1:-1] if source[:1] in "'\"" and len(source) >= 2 else source


def _requote(source: str, value: str) -> str:
    if source[:1] == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if source[:1] == "'":
        return "'" + value.replace("'", "''") + "'"
    return _scalar(value)


def _line_end(text: str, offset: int) -> int:
    """Offset just past the newline of the line holding `offset` (len(text) at the end)."""
    nl = text.find("\n", offset)
    return len(text) if nl < 0 else nl + 1


def _insert_key(text: str, span: _DeviceSpan, key: str, value: str) -> tuple[int, int, str]:
    assert span.host is not None
    if span.flow or span.host.flow:
        return (span.host.end, span.host.end, f", {key}: {value}")
    where = _line_end(text, span.host.end)
    prefix = "" if where == 0 or text[where - 1] == "\n" else "\n"
    return (where, where, f"{prefix}{' ' * span.key_column}{key}: {value}\n")


def _additions(text: str, layout: _Layout, fresh: list[Addition]) -> tuple[str, int]:
    spans = layout.spans or {}
    column = layout.devices_column if layout.devices_column is not None else 2
    inner = column + 2
    for span in spans.values():
        if not span.flow and span.key_column > column:
            inner = span.key_column
            break
    lines: list[str] = []
    for a in fresh:
        if a.comment:
            lines.append(f"{' ' * column}# {a.comment}")
        lines.append(f"{' ' * column}{_scalar(a.name)}:")
        body = [("host", _scalar(a.host))]
        if a.port != layout.default_port:
            body.append(("port", str(a.port)))
        if a.expected_name is not None:
            body.append(("expected_name", _scalar(a.expected_name)))
        if a.expected_mac is not None:
            mac = ":".join(a.expected_mac[i : i + 2] for i in range(0, 12, 2))
            body.append(("expected_mac", _scalar(mac)))
        lines += [f"{' ' * inner}{k}: {v}" for k, v in body]
    block = "\n".join(lines) + "\n"
    if layout.devices_end < 0:  # a new file, or one without `devices:`
        if not text.strip():
            return "devices:\n" + block, len(text)
        raise InputError("the inventory has no 'devices:' to add to", hint="add `devices:`")
    where = _line_end(text, layout.devices_end)
    if where == len(text) and text and not text.endswith("\n"):
        block = "\n" + block
    return block, where


def _layout(text: str, path: Path) -> _Layout:
    """Where `devices:`, each device and its host/port are written, from the parser's events."""
    try:
        events = list(yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {err}", file=str(path)) from err
    layout = _Layout(spans={})
    spans: dict[str, _DeviceSpan] = {}
    stream = iter(events)
    for event in stream:
        if isinstance(event, yaml.MappingStartEvent):
            _top(stream, layout, spans)
            break
    for span in spans.values():
        for value in (span.host, span.port):
            if value is not None:
                value.text = text[value.start : value.end]
    layout.spans = spans
    return layout


def _off(mark: Any) -> int:
    """A parser mark's character offset (marks are never None for parsed events)."""
    return int(mark.index)


def _skip(first: Any, stream: Any) -> int:
    """Consume the node that starts with `first`; its end offset."""
    end: int = _off(first.end_mark)
    depth = 1 if isinstance(first, yaml.CollectionStartEvent) else 0
    while depth:
        event = next(stream)
        end = _off(event.end_mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return end


def _last_value_end(first: Any, stream: Any) -> int:
    """Like _skip, but the end of the last scalar/alias/flow end, not of a block's end event."""
    if not isinstance(first, yaml.CollectionStartEvent):
        return int(_off(first.end_mark))
    end = _off(first.end_mark)
    depth = 1
    while depth:
        event = next(stream)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            end = _off(event.end_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            if depth == 0 and not first.flow_style:
                break  # a block mapping "ends" where the next token starts
            end = _off(event.end_mark)
        else:
            end = _off(event.end_mark)
    return int(end)


def _top(stream: Any, layout: _Layout, spans: dict[str, _DeviceSpan]) -> None:
    for key in stream:
        if isinstance(key, yaml.MappingEndEvent):
            return
        value = next(stream)
        name = key.value if isinstance(key, yaml.ScalarEvent) else None
        if name == "devices" and isinstance(value, yaml.MappingStartEvent):
            layout.devices_flow = bool(value.flow_style)
            _devices(stream, value, layout, spans)
        elif name == "defaults" and isinstance(value, yaml.MappingStartEvent):
            _defaults(stream, layout)
        else:
            _skip(value, stream)


def _defaults(stream: Any, layout: _Layout) -> None:
    for key in stream:
        if isinstance(key, yaml.MappingEndEvent):
            return
        value = next(stream)
        is_port = isinstance(key, yaml.ScalarEvent) and key.value == "port"
        if is_port and isinstance(value, yaml.ScalarEvent) and value.value.isdigit():
            layout.default_port = int(value.value)
        _skip(value, stream)


def _devices(stream: Any, start: Any, layout: _Layout, spans: dict[str, _DeviceSpan]) -> None:
    layout.devices_end = _off(start.end_mark)
    for key in stream:
        if isinstance(key, yaml.MappingEndEvent):
            if layout.devices_flow:
                layout.devices_end = _off(key.start_mark)
            return
        if layout.devices_column is None:
            layout.devices_column = key.start_mark.column
        value = next(stream)
        if isinstance(key, yaml.ScalarEvent) and isinstance(value, yaml.MappingStartEvent):
            span = _device(stream, value)
            spans[key.value] = span
            layout.devices_end = span.end
        else:
            layout.devices_end = _last_value_end(value, stream)


def _device(stream: Any, start: Any) -> _DeviceSpan:
    flow = bool(start.flow_style)
    span = _DeviceSpan(key_column=-1, flow=flow, end=_off(start.end_mark))
    for key in stream:
        if isinstance(key, yaml.MappingEndEvent):
            if flow:
                span.end = _off(key.end_mark)
            return span
        if span.key_column < 0:
            span.key_column = key.start_mark.column
        value = next(stream)
        name = key.value if isinstance(key, yaml.ScalarEvent) else None
        if name in ("host", "port"):
            if isinstance(value, yaml.AliasEvent):
                setattr(span, f"{name}_is_alias", True)
            elif isinstance(value, yaml.ScalarEvent):
                found = _Value(
                    _off(value.start_mark),
                    _off(value.end_mark),
                    "",
                    flow=flow,
                )
                setattr(span, name, found)
        end = _last_value_end(value, stream)
        span.end = max(span.end, end)
    return span


def apply(path: Path, edit: Edit) -> None:
    """Write `edit.text` to `path` atomically, unless the file changed since it was read."""
    try:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}", file=str(path)) from err
    if current != edit.original:
        raise InputError(
            f"{path} changed while devices were being discovered; nothing was written",
            file=str(path),
            hint="run the command again",
        )
    mode = (path.stat().st_mode & 0o777) if path.exists() else 0o644
    tmp = durable.temp_name(path)
    try:
        tmp.unlink(missing_ok=True)  # left by a process of ours that died: same pid, same name
        durable.create_file(tmp, edit.text.encode("utf-8"), mode=mode)
        _check_loads(tmp, path)  # the user's file stays as it was unless the result loads
        os.replace(tmp, path)
        durable.fsync_dir(path.parent)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {err.strerror}", file=str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_loads(tmp: Path, path: Path) -> None:
    """The edited text must still load, or the user's file stays as it was."""
    try:
        inventory_mod.load_inventory(tmp)
    except InputError as err:
        raise InputError(
            f"the merged inventory would not load: {err.message}; nothing was written",
            file=str(path),
            line=err.line,
            hint=err.hint,
        ) from err

