"""ESPHome's YAML dialect, as far as `inventory import` needs it.

`!include` (with `vars:`), local `packages:` merged the way ESPHome merges them, `!remove`,
`substitutions` (`${name}`, `$name`) and `!secret` looked up in the `secrets.yaml` beside the file
using it, then beside the configuration. Every other tag (`!lambda`, `!extend`, `!include_dir_*`,
`!env_var`) is kept as an opaque value: never executed. Remote packages are never fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cmdctl.inputs import yamlsrc
from cmdctl.inputs.inventory import SECRETS_FILE
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode

MAX_INCLUDES = 1_000  # files one configuration may pull in: real ones use a handful
MAX_INCLUDE_DEPTH = 20
MAX_SUBSTITUTION_DEPTH = 10  # `${a}` → `${b}` → ...: real files chain one or two

_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class Includes:
    """Loads files and resolves `!include`; remembers who included what."""

    def __init__(self) -> None:
        self.count = 0
        self.stack: list[Path] = []
        self.included_by: dict[Path, str] = {}

    def load(self, path: Path) -> Node | None:
        return yamlsrc.load_file(path, allow_secret=True, tags=self._tag)

    def _tag(self, tag: str, node: Node) -> Node:
        if tag == "!include":
            return self._include(node)
        return node  # !lambda, !extend, !remove, !include_dir_*, !env_var: tolerated, not run

    def _include(self, node: Node) -> Node:
        vars_node: Node | None = None
        if isinstance(node, MapNode):
            if "file" not in node.items:
                raise node.loc.error("!include needs a file", hint="!include {file: x.yaml}")
            vars_node = node.items.get("vars")
            file_node = node.items["file"]
        else:
            file_node = node
        name = file_node.value if isinstance(file_node, ScalarNode) else None
        if not isinstance(name, str) or not name.strip():
            raise file_node.loc.error("!include needs a file name", hint="!include common.yaml")
        including = Path(node.loc.file)
        path = including.parent / name
        if not path.is_file():
            raise node.loc.error(f"!include {name}: no such file ({path})")
        if path.resolve() in {p.resolve() for p in self.stack} or path.resolve() == (
            including.resolve()
        ):
            raise node.loc.error(f"!include {name} includes itself", hint="remove the cycle")
        self.count += 1
        if self.count > MAX_INCLUDES or len(self.stack) >= MAX_INCLUDE_DEPTH:
            raise node.loc.error(f"too many !include files (more than {MAX_INCLUDES})")
        self.included_by.setdefault(path.resolve(), str(including))
        self.stack.append(including)
        try:
            loaded = self.load(path)
        finally:
            self.stack.pop()
        if loaded is None:
            return ScalarNode(None, "", node.loc)
        if isinstance(vars_node, MapNode):
            values = {k: scalar_text(v) for k, v in vars_node.items.items()}
            loaded = _substitute_tree(loaded, {k: v for k, v in values.items() if v is not None})
        return loaded


def scalar_text(node: Node) -> str | None:
    if isinstance(node, ScalarNode) and node.tag is None and node.value is not None:
        return node.value if isinstance(node.value, str) else node.text
    return None


def _substitute_tree(node: Node, values: dict[str, str]) -> Node:
    """`node` with `${var}` in its string scalars replaced for `values` (include `vars:`)."""
    if isinstance(node, MapNode):
        items = {k: _substitute_tree(v, values) for k, v in node.items.items()}
        return MapNode(items, node.keys, node.loc, node.size)
    if isinstance(node, SeqNode):
        return SeqNode(tuple(_substitute_tree(v, values) for v in node.items), node.loc, node.size)
    if isinstance(node.value, str) and node.tag is None and "$" in node.value:

        def one(match: re.Match[str]) -> str:
            var = match.group(1) or match.group(2)
            return values.get(var, match.group(0))

        text = _VAR.sub(one, node.value)
        return ScalarNode(text, text, node.loc)
    return node


def _merge(base: MapNode, over: MapNode) -> MapNode:
    """ESPHome's package merge: mappings merge, lists concatenate, `over` wins, `!remove` drops."""
    items, keys = dict(base.items), dict(base.keys)
    for key, value in over.items.items():
        old = items.get(key)
        if isinstance(value, ScalarNode) and value.tag == "!remove":
            items.pop(key, None)
            keys.pop(key, None)
            continue
        if isinstance(old, MapNode) and isinstance(value, MapNode):
            value = _merge(old, value)
        elif isinstance(old, SeqNode) and isinstance(value, SeqNode):
            value = SeqNode(old.items + value.items, value.loc, old.size + value.size)
        items[key] = value
        keys[key] = over.keys[key]
    return MapNode(items, keys, over.loc, 1 + sum(v.size for v in items.values()))


def with_packages(root: MapNode, remote: list[str]) -> MapNode:
    """`root` with its local packages merged in (recursively); remote ones named in `remote`."""
    packages = root.items.get("packages")
    if packages is None:
        return root
    entries: Iterable[tuple[str, Node]]
    if isinstance(packages, MapNode):
        entries = packages.items.items()
    elif isinstance(packages, SeqNode):
        entries = ((str(i), item) for i, item in enumerate(packages.items))
    else:
        entries = ()
    base = MapNode({}, {}, root.loc)
    for name, package in entries:
        is_url = isinstance(package, ScalarNode) and "://" in str(package.value)
        if is_url or (isinstance(package, MapNode) and "url" in package.items):
            remote.append(name)  # never fetched
        elif isinstance(package, MapNode):
            base = _merge(base, with_packages(package, remote))
    rest = {k: v for k, v in root.items.items() if k != "packages"}
    own = MapNode(rest, {k: root.keys[k] for k in rest}, root.loc)
    return _merge(base, own)


@dataclass(frozen=True, slots=True)
class Value:
    """A resolved scalar: its text, the `!secret` it came from, where it is written."""

    text: str
    secret: str | None
    loc: Loc


class Values:
    """Resolves scalars of one configuration: `!secret` and `${substitutions}`."""

    def __init__(self, file: Path, substitutions: dict[str, Node]) -> None:
        self.file = file
        self.subs = substitutions
        self.secrets: dict[Path, dict[str, Node]] = {}

    def value(self, node: Node, what: str, depth: int = 0) -> Value:
        """A scalar with `!secret` and `${substitutions}` resolved."""
        if isinstance(node, ScalarNode) and node.tag == yamlsrc.SECRET_TAG:
            name = str(node.value)
            found = self.secret(name, node.loc, what)
            text = scalar_text(found)
            if text is None:
                raise node.loc.error(f"{what}: secret {name!r} must be a single value")
            return Value(text, name, node.loc)
        text = scalar_text(node)
        if text is None:
            shown = yamlsrc.kind_name(node)
            if isinstance(node, ScalarNode) and node.tag:
                shown = f"{node.tag} (never evaluated)"
            raise node.loc.error(f"{what} must be a single value, not {shown}")
        whole = _VAR.fullmatch(text)
        if whole is not None and depth < MAX_SUBSTITUTION_DEPTH:
            var = whole.group(1) or whole.group(2)
            if var in self.subs:  # `${api_key}` may stand for a `!secret`
                return self.value(self.subs[var], what, depth + 1)

        def one(match: re.Match[str]) -> str:
            var = match.group(1) or match.group(2)
            if var not in self.subs or depth >= MAX_SUBSTITUTION_DEPTH:
                raise node.loc.error(
                    f"{what} uses ${{{var}}}, which no substitution defines",
                    hint=yamlsrc.did_you_mean(var, self.subs) or "add it under `substitutions:`",
                )
            return self.value(self.subs[var], what, depth + 1).text

        return Value(_VAR.sub(one, text) if "$" in text else text, None, node.loc)

    def secret(self, name: str, loc: Loc, what: str) -> Node:
        """`!secret name`: from secrets.yaml beside the file using it, else beside the config."""
        places = dict.fromkeys(
            (Path(loc.file).parent / SECRETS_FILE, self.file.parent / SECRETS_FILE)
        )
        for path in places:
            if path not in self.secrets:
                self.secrets[path] = {}
                if path.is_file():
                    root = yamlsrc.load_file(path)
                    if isinstance(root, MapNode):
                        self.secrets[path] = dict(root.items)
            if name in self.secrets[path]:
                return self.secrets[path][name]
        known = [k for table in self.secrets.values() for k in table]
        raise loc.error(
            f"{what}: secret {name!r} is not in {' or '.join(str(p) for p in places)}",
            hint=yamlsrc.did_you_mean(name, known) or f"add `{name}: ...` to {SECRETS_FILE}",
        )


