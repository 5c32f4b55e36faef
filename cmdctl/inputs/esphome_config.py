"""ESPHome device configurations → the devices an inventory needs (`cmdctl inventory import`).

Resolves what ESPHome resolves for the few fields cmdctl reads (`!secret`, `!include`, local
`packages:`, `substitutions`) and nothing more: `!lambda`, `!extend`, `!include_dir_*` and remote
packages are kept as opaque values, never executed or fetched. Only the API key is taken from the
secrets; Wi-Fi and OTA passwords are never read into a result.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cmdctl.core.errors import InputError
from cmdctl.inputs.esphome_yaml import Includes, Value, Values, with_packages
from cmdctl.inputs.inventory import DEFAULT_PORT, SECRETS_FILE, Secret
from cmdctl.inputs.yamlsrc import Loc, MapNode, Node, ScalarNode, SeqNode

DEFAULT_REBOOT_TIMEOUT = 15 * 60.0  # ESPHome's `api: reboot_timeout` default, seconds
# Home Assistant and a dashboard log viewer hold 2 slots; cmdctl needs 1 per device per process.
SLOTS_NEEDED = 3

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # what an inventory accepts as a name
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|sec|min|m|h|d)?\s*")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One device as its ESPHome configuration describes it."""

    name: str
    host: str
    port: int
    key: Secret | None
    key_secret: str | None  # the `!secret` name the configuration used for the key, if any
    groups: tuple[str, ...]
    loc: Loc  # where `esphome: name` is written
    expected_name: str | None  # None when the firmware adds a MAC suffix to the name
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file that gave no device: why, where, and whether it is broken or just not a device."""

    error: InputError
    broken: bool  # YAML error, missing secret or include, bad key (else: not a device, no api:)


@dataclass(frozen=True, slots=True)
class Reading:
    """What a set of configuration files gave: devices, and files that gave none."""

    devices: tuple[DeviceConfig, ...]
    skipped: tuple[Skipped, ...]


class _NotADevice(Exception):
    """A file that is not a device configuration, or a device cmdctl cannot talk to."""

    def __init__(self, error: InputError) -> None:
        super().__init__(error.message)
        self.error = error


def config_files(paths: Iterable[Path], *, exclude: Iterable[Path] = ()) -> list[tuple[Path, Path]]:
    """(file, the PATH it was found under) for every `*.yaml`/`*.yml`, hidden ones left out."""
    skip = {path.resolve() for path in exclude}
    found: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            found += [(file, path) for file in files if file.resolve() not in skip]
        elif path.is_file():
            found.append((path, path.parent))
        else:
            raise InputError(
                f"no such file or directory: {path}",
                hint="give ESPHome configuration files or the directory that holds them",
            )
    return found


def read_configs(
    paths: Sequence[Path],
    *,
    groups: Sequence[str] = (),
    folder_groups: bool = False,
    area_groups: bool = False,
    exclude: Iterable[Path] = (),
) -> Reading:
    """Read every device configuration under `paths`; files that give no device are `Skipped`."""
    for group in groups:
        if not _NAME.fullmatch(group):
            raise InputError(f"bad group name {group!r}", hint="letters, digits, '_', '-', '.'")
    files = config_files(paths, exclude=exclude)
    devices: list[DeviceConfig] = []
    skipped: list[tuple[Path, Skipped]] = []
    includes = Includes()
    seen: dict[str, Loc] = {}
    for file, root in files:
        if file.name == SECRETS_FILE:
            error = Loc(str(file), 1, 1).error(
                "secrets, not a device configuration",
                hint="its API keys are read through the `!secret` lines that use them",
            )
            skipped.append((file, Skipped(error, broken=False)))
            continue
        try:
            extra = [*groups]
            if folder_groups and file.parent != root:
                extra.append(slug(file.parent.name))
            device = _Device(file, includes).read(tuple(extra), area_groups)
        except _NotADevice as err:
            skipped.append((file, Skipped(err.error, broken=False)))
            continue
        except InputError as err:
            skipped.append((file, Skipped(err, broken=True)))
            continue
        if device.name in seen:
            first = seen[device.name]
            error = device.loc.error(
                f"device {device.name!r} is also configured in {first.file}:{first.line}",
                hint="each device name may appear once; this one was left out",
            )
            skipped.append((file, Skipped(error, broken=True)))
            continue
        seen[device.name] = device.loc
        devices.append(device)
    return Reading(tuple(devices), tuple(_explain_fragments(skipped, includes)))


def _explain_fragments(
    skipped: list[tuple[Path, Skipped]], includes: Includes
) -> Iterable[Skipped]:
    """Say which skipped files are packages or includes of a device configuration."""
    for file, item in skipped:
        by = includes.included_by.get(file.resolve())
        if by is not None:  # even a broken one: the configuration including it says why
            err = item.error
            yield Skipped(
                InputError(
                    f"included by {by} (a package or fragment), not a device"
                    " configuration",
                    file=err.file,
                    line=1,
                ),
                broken=False,
            )
        else:
            yield item


def slug(text: str) -> str:
    """A group name from a folder or area name: `Living Room` → `living_room`."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_") or "_"


class _Device:
    """One configuration file, read for what the inventory needs."""

    def __init__(self, file: Path, includes: Includes) -> None:
        self.file = file
        self.includes = includes
        self.values = Values(file, {})
        self.remote: list[str] = []

    def value(self, node: Node, what: str) -> Value:
        return self.values.value(node, what)

    def read(self, groups: tuple[str, ...], area_groups: bool) -> DeviceConfig:
        start = Loc(str(self.file), 1, 1)
        root = self.includes.load(self.file)
        if not isinstance(root, MapNode):
            raise _NotADevice(start.error("not a device configuration (not a mapping)"))
        config = with_packages(root, self.remote)
        subs = config.items.get("substitutions")
        if isinstance(subs, MapNode):
            self.values = Values(self.file, dict(subs.items))
        esphome = config.items.get("esphome")
        if not isinstance(esphome, MapNode):
            raise _NotADevice(
                start.error(
                    "not a device configuration (no 'esphome:' section)",
                    hint=self._remote_hint("a package or fragment?"),
                )
            )
        where = config.keys["esphome"]
        if "name" not in esphome.items:
            raise where.error("esphome: has no 'name:'", hint=self._remote_hint(None))
        name_value = self.value(esphome.items["name"], "esphome: name")
        name, loc = name_value.text, name_value.loc
        if not _NAME.fullmatch(name):
            raise loc.error(
                f"device name {name!r} cannot be an inventory name",
                hint="ESPHome names use lower-case letters, digits and hyphens",
            )
        if "api" not in config.items:
            raise _NotADevice(
                loc.error(
                    f"device {name!r} has no 'api:' (cmdctl talks to the native API)",
                    hint=self._remote_hint("add `api:` with an encryption key to its config"),
                )
            )
        api_node = config.items["api"]
        api_loc = config.keys["api"]
        api = api_node if isinstance(api_node, MapNode) else MapNode({}, {}, api_loc)
        warnings: list[str] = []
        port = DEFAULT_PORT
        if "port" in api.items:
            port = self.port(api.items["port"])
        key, key_secret = self.key(api, api_loc, name, warnings)
        self.check_api(api, api_loc, name, warnings)
        suffix = esphome.items.get("name_add_mac_suffix")
        mac_suffix = isinstance(suffix, ScalarNode) and suffix.value is True
        if mac_suffix:
            warnings.append(
                f"{loc}: {name}: name_add_mac_suffix is on: the device's real name ends in its MAC,"
                " so no expected_name is set (hint: set host: to its address by hand)"
            )
        all_groups = list(groups)
        if area_groups and "area" in esphome.items:
            area = self.area(esphome.items["area"])
            if area:
                all_groups.append(slug(area))
        return DeviceConfig(
            name=name,
            host=self.address(config, name),
            port=port,
            key=key,
            key_secret=key_secret,
            groups=tuple(dict.fromkeys(g for g in all_groups if g != name)),
            loc=loc,
            expected_name=None if mac_suffix else name,
            warnings=tuple(warnings),
        )

    def _remote_hint(self, fallback: str | None) -> str | None:
        if self.remote:
            shown = ", ".join(self.remote)
            return f"it may come from remote package {shown}, which cmdctl does not fetch"
        return fallback

    # -- fields ----------------------------------------------------------------------------

    def key(
        self, api: MapNode, api_loc: Loc, name: str, warnings: list[str]
    ) -> tuple[Secret | None, str | None]:
        encryption = api.items.get("encryption")
        key_node = encryption.items.get("key") if isinstance(encryption, MapNode) else None
        if key_node is None:
            if isinstance(encryption, MapNode):
                warnings.append(
                    f"{encryption.loc}: {name}: api encryption has no key in the configuration"
                    " (provisioned at runtime?), so none is imported"
                    " (hint: add its key to the inventory's secrets.yaml by hand)"
                )
            else:
                warnings.append(
                    f"{api_loc}: {name}: plaintext API (no encryption key): anyone on the network"
                    " can control it (hint: add `encryption: key:` under `api:`)"
                )
            return None, None
        value = self.value(key_node, f"api encryption key of {name}")
        try:
            raw = base64.b64decode(value.text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:  # never show the key itself
            source = f" (!secret {value.secret})" if value.secret else ""
            raise value.loc.error(
                f"api encryption key of {name}{source} is not base64 of 32 bytes",
                hint="an ESPHome API key is 44 characters of base64",
            )
        secret = value.secret if value.secret and _NAME.fullmatch(value.secret) else None
        return Secret(value.text.strip()), secret

    def check_api(self, api: MapNode, loc: Loc, name: str, warnings: list[str]) -> None:
        timeout = DEFAULT_REBOOT_TIMEOUT
        if "reboot_timeout" in api.items:
            value = self.value(api.items["reboot_timeout"], "reboot_timeout")
            timeout = _esphome_duration(value.text, default=-1.0)
            loc = value.loc
        if timeout == DEFAULT_REBOOT_TIMEOUT:
            warnings.append(
                f"{loc}: {name}: api reboot_timeout is 15min (the default): with no client"
                " connected for 15 minutes the device reboots, and cmdctl connects only to send"
                " (hint: set `reboot_timeout: 0s` under `api:` unless Home Assistant stays"
                " connected)"
            )
        if "max_connections" in api.items:
            value = self.value(api.items["max_connections"], "max_connections")
            if value.text.isdigit() and int(value.text) < SLOTS_NEEDED:
                warnings.append(
                    f"{value.loc}: {name}: api max_connections is {value.text}: Home Assistant"
                    " and a log viewer take 2 and cmdctl needs 1 more"
                    f" (hint: max_connections: {SLOTS_NEEDED} or more)"
                )

    def port(self, node: Node) -> int:
        value = self.value(node, "api port")
        if not value.text.isdigit() or not 1 <= int(value.text) <= 65535:
            raise value.loc.error(f"api port must be 1..65535, not {value.text[:20]!r}")
        return int(value.text)

    def address(self, config: MapNode, name: str) -> str:
        networks = [config.items.get(k) for k in ("wifi", "ethernet", "openthread")]
        maps = [n for n in networks if isinstance(n, MapNode)]
        for net in maps:
            if "use_address" in net.items:
                return self.value(net.items["use_address"], "use_address").text
        for net in maps:
            static = self.static_ip(net)
            if static is None and isinstance(net.items.get("networks"), SeqNode):
                listed = net.items["networks"]
                assert isinstance(listed, SeqNode)
                found = [self.static_ip(n) for n in listed.items if isinstance(n, MapNode)]
                statics = [s for s in found if s is not None]
                static = statics[0] if len(statics) == 1 else None
            if static is not None:
                return static
        domain = ".local"
        for net in maps:
            if "domain" in net.items:
                domain = self.value(net.items["domain"], "domain").text
                break
        return f"{name}{domain}"

    def static_ip(self, net: MapNode) -> str | None:
        manual = net.items.get("manual_ip")
        if isinstance(manual, MapNode) and "static_ip" in manual.items:
            return self.value(manual.items["static_ip"], "static_ip").text
        return None

    def area(self, node: Node) -> str | None:
        if isinstance(node, MapNode):  # newer ESPHome: `area: {id: ..., name: ...}`
            node = node.items.get("name", ScalarNode(None, "", node.loc))
        return self.value(node, "esphome: area").text if node_is_value(node) else None

def node_is_value(node: Node) -> bool:
    """A scalar with a value (a `!secret` counts)."""
    return isinstance(node, ScalarNode) and node.value is not None


def _esphome_duration(text: str, *, default: float) -> float:
    """Seconds in an ESPHome time period (`15min`, `900s`, `0s`; a bare number is ms)."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return default
    number, unit = float(match.group(1)), match.group(2)
    if unit is None:
        return number / 1000.0
    return number * (86400.0 if unit == "d" else _UNIT[unit])
