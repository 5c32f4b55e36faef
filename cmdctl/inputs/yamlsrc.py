"""Safe YAML with a source location on every node, and limits on size, depth and aliases.

We compose nodes ourselves from the parser's event stream instead of using `yaml.compose`:
libyaml's composer recurses in C and crashes the process on deeply nested input, and we want
every value (not only mappings) to keep its `file:line:column`. Aliases are never copied: an
alias shares its anchor's node, and the nodes an alias would expand to are counted so that an
alias bomb is refused long before anything walks it.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from cmdctl.core.errors import InputError
from cmdctl.core.secretref import SecretRef
from cmdctl.core.timespec import parse_duration

MAX_BYTES = 10 * 1024 * 1024  # far beyond any real inventory or playbook
MAX_ALIAS_NODES = 100_000  # nodes reachable through aliases; a bomb needs millions
MAX_DEPTH = 100  # real files nest < 10 deep; also keeps the parser far from its stack limits

_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
_TOO_DEEP_HINT = "real files nest a few levels; look for an unclosed '[' or '{'"

SECRET_TAG = "!secret"

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

Scalar = str | int | float | bool | None

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver: Any = Resolver()
_PLAIN: dict[str, tuple[Scalar, str | None]] = {}  # plain scalar text → (value, tag): keys repeat
_constructor = SafeConstructor()
_CONSTRUCT: dict[str, Any] = {
    _BOOL: _constructor.construct_yaml_bool,
    _INT: _constructor.construct_yaml_int,
    _FLOAT: _constructor.construct_yaml_float,
}


@dataclass(frozen=True, slots=True)
class Loc:
    """Where a value starts in its source: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def error(self, message: str, *, hint: str | None = None) -> InputError:
        """An `InputError` at this location."""
        return InputError(message, file=self.file, line=self.line, column=self.column, hint=hint)


@dataclass(frozen=True, slots=True, eq=False)
class ScalarNode:
    """A scalar: its resolved value, its source text and its tag (`!secret` or None)."""

    value: Scalar
    text: str
    loc: Loc
    tag: str | None = None
    size: int = 1

    @property
    def plain(self) -> Any:
        """The plain Python value (`!secret NAME`: a `SecretRef`, never a plain string)."""
        if self.tag == SECRET_TAG:
            return SecretRef(str(self.value))
        return self.value


@dataclass(frozen=True, slots=True, eq=False)
class MapNode:
    """A mapping with string keys, in source order; `keys` holds where each key is written."""

    items: dict[str, Node]
    keys: dict[str, Loc]
    loc: Loc
    size: int = 1

    @property
    def plain(self) -> dict[str, Any]:
        """The plain Python value."""
        return {key: node.plain for key, node in self.items.items()}


@dataclass(frozen=True, slots=True, eq=False)
class SeqNode:
    """A sequence."""

    items: tuple[Node, ...]
    loc: Loc
    size: int = 1

    @property
    def plain(self) -> list[Any]:
        """The plain Python value."""
        return [node.plain for node in self.items]


Node = ScalarNode | MapNode | SeqNode

TagHook = Callable[[str, Node], Node]
"""Given a local tag (`!include`) and the node it is on, the node to use in its place."""


@dataclass(slots=True)
class _Open:
    """A collection being composed."""

    is_map: bool  # else a sequence
    loc: Loc
    anchor: str | None
    tag: str | None = None  # a local tag for the tag hook
    items: list[Node] = field(default_factory=list)


def load_file(
    path: Path,
    *,
    allow_secret: bool = False,
    max_bytes: int = MAX_BYTES,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    tags: TagHook | None = None,
) -> Node | None:
    """The single document in `path` as located nodes (None when the file is empty)."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise Loc(name, 1, 1).error(
                f"file is {size:,} bytes, larger than the {max_bytes:,}-byte limit",
                hint="split it, or check that this is the file you meant",
            )
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", file=name) from err
    return load_bytes(
        data,
        name,
        allow_secret=allow_secret,
        max_bytes=max_bytes,
        max_alias_nodes=max_alias_nodes,
        tags=tags,
    )


def load_bytes(
    data: bytes,
    name: str,
    *,
    allow_secret: bool = False,
    max_bytes: int = MAX_BYTES,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    tags: TagHook | None = None,
) -> Node | None:
    """The single YAML document in `data` (UTF-8), named `name` in errors."""
    if len(data) > max_bytes:
        raise Loc(name, 1, 1).error(
            f"document is {len(data):,} bytes, larger than the {max_bytes:,}-byte limit"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise Loc(name, line, column).error("not valid UTF-8 text") from err
    return load_text(
        text, name, allow_secret=allow_secret, max_alias_nodes=max_alias_nodes, tags=tags
    )


def load_text(
    text: str,
    name: str,
    *,
    allow_secret: bool = False,
    max_alias_nodes: int = MAX_ALIAS_NODES,
    tags: TagHook | None = None,
) -> Node | None:
    """The single YAML document in `text`, named `name` in errors.

    Local tags (`!include`, `!lambda`) are refused unless `tags` is given; with it, each tagged
    node is replaced by what `tags` returns, and scalar mapping keys that are not strings
    (`on:`, `1:`) are kept as written, as ESPHome configurations need.
    """
    return _Composer(text, name, allow_secret, max_alias_nodes, tags).compose()


class _Composer:
    """Builds located nodes from parser events, without recursion."""

    def __init__(
        self,
        text: str,
        name: str,
        allow_secret: bool,
        max_alias_nodes: int,
        tags: TagHook | None = None,
    ) -> None:
        self.text = text
        self.name = name
        self.allow_secret = allow_secret
        self.tags = tags
        self.max_alias_nodes = max_alias_nodes
        self.alias_nodes = 0
        self.anchors: dict[str, Node] = {}

    def loc(self, mark: Any) -> Loc:
        return Loc(self.name, mark.line + 1, mark.column + 1)

    def compose(self) -> Node | None:
        loader = _Loader(self.text)
        try:
            return self._compose(loader)
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            loc = self.loc(mark) if mark is not None else Loc(self.name, 1, 1)
            problem = err.problem or err.context or "invalid YAML"
            if "nesting depth" in problem:
                # libyaml >= 0.2.6 (PyYAML 6.0.4) stops at 1000 flow levels while it scans
                # ahead for a simple key, before our own depth check sees an event
                raise loc.error(_TOO_DEEP, hint=_TOO_DEEP_HINT) from None
            # from None: the parser's own message quotes the source line, which in
            # secrets.yaml is a key; ours carries the location and the problem instead
            raise loc.error(f"YAML syntax error: {problem}") from None
        except yaml.reader.ReaderError as err:
            raise self._at_offset(err.position).error(f"YAML syntax error: {err.reason}") from None
        except yaml.YAMLError as err:
            raise Loc(self.name, 1, 1).error(f"YAML error: {type(err).__name__}") from None
        finally:
            loader.dispose()

    def _at_offset(self, position: int) -> Loc:
        before = self.text[:position]
        line = before.count("\n") + 1
        return Loc(self.name, line, position - (before.rfind("\n") + 1) + 1)

    def _compose(self, loader: Any) -> Node | None:
        stack: list[_Open] = []
        root: Node | None = None
        documents = 0
        check, get = loader.check_event, loader.get_event
        while check():
            event = get()
            kind = type(event)
            node: Node
            if kind is yaml.ScalarEvent:
                node = self._scalar(event)
                if event.anchor is not None:
                    self.anchors[event.anchor] = node
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                is_map = kind is yaml.MappingStartEvent
                local = self._check_collection_tag(event, _MAP if is_map else _SEQ)
                if len(stack) >= MAX_DEPTH:
                    raise self.loc(event.start_mark).error(_TOO_DEEP, hint=_TOO_DEEP_HINT)
                stack.append(_Open(is_map, self.loc(event.start_mark), event.anchor, local))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                done = stack.pop()
                node = self._mapping(done) if done.is_map else self._sequence(done)
                if done.tag is not None and self.tags is not None:
                    node = self.tags(done.tag, node)
                if done.anchor is not None:
                    self.anchors[done.anchor] = node
            elif kind is yaml.AliasEvent:
                node = self._alias(event)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise self.loc(event.start_mark).error(
                        "expected a single YAML document, found another one here",
                        hint="remove the '---' line or split the file",
                    )
                continue
            else:  # stream start/end, document end
                continue
            if stack:
                stack[-1].items.append(node)
            else:
                root = node
        return root

    def _alias(self, event: Any) -> Node:
        loc = self.loc(event.start_mark)
        node = self.anchors.get(event.anchor)
        if node is None:
            raise loc.error(f"unknown alias *{event.anchor} (aliases must follow their anchor)")
        self.alias_nodes += node.size
        if self.alias_nodes > self.max_alias_nodes:
            raise loc.error(
                f"aliases expand to more than {self.max_alias_nodes:,} nodes; refusing"
                " (a YAML alias bomb?)",
                hint="use fewer or smaller aliases",
            )
        return node

    def _check_collection_tag(self, event: Any, tag: str) -> str | None:
        """The collection's local tag for the hook, if any; refuses other unknown tags."""
        if event.tag in (None, "!", tag):
            return None
        if self.tags is not None and _is_local(event.tag):
            return str(event.tag)
        raise self.loc(event.start_mark).error(f"unsupported YAML tag {event.tag}")

    def _scalar(self, event: Any) -> Node:
        mark = event.start_mark
        loc = Loc(self.name, mark.line + 1, mark.column + 1)
        value: str = event.value
        tag = event.tag
        if tag is None:
            if not event.implicit[0]:  # quoted: always a string
                return ScalarNode(value, value, loc)
            known = _PLAIN.get(value)
            if known is not None:
                return ScalarNode(known[0], value, loc, known[1])
            node = self._resolve(
                value, _resolver.resolve(yaml.ScalarNode, value, (True, False)), loc
            )
            if len(value) <= 64 and len(_PLAIN) < 4096:
                _PLAIN[value] = (node.value, node.tag)
            return node
        if tag == SECRET_TAG:
            if not self.allow_secret:
                raise loc.error(
                    "!secret is not allowed in this file",
                    hint="!secret belongs in the inventory (keys) and in playbook values",
                )
            return ScalarNode(value, value, loc, SECRET_TAG)
        if self.tags is not None and _is_local(tag):
            return self.tags(tag, ScalarNode(value, value, loc, tag))
        if tag == "!":
            tag = _resolver.resolve(yaml.ScalarNode, value, event.implicit)
        return self._resolve(value, tag, loc)

    def _resolve(self, value: str, tag: str, loc: Loc) -> ScalarNode:
        resolved: Scalar
        if tag in (_STR, _TIMESTAMP):
            resolved = value  # timestamps stay text: cmdctl.core.timespec parses times
        elif tag == _NULL:
            resolved = None
        elif tag in (_BOOL, _INT, _FLOAT):
            try:
                resolved = _CONSTRUCT[tag](yaml.ScalarNode(tag, value))
            except (ConstructorError, ValueError) as err:
                raise loc.error(f"bad {tag.rsplit(':', 1)[-1]} {value[:40]!r}") from err
        elif tag == _MERGE:
            return ScalarNode(value, value, loc, _MERGE)
        else:
            raise loc.error(f"unsupported YAML tag {tag}")
        return ScalarNode(resolved, value, loc)

    def _sequence(self, done: _Open) -> SeqNode:
        return SeqNode(tuple(done.items), done.loc, 1 + sum(item.size for item in done.items))

    def _mapping(self, done: _Open) -> MapNode:
        items: dict[str, Node] = {}
        keys: dict[str, Loc] = {}
        merges: list[Node] = []
        pairs = done.items
        for i in range(0, len(pairs), 2):
            key, value = pairs[i], pairs[i + 1]
            if isinstance(key, ScalarNode) and key.tag == _MERGE:
                merges.append(value)
                continue
            if self.tags is not None and isinstance(key, ScalarNode) and key.tag is None:
                key = ScalarNode(key.text, key.text, key.loc)  # `on:` is the key "on" here
            if not isinstance(key, ScalarNode) or not isinstance(key.value, str) or key.tag:
                shown = key.text if isinstance(key, ScalarNode) else "a collection"
                raise key.loc.error(
                    f"mapping keys must be strings, not {shown!r}",
                    hint="quote the key" if isinstance(key, ScalarNode) else None,
                )
            if key.value in items:
                first = keys[key.value]
                raise key.loc.error(
                    f"duplicate key {key.value!r} (first at line {first.line})",
                    hint="each key may appear once in a mapping",
                )
            items[key.value] = value
            keys[key.value] = key.loc
        for merge in merges:
            sources = merge.items if isinstance(merge, SeqNode) else (merge,)
            for source in sources:
                if not isinstance(source, MapNode):
                    raise source.loc.error("'<<' merges only mappings")
                for name, value in source.items.items():
                    if name not in items:  # keys written here win over merged ones
                        items[name] = value
                        keys[name] = source.keys[name]
        size = 1 + sum(item.size for item in items.values())
        return MapNode(items, keys, done.loc, size)


def _is_local(tag: str) -> bool:
    """`!name` (not `!`, `!!str` or a full `tag:` URI)."""
    return tag.startswith("!") and len(tag) > 1 and not tag.startswith("!!")


# --- helpers for loaders that validate located nodes -------------------------------------


def secret_refs(node: Node | None) -> tuple[tuple[str, Loc], ...]:
    """Each `!secret NAME` under `node`: its name and where it is written, in source order."""
    found: list[tuple[str, Loc]] = []
    todo: list[Node] = [] if node is None else [node]
    while todo:
        item = todo.pop()
        if isinstance(item, ScalarNode):
            if item.tag == SECRET_TAG:
                found.append((str(item.value), item.loc))
        else:
            todo.extend(reversed(item.items.values() if isinstance(item, MapNode) else item.items))
    return tuple(found)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for the closest of `choices`, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def check_keys(node: MapNode, allowed: Iterable[str], what: str) -> None:
    """Refuse keys of `node` not in `allowed`, suggesting the closest allowed one."""
    allowed = tuple(allowed)
    for key, loc in node.keys.items():
        if key not in allowed:
            hint = did_you_mean(key, allowed) or f"known keys: {', '.join(allowed)}"
            raise loc.error(f"unknown key {key!r} in {what}", hint=hint)


def kind_name(node: Node) -> str:
    """`a mapping`, `a list`, or the scalar as written, for messages."""
    if isinstance(node, MapNode):
        return "a mapping"
    if isinstance(node, SeqNode):
        return "a list"
    if node.value is None:
        return "nothing"
    if node.tag == SECRET_TAG:  # a name as written; quoted when it is more than one line
        name = node.text[:40]
        return f"{SECRET_TAG} {name if name.isprintable() else repr(name)}"
    return repr(node.text[:40])


def want_map(node: Node | None, what: str, loc: Loc) -> MapNode:
    """`node` as a mapping, or an error naming `what`."""
    if isinstance(node, MapNode):
        return node
    raise (node.loc if node is not None else loc).error(
        f"{what} must be a mapping, not {kind_name(node) if node else 'empty'}"
    )


def want_str(node: Node, what: str) -> str:
    """A non-empty string scalar, or an error naming `what` (with a quoting hint)."""
    if isinstance(node, ScalarNode) and isinstance(node.value, str) and node.tag is None:
        if not node.value.strip():
            raise node.loc.error(f"{what} must not be empty")
        return node.value
    hint = "quote it" if isinstance(node, ScalarNode) and node.value is not None else None
    raise node.loc.error(f"{what} must be a string, not {kind_name(node)}", hint=hint)


def want_bool(node: Node, what: str) -> bool:
    """A boolean scalar (`true`/`false`/`yes`/`no`/`on`/`off`)."""
    if isinstance(node, ScalarNode) and isinstance(node.value, bool):
        return node.value
    raise node.loc.error(f"{what} must be true or false, not {kind_name(node)}")


def want_int(node: Node, what: str, *, low: int, high: int) -> int:
    """An integer scalar in `low..high`."""
    if isinstance(node, ScalarNode) and isinstance(node.value, int):
        if not isinstance(node.value, bool) and low <= node.value <= high:
            return node.value
        if not isinstance(node.value, bool):
            raise node.loc.error(f"{what} must be between {low} and {high}, not {node.value}")
    raise node.loc.error(f"{what} must be a whole number, not {kind_name(node)}")


def want_text(node: Node, what: str) -> str:
    """A scalar's source text (for durations, times, MACs: never YAML's 1:30 = 90 reading)."""
    if isinstance(node, ScalarNode) and node.value is not None and node.tag is None:
        if isinstance(node.value, bool):
            raise node.loc.error(f"{what} must not be {node.text!r}", hint="quote it")
        return node.text
    raise node.loc.error(f"{what} must be a single value, not {kind_name(node)}")


def want_str_list(node: Node, what: str) -> tuple[str, ...]:
    """A string or a list of strings."""
    if isinstance(node, SeqNode):
        if not node.items:
            raise node.loc.error(f"{what} must not be an empty list")
        return tuple(want_str(item, f"each of {what}") for item in node.items)
    return (want_str(node, what),)


def want_choice(node: Node, choices: Sequence[str], what: str, *, fold: bool = False) -> str:
    """A string that is one of `choices` (`fold`: compared stripped and lower-cased).

    Else `unknown WHAT 'x'`, hinting the closest choice, or else the choices themselves.
    """
    word = want_str(node, what)
    if fold:
        word = word.strip().lower()
    if word in choices:
        return word
    listed = " or ".join(choices) if len(choices) == 2 else f"one of: {', '.join(choices)}"
    raise node.loc.error(f"unknown {what} {word!r}", hint=did_you_mean(word, choices) or listed)


def want_duration(node: Node, what: str) -> float:
    """Seconds in a duration scalar (`200ms`, `30s`, `1h30m`, or a plain number of seconds)."""
    text = want_text(node, what)
    try:
        return parse_duration(text)
    except InputError as err:
        raise node.loc.error(f"{what}: {err.message}", hint=err.hint) from None


def want_number(
    node: Node, what: str, *, low: float | None = None, high: float | None = None
) -> float:
    """A number scalar (whole or decimal), within `low..high` where they are given."""
    if not isinstance(node, ScalarNode) or not isinstance(node.value, int | float):
        raise node.loc.error(f"{what} must be a number, not {kind_name(node)}")
    if isinstance(node.value, bool):
        raise node.loc.error(f"{what} must be a number, not {kind_name(node)}")
    value = float(node.value)
    if (low is None or value >= low) and (high is None or value <= high):
        return value
    if low is not None and high is not None:
        bound = f"between {low:g} and {high:g}"
    else:
        bound = f"at least {low:g}" if low is not None else f"at most {high:g}"
    raise node.loc.error(f"{what} must be {bound}, not {node.text}")
