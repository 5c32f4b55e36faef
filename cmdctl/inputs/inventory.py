"""The inventory: `devices.yml` and the `secrets.yaml` beside it → `Device`s and groups."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.core.timespec import DurationTooLong, parse_duration
from cmdctl.inputs import variables, yamlsrc
from cmdctl.inputs.variables import Value
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode

DEFAULT_PORT = 6053  # ESPHome's native API port
INVENTORY_ENV = "CMDCTL_INVENTORY"
INVENTORY_FILE = "devices.yml"
SECRETS_FILE = "secrets.yaml"  # the name ESPHome uses, beside the YAML that refers to it
ALL = "all"

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_NAME_HINT = "names use letters, digits, '_', '-' and '.' (patterns use ',', ':', '&', '!', '*')"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MAC = re.compile(r"[0-9a-f]{2}(?:([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4})")
# A hostname label (RFC 1123, plus '_' which mDNS names use); a trailing '.' is allowed.
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)
# Longest `pace:` and `timeout:`. Longer is a typo (`99999999d`) or a schedule, and work would
# then wait (near) forever with no word; spacing commands further apart is what `at:` is for.
MAX_PACE = 3600.0
MAX_TIMEOUT = 3600.0
_TOP_KEYS = ("defaults", "devices", "groups", "pace", "vars")
_DEFAULT_KEYS = ("port", "timeout", "pace", "vars")
_DEVICE_KEYS = (
    "host",
    "port",
    "key",
    "expected_name",
    "expected_mac",
    "groups",
    "timeout",
    "pace",
    "vars",
    "simulate",
)


class Secret:
    """An encryption key that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the one place that hands it to the client."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self  # immutable; also keeps dataclasses.asdict(device) working

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not picklable")  # pickles end up in files and logs


@dataclass(frozen=True, slots=True)
class Device:
    """One ESPHome device as the inventory describes it."""

    name: str
    host: str
    port: int = DEFAULT_PORT
    key: Secret | None = None
    expected_name: str | None = None
    expected_mac: str | None = None  # 12 lower-case hex digits, as aioesphomeapi reports it
    groups: tuple[str, ...] = ()  # direct groups as written, in order
    timeout: float | None = None  # per-device job timeout, seconds
    # The one unconverted mapping allowed past the loader: it belongs to the simulator, whose spec
    # reader (cmdctl.cli.simspec) validates it; the inventory must not need to know the
    # simulator's schema to load. Kept as located nodes so that its errors name file:line.
    simulate: MapNode | None = field(default=None, compare=False, hash=False)
    loc: Loc | None = field(default=None, compare=False)
    pace: float | None = None  # minimum seconds between two commands sent to it (see _paces)
    # Why cmdctl cannot talk to it as written (its key did not resolve: a `!secret` missing from
    # secrets.yaml, an unset `${VAR}`, a malformed key), as one located line; None when usable.
    # One device's broken key must not stop the fleet: the inventory loads with a warning, and
    # the transport refuses this device alone (`DeviceRejected`, never contacted).
    problem: str | None = None
    # Playbook variables from the device's own `vars:`, the top-level `vars:` entry naming it and
    # its most specific groups (see _vars); not the inventory's defaults, which rank below a
    # playbook's own `vars:` (`Inventory.default_vars`).
    vars: Mapping[str, Value] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Inventory:
    """Devices in file order and every group (flattened to device names, incl. `all`)."""

    path: Path
    devices: tuple[Device, ...]
    groups: Mapping[str, tuple[str, ...]]  # group → device names, in inventory order
    group_locs: Mapping[str, Loc] = field(default_factory=dict, compare=False)
    warnings: tuple[str, ...] = ()
    default_vars: Mapping[str, Value] = field(default_factory=dict)  # `defaults: {vars: ...}`
    by_name: Mapping[str, Device] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {device.name: device for device in self.devices})

    @property
    def names(self) -> tuple[str, ...]:
        """Device names in inventory order."""
        return tuple(device.name for device in self.devices)

    def device(self, name: str) -> Device:
        """The device called `name`, or an `InputError` with a did-you-mean hint."""
        if name in self.by_name:
            return self.by_name[name]
        hint = yamlsrc.did_you_mean(name, self.names)
        raise InputError(f"no device {name!r} in {self.path}", hint=hint)


def find_inventory(explicit: Path | None, env: Mapping[str, str], cwd: Path) -> Path:
    """The inventory path: `--inventory`, else `$CMDCTL_INVENTORY`, else `./devices.yml`."""
    if explicit is not None:
        path, source = explicit, "--inventory"
    elif env.get(INVENTORY_ENV):
        path, source = Path(env[INVENTORY_ENV]), f"${INVENTORY_ENV}"
    else:
        path, source = cwd / INVENTORY_FILE, "the default"
    if not path.is_absolute():
        path = cwd / path
    if not path.is_file():
        raise InputError(
            f"no inventory at {path} (from {source})",
            file=str(path),
            hint="pass --inventory FILE, set $CMDCTL_INVENTORY, or create one with"
            " `cmdctl simulate --count 5 --write-inventory devices.yml`",
        )
    return path


def load_inventory(path: Path, *, env: Mapping[str, str] | None = None) -> Inventory:
    """Load and validate an inventory; `env` (default `os.environ`) resolves `${VAR}` keys."""
    return _Loader(path, os.environ if env is None else env).load()


class _Loader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.warnings: list[str] = []
        self._secrets: dict[str, Node] | None = None
        self.secrets_path = path.parent / SECRETS_FILE

    def load(self) -> Inventory:
        start = Loc(str(self.path), 1, 1)
        root = yamlsrc.want_map(
            yamlsrc.load_file(self.path, allow_secret=True), "the inventory", start
        )
        yamlsrc.check_keys(root, _TOP_KEYS, "the inventory")
        port, timeout, pace = DEFAULT_PORT, None, None
        default_vars: dict[str, Value] = {}
        if "defaults" in root.items:
            defaults = yamlsrc.want_map(root.items["defaults"], "defaults", root.loc)
            yamlsrc.check_keys(defaults, _DEFAULT_KEYS, "defaults")
            if "port" in defaults.items:
                port = _port(defaults.items["port"])
            if "timeout" in defaults.items:
                timeout = _timeout(defaults.items["timeout"])
            if "pace" in defaults.items:
                pace = _pace(defaults.items["pace"])
            if "vars" in defaults.items:
                default_vars = variables.values_of(
                    defaults.items["vars"], "the inventory's defaults", "vars of defaults"
                )
        if "devices" not in root.items:
            raise root.loc.error("the inventory has no 'devices:'", hint=_EXAMPLE_HINT)
        devices_node = yamlsrc.want_map(root.items["devices"], "devices", root.loc)
        if not devices_node.items:
            raise devices_node.loc.error("the inventory lists no devices", hint=_EXAMPLE_HINT)
        devices = [
            self._device(name, devices_node.keys[name], node, port, timeout)
            for name, node in devices_node.items.items()
        ]
        groups, group_locs = self._groups(devices, root.items.get("groups"))
        devices = _paces(devices, groups, root.items.get("pace"), pace)
        if "vars" in root.items:
            devices = _vars(devices, groups, root.items["vars"])
        return Inventory(
            self.path,
            tuple(devices),
            groups,
            group_locs,
            tuple(self.warnings),
            default_vars,
        )

    def _device(
        self, name: str, name_loc: Loc, node: Node, port: int, timeout: float | None
    ) -> Device:
        _check_name(name, name_loc, "device")
        body = yamlsrc.want_map(node, f"device {name!r}", name_loc)
        yamlsrc.check_keys(body, _DEVICE_KEYS, f"device {name!r}")
        items = body.items
        if "host" not in items:
            raise body.loc.error(f"device {name!r} has no 'host:'", hint="add host: IP or name")
        host = _host(items["host"], name)
        groups: tuple[str, ...] = ()
        if "groups" in items:
            groups = yamlsrc.want_str_list(items["groups"], f"groups of {name}")
            for group in groups:
                _check_name(group, items["groups"].loc, "group")
        key, problem = None, None
        if "key" in items:
            try:
                key = self._key(name, items["key"])
            except InputError as err:
                problem = err.one_line()
                self.warnings.append(f"{problem} — commands to {name} fail until this is fixed")
        simulate = None
        if "simulate" in items:
            simulate = yamlsrc.want_map(items["simulate"], f"simulate of {name}", body.loc)
        return Device(
            name=name,
            host=host,
            port=_port(items["port"]) if "port" in items else port,
            key=key,
            expected_name=(
                yamlsrc.want_str(items["expected_name"], f"expected_name of {name}")
                if "expected_name" in items
                else None
            ),
            expected_mac=_mac(items["expected_mac"], name) if "expected_mac" in items else None,
            groups=groups,
            timeout=_timeout(items["timeout"]) if "timeout" in items else timeout,
            simulate=simulate,
            loc=name_loc,
            pace=_pace(items["pace"]) if "pace" in items else None,
            problem=problem,
            vars=(
                variables.values_of(items["vars"], f"device {name}", f"vars of {name}")
                if "vars" in items
                else {}
            ),
        )

    def _key(self, device: str, node: Node) -> Secret:
        if isinstance(node, ScalarNode) and node.tag == yamlsrc.SECRET_TAG:
            name = node.value if isinstance(node.value, str) else ""
            value_node = self._secret(device, name, node.loc)
            source = f"!secret {name}"
            value = _key_text(value_node, f"secret {name!r}")
        else:
            text = _key_text(node, f"key of {device}")
            ref = _ENV_REF.fullmatch(text.strip())
            if ref is not None:
                var = ref.group(1)
                if not self.env.get(var):
                    raise node.loc.error(
                        f"key of {device}: environment variable {var} is not set",
                        hint=f"export {var}=... (base64 of 32 bytes) or use !secret",
                    )
                value, source = self.env[var], f"${{{var}}}"
            else:
                value, source = text, "literal key"
                self.warnings.append(
                    f"{node.loc}: literal key in {device}: use !secret or ${{ENV}}"
                )
        _check_key(value, device, source, node.loc)
        return Secret(value.strip())

    def _secret(self, device: str, name: str, loc: Loc) -> Node:
        secrets_path = self.secrets_path
        if self._secrets is None:
            if not secrets_path.is_file():
                raise loc.error(
                    f"key of {device}: !secret {name} needs {secrets_path}, which does not exist",
                    hint=f"create {SECRETS_FILE} beside the inventory with `{name}: <base64 key>`",
                )
            root = yamlsrc.load_file(secrets_path)
            start = Loc(str(secrets_path), 1, 1)
            self._secrets = dict(yamlsrc.want_map(root, SECRETS_FILE, start).items) if root else {}
        if name not in self._secrets:
            # Names of keys differ by one character from device to device (bar_tv_2_key,
            # bar_tv_3_key): a near name is as likely another device's key as a typo.
            hint = f"add `{name}: <base64 key>` to {SECRETS_FILE}"
            near = yamlsrc.did_you_mean(name, self._secrets)
            raise loc.error(
                f"key of {device}: secret {name!r} is not in {secrets_path}",
                hint=f"{hint}, or if {name!r} is a typo, {near}" if near else hint,
            )
        return self._secrets[name]

    def _groups(
        self, devices: list[Device], node: Node | None
    ) -> tuple[dict[str, tuple[str, ...]], dict[str, Loc]]:
        device_names = {device.name: device for device in devices}
        members: dict[str, list[str]] = {}  # group → direct members (devices or groups)
        locs: dict[str, Loc] = {}
        for device in devices:
            for group in device.groups:
                members.setdefault(group, []).append(device.name)
                if device.loc is not None:
                    locs.setdefault(group, device.loc)
        declared: dict[str, tuple[Loc, MapNode | SeqNode | ScalarNode]] = {}
        if node is not None:
            body = yamlsrc.want_map(node, "groups", node.loc)
            for group, value in body.items.items():
                _check_name(group, body.keys[group], "group")
                declared[group] = (body.keys[group], value)
                locs[group] = body.keys[group]
        for group in (*members, *declared):
            if group == ALL:
                raise locs[group].error(f"'{ALL}' is the implicit group of every device")
            if group in device_names:
                raise locs[group].error(
                    f"{group!r} is both a device and a group",
                    hint="devices and groups share one namespace; rename one",
                )
        known = set(device_names) | set(members) | set(declared)
        for group, (_, value) in declared.items():
            listed = members.setdefault(group, [])
            for member_node in _member_nodes(value, group):
                member = yamlsrc.want_str(member_node, f"member of group {group!r}")
                if member not in known:
                    raise member_node.loc.error(
                        f"group {group!r} lists {member!r}, which is no device or group",
                        hint=yamlsrc.did_you_mean(member, sorted(known)),
                    )
                if member not in listed:
                    listed.append(member)
        order = {device.name: i for i, device in enumerate(devices)}
        flat: dict[str, tuple[str, ...]] = {ALL: tuple(device_names)}
        found = _flatten(members, device_names, locs)
        for group in members:
            flat[group] = tuple(sorted(found[group], key=order.__getitem__))
        return flat, locs


_EXAMPLE_HINT = "see docs/architecture.md, or `cmdctl simulate --count 5 --write-inventory FILE`"


def _member_nodes(value: Node, group: str) -> tuple[Node, ...]:
    if isinstance(value, SeqNode):
        return value.items
    if isinstance(value, ScalarNode) and isinstance(value.value, str):
        return (value,)
    raise value.loc.error(f"group {group!r} must list its members, not {yamlsrc.kind_name(value)}")


def _flatten(
    members: Mapping[str, list[str]], devices: Mapping[str, Device], locs: Mapping[str, Loc]
) -> dict[str, frozenset[str]]:
    """Every group → the devices in it, however deep groups nest (iterative: no recursion
    limit to hit), or a located error naming a cycle."""
    done: dict[str, frozenset[str]] = {}
    for root in members:
        if root in done:
            continue
        path, on_path = [root], {root}  # the groups being resolved, outermost first
        pending = [iter(members[root])]  # each one's members not looked at yet
        found: list[set[str]] = [set()]  # each one's devices so far
        while path:
            member = next(pending[-1], None)
            if member is None:
                group, devices_in = path.pop(), found.pop()
                on_path.discard(group)
                pending.pop()
                done[group] = frozenset(devices_in)
                if found:
                    found[-1] |= devices_in
            elif member in devices:
                found[-1].add(member)
            elif member in done:
                found[-1] |= done[member]
            elif member in on_path:
                raise locs[member].error(
                    f"group cycle: {_cycle(path[path.index(member) :])}",
                    hint="a group cannot contain itself",
                )
            else:
                path.append(member)
                on_path.add(member)
                pending.append(iter(members.get(member, ())))
                found.append(set())
    return done


def _cycle(groups: list[str]) -> str:
    """`a → b → a`, shortened in the middle when long (one line, however big the loop)."""
    shown = [*groups, groups[0]]
    if len(groups) <= 8:
        return " → ".join(shown)
    return " → ".join((*shown[:3], "…", *shown[-2:])) + f" ({len(groups)} groups)"


def _check_name(name: str, loc: Loc, what: str) -> None:
    if not _NAME.fullmatch(name):
        raise loc.error(f"bad {what} name {name!r}", hint=_NAME_HINT)


def _key_text(node: Node, what: str) -> str:
    # Like yamlsrc.want_str, but never quotes the value: it may be a (malformed) key.
    if isinstance(node, ScalarNode) and isinstance(node.value, str) and node.tag is None:
        return node.value
    raise node.loc.error(f"{what} must be a string", hint="quote the key")


def _check_key(value: str, device: str, source: str, loc: Loc) -> None:
    # The message names the device and where the key came from, never the key itself.
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise loc.error(
            f"key of {device} ({source}) is not valid base64",
            hint="an ESPHome API encryption key is base64 of 32 bytes (44 characters)",
        ) from None
    if len(raw) != 32:
        raise loc.error(
            f"key of {device} ({source}) decodes to {len(raw)} bytes, not 32",
            hint="an ESPHome API encryption key is base64 of 32 bytes (44 characters)",
        )


def _port(node: Node) -> int:
    return yamlsrc.want_int(node, "port", low=1, high=65535)


def _timeout(node: Node) -> float:
    try:
        seconds = parse_duration(yamlsrc.want_text(node, "timeout"))
    except DurationTooLong:
        seconds = math.inf  # said below, with this key's own bound
    except InputError as err:
        raise node.loc.error(err.message, hint=err.hint) from None
    if seconds <= 0:
        raise node.loc.error("timeout must be more than 0s")
    if seconds > MAX_TIMEOUT:
        raise node.loc.error(
            f"timeout must be at most 1h, not {yamlsrc.want_text(node, 'timeout')}",
            hint="it bounds one device's job (connect + its commands); the default is 30s",
        )
    return seconds


def _pace(node: Node) -> float:
    text = yamlsrc.want_text(node, "pace")
    try:
        seconds = parse_duration(text)
    except DurationTooLong:
        seconds = math.inf  # said below, with this key's own bound
    except InputError as err:
        raise node.loc.error(f"pace: {err.message}", hint=err.hint) from None
    if seconds > MAX_PACE:
        raise node.loc.error(
            f"pace must be at most 1h, not {text}",
            hint="pace spaces commands within one drain (200ms for IR);"
            " to run something later, give its playbook an `at:`",
        )
    return seconds


def _host(node: Node, device: str) -> str:
    """An IP address or a hostname; anything else (a space, a newline, a port) is refused."""
    text = yamlsrc.want_str(node, f"host of {device}")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text  # [IPv6]
    try:
        ipaddress.ip_address(bare)
        return bare
    except ValueError:
        pass
    if bare is text and _HOSTNAME.fullmatch(text):
        return text
    hint = "an IP address (192.168.1.40, fe80::1) or a hostname (bar-tv-1.local)"
    if text.count(":") == 1:
        hint = "put the port in `port:`, not in host"
    raise node.loc.error(
        f"host of {device} is not an IP address or hostname: {text!r}", hint=hint
    )


def _paces(
    devices: list[Device],
    groups: Mapping[str, tuple[str, ...]],
    node: Node | None,
    default: float | None,
) -> list[Device]:
    """Resolve every device's pace (rule in the README's Inventory section)."""
    # Own `pace:` key, else the top-level entry naming the device, else the smallest group
    # naming it (most specific; equal sizes: the slowest, safer for IR), else `defaults`.
    best: dict[str, tuple[int, int, float]] = {}  # device → (rank, group size, -pace)
    if node is not None:
        body = yamlsrc.want_map(node, "pace", node.loc)
        names = {device.name for device in devices}
        for name, value in body.items.items():
            seconds = _pace(value)
            if name in groups:
                members, rank = groups[name], 1
            elif name in names:
                members, rank = (name,), 0
            else:
                known = (*(device.name for device in devices), *groups)
                raise body.keys[name].error(
                    f"pace names {name!r}, which is no device or group",
                    hint=yamlsrc.did_you_mean(name, known) or "name a device or a group",
                )
            key = (rank, len(members), -seconds)
            for member in members:
                if member not in best or key < best[member]:
                    best[member] = key
    resolved: list[Device] = []
    for device in devices:
        pace = device.pace  # the device's own key wins
        if pace is None:
            pace = -best[device.name][2] if device.name in best else default
        resolved.append(device if pace is device.pace else replace(device, pace=pace))
    return resolved


def _vars(devices: list[Device], groups: Mapping[str, tuple[str, ...]], node: Node) -> list[Device]:
    """Add the top-level `vars:` mapping (device or group → variables) to each device's own.

    Per variable: the device's own `vars:`, else the entry naming the device, else the entry
    of the smallest group holding it that sets it (equal sizes setting different values is an
    error: no order between them says which one is meant).
    """
    body = yamlsrc.want_map(node, "vars", node.loc)
    names = {device.name for device in devices}
    named: dict[str, dict[str, Value]] = {}  # device → its entry
    best: dict[str, dict[str, tuple[int, list[tuple[str, Value]]]]] = {}  # device → var → ...
    for name, value in body.items.items():
        if name in names:
            named[name] = variables.values_of(value, f"device {name}", f"vars of {name}")
            continue
        if name not in groups:
            known = (*names, *groups)
            raise body.keys[name].error(
                f"vars names {name!r}, which is no device or group",
                hint=yamlsrc.did_you_mean(name, known)
                or "top-level vars: maps a device or a group to its variables; for every"
                " device, use defaults: {vars: ...}",
            )
        members = groups[name]
        for var, set_to in variables.values_of(value, f"group {name}", f"vars of {name}").items():
            for member in members:
                held = best.setdefault(member, {})
                current = held.get(var)
                if current is None or len(members) < current[0]:
                    held[var] = (len(members), [(name, set_to)])
                elif len(members) == current[0]:
                    current[1].append((name, set_to))
    resolved: list[Device] = []
    for device in devices:
        merged: dict[str, Value] = {}
        entry = named.get(device.name, {})
        for var, (size, candidates) in best.get(device.name, {}).items():
            if var in device.vars or var in entry:
                continue  # set for the device itself: no group's value is used
            (group, chosen), *others = candidates
            for other, theirs in others:
                if (type(theirs.value), theirs.value) != (type(chosen.value), chosen.value):
                    raise (theirs.loc or body.loc).error(
                        f"{device.name} is in groups {group} and {other} ({size} devices"
                        f" each), which set {var} differently ({chosen.text!r} at"
                        f" {chosen.loc}, {theirs.text!r} here)",
                        hint=f"set {var} on {device.name} itself, or in one of the two groups",
                    )
            merged[var] = chosen
        merged.update(entry)
        merged.update(device.vars)
        resolved.append(replace(device, vars=merged) if merged != device.vars else device)
    return resolved


def _mac(node: Node, device: str) -> str:
    text = yamlsrc.want_text(node, f"expected_mac of {device}").strip().lower()
    if not _MAC.fullmatch(text):
        raise node.loc.error(
            f"expected_mac of {device} is not a MAC address: {text!r}",
            hint="write six hex pairs, like a0:b7:65:01:02:03",
        )
    return re.sub("[:-]", "", text)
