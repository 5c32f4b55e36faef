"""The entity cache: each device's entities and actions as last listed, kept in the state directory.

Every successful connection records the listing (`learned`, called by the session), so that
`validate`, `bulk` and `send --queue` can check commands while the device is away, and
`devices entities --cached` can show them. One JSON file per device under
`<state dir>/entities/`, written atomically with mode 0600, at most once per process and firmware,
and only when its content changed; the file's mtime is the last time a connection confirmed it.
The header is the first line, then one entity or action per line (built by the C JSON encoder:
a fleet's first drain writes a file per device).

The format (`FORMAT`) keeps every field of the aioesphomeapi info objects, tagged with the
class name (`"$type": "SelectInfo"`), enums as `{"$enum": NAME, "value": N}`; loading rebuilds
look-alike objects that `EntityIndex` and the validator read by duck typing, so checking against
the cache never imports aioesphomeapi (~0.2 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import os
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmdctl.core import durable
from cmdctl.core.errors import DeviceRejected
from cmdctl.core.model import Command, JSONValue
from cmdctl.device import cacheplace

if TYPE_CHECKING:
    import asyncio

    from cmdctl.device.entities import EntityIndex
    from cmdctl.device.fleetview import DeviceEntities

# Imported by every session (`learned`): asyncio, hashlib and logging are imported where they
# are needed. The CLI sets the place on every run through `cacheplace`, not through this module.

FORMAT = 1
SUBDIR = "entities"
FILE_MODE = 0o600
DIR_MODE = 0o700

#: (directory, device) → (compilation_time, version) already recorded by this process.
_recorded: dict[tuple[str, str], tuple[str, str]] = {}
#: Writes in flight (strong references until they finish).
_pending: set[asyncio.Future[None]] = set()


class CacheUnreadable(ValueError):
    """A cache file that cannot be used (damaged, or written by a newer cmdctl)."""


def use(state_dir: Path | None) -> None:
    """Record listings under `state_dir/entities` from now on (None: stop recording)."""
    cacheplace.use(state_dir)


def directory(state_dir: Path) -> Path:
    """Where the cache files of a state directory live."""
    return state_dir / SUBDIR


def path_of(state_dir: Path, device: str) -> Path:
    """The cache file of one device (its inventory name, escaped for the file system)."""
    return directory(state_dir) / f"{urllib.parse.quote(device, safe='')}.json"


# -- recording -----------------------------------------------------------------------------------


def learned(device: str, info: Any, entities: Iterable[Any], services: Iterable[Any]) -> None:
    """A session listed `device`: record it in a worker thread, unless this process already did.

    Called on the event loop right after the listing; costs a dict look-up when nothing changed.
    """
    state_dir = cacheplace.state_dir
    if state_dir is None:
        return
    marker = (str(info.compilation_time), str(info.esphome_version))
    key = (str(state_dir), device)
    if _recorded.get(key) == marker:
        return
    _recorded[key] = marker
    import asyncio

    entities, services = list(entities), list(services)
    loop = asyncio.get_running_loop()
    # The default executor: asyncio.run waits for it at exit, so the write always finishes.
    future = loop.run_in_executor(None, _record, state_dir, device, info, entities, services)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


async def flush() -> None:
    """Wait for the cache writes this process started (asyncio.run waits for them anyway)."""
    import asyncio

    if _pending:
        await asyncio.gather(*list(_pending))


def _record(
    state_dir: Path, device: str, info: Any, entities: list[Any], services: list[Any]
) -> None:
    try:
        save(state_dir, device, info, entities, services)
    except OSError as err:  # the cache only saves a round trip later: never fail a run for it
        import logging

        logging.getLogger(__name__).debug("entity cache for %s not written: %s", device, err)


def save(
    state_dir: Path, device: str, info: Any, entities: Iterable[Any], services: Iterable[Any]
) -> bool:
    """Write the cache file unless it already holds this listing; True when written.

    An unchanged listing only gets its mtime touched (the "last seen" of `devices ls`).
    """
    body = _body(info, list(entities), list(services))
    firmware = {name: str(getattr(info, name, "") or "") for name in _FIRMWARE_FIELDS}
    path = path_of(state_dir, device)
    old = _header(path)
    if old is not None and old.get("hash") == body.digest and old.get("firmware") == firmware:
        with contextlib.suppress(OSError):
            os.utime(path)
        return False
    header = {
        "format": FORMAT,
        "device": device,
        "taken_at": round(time.time(), 3),
        "firmware": firmware,
        "hash": body.digest,
        "counts": body.counts,
    }
    # The header's closing brace gives way to the listing, one entity or action per line.
    _write_atomically(path, json.dumps(header)[:-1].encode() + body.text)
    return True


@dataclass(frozen=True)
class _Body:
    """A listing as the cache writes it: its hash, its counts, and its text after the header."""

    digest: str
    counts: dict[str, int]
    text: bytes


#: The last listing written: (repr of the listing, the listing, its body). A fleet runs a few
#: firmware configurations, and 100 devices built from one YAML list equal entities: their
#: body is built once. Replaced whole, read once: writes run in worker threads.
_last_body: tuple[str, tuple[Any, ...], _Body] | None = None


def _body(info: Any, entities: list[Any], services: list[Any]) -> _Body:
    global _last_body
    subs = [
        {"device_id": d.device_id, "name": d.name, "area_id": getattr(d, "area_id", 0)}
        for d in getattr(info, "devices", ())
    ]
    listing = (subs, entities, services)
    # Equal by `==` (every compared field) and by `repr` (which tells -0.0 from 0.0 and True
    # from 1): then every field dumps the same.
    shown = repr(listing)
    last = _last_body
    if last is not None and last[0] == shown and last[1] == listing:
        return last[2]
    import hashlib

    listed = {"entities": [_dump(e) for e in entities], "actions": [_dump(s) for s in services]}
    parts = [f'"sub_devices": {json.dumps(subs)}']
    for name, items in listed.items():
        inner = "".join(f"\n{json.dumps(item)}," for item in items)[:-1]
        parts.append(f'"{name}": [{inner}\n]' if items else f'"{name}": []')
    canonical = _canonical({"sub_devices": subs, **listed})
    body = _Body(
        digest="sha256:" + hashlib.sha256(canonical).hexdigest(),
        counts={"entities": len(entities), "actions": len(services)},
        text=("".join(f",\n{part}" for part in parts) + "}\n").encode(),
    )
    _last_body = (shown, listing, body)
    return body


_FIRMWARE_FIELDS = (
    "name",
    "friendly_name",
    "mac_address",
    "esphome_version",
    "compilation_time",
    "model",
    "manufacturer",
    "project_name",
    "project_version",
)


def _header(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_atomically(path: Path, data: bytes) -> None:
    """tmp + fsync + rename + fsync of the directory; the file is 0600, the directories 0700."""
    folder = path.parent
    for d in (folder.parent, folder):
        if not d.is_dir():
            d.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(d, DIR_MODE)  # mkdir's mode is filtered by the umask
    durable.replace_file(path, data, mode=FILE_MODE)


#: A dataclass's field names, by class.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _dump(obj: Any) -> JSONValue:
    """An info object (or a field of one) as tagged JSON."""
    if isinstance(obj, enum.Enum):
        return {"$enum": obj.name, "value": int(obj.value)}
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"$float": repr(obj)}
    if isinstance(obj, list | tuple):
        return [_dump(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(obj))
        out: dict[str, JSONValue] = {"$type": cls.__name__}
        for name in names:
            out[name] = _dump(getattr(obj, name))
        return out
    return None  # nothing the validator reads (bytes, unknown types)


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# -- loading -------------------------------------------------------------------------------------


class CachedInfo:
    """An info object rebuilt from the cache: the attributes of the aioesphomeapi original."""

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        return f"<cached {type(self).__name__} {self.__dict__.get('name', '')!r}>"


class CachedEnum(int):
    """An enum member rebuilt from the cache: its integer value, with `.name`."""

    name: str

    def __new__(cls, value: int, name: str) -> CachedEnum:
        member = super().__new__(cls, value)
        member.name = name
        return member

    @property
    def value(self) -> int:
        """The wire value (as `enum.Enum.value`)."""
        return int(self)

    def __repr__(self) -> str:
        return f"<{self.name}: {int(self)}>"


_CLASSES: dict[str, type[CachedInfo]] = {}


def _load(value: Any) -> Any:
    if isinstance(value, list):
        return [_load(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "$enum" in value:
        return CachedEnum(int(value["value"]), str(value["$enum"]))
    if "$float" in value:
        return float(value["$float"])
    name = str(value.get("$type", "CachedInfo"))
    if not name.isidentifier():
        raise CacheUnreadable(f"bad type name {name!r}")
    kind = _CLASSES.get(name)
    if kind is None:
        # Named like the original: `domain_of` derives the domain from the class name.
        kind = _CLASSES[name] = type(name, (CachedInfo,), {})
    return kind({k: _load(v) for k, v in value.items() if k != "$type"})


@dataclass(frozen=True, slots=True)
class CachedDevice:
    """One device's cached listing."""

    device: str
    path: Path
    taken_at: float  # when this listing was first written
    seen_at: float  # the last connection that confirmed it (the file's mtime)
    firmware: Mapping[str, str]
    digest: str  # the listing's hash: devices with the same one accept the same commands
    # The tagged JSON; rebuilt into info objects by `index()` only (devices sharing a listing
    # are checked against one index, so most files are never rebuilt).
    entities: tuple[Any, ...] = field(repr=False)
    actions: tuple[Any, ...] = field(repr=False)
    sub_devices: Mapping[int, str] = field(default_factory=dict)

    @property
    def esphome_version(self) -> str:
        """The ESPHome version the device ran when listed."""
        return self.firmware.get("esphome_version", "")

    @property
    def compilation_time(self) -> str:
        """When that firmware was built, as the device reports it."""
        return self.firmware.get("compilation_time", "")

    def index(self) -> EntityIndex:
        """An `EntityIndex` to resolve and validate commands against."""
        from cmdctl.device.entities import EntityIndex

        try:
            entities = [_load(e) for e in self.entities]
            actions = [_load(a) for a in self.actions]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CacheUnreadable(f"{self.path}: damaged ({type(err).__name__}: {err})") from err
        return EntityIndex(self.device, entities, actions, self.sub_devices)

    def describe(self) -> str:
        """`ESPHome 2026.10.0 built 2026-11-23 12:00:00 +0000`."""
        built = f" built {self.compilation_time}" if self.compilation_time else ""
        return f"ESPHome {self.esphome_version or '?'}{built}"


def load(state_dir: Path, device: str) -> CachedDevice | None:
    """The cached listing of `device` (None when there is none); CacheUnreadable if damaged."""
    path = path_of(state_dir, device)
    try:
        raw = path.read_bytes()
        seen = path.stat().st_mtime
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CacheUnreadable(f"{path}: {err.strerror or err}") from err
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise CacheUnreadable(f"{path}: not a cache file")
        if data.get("format") != FORMAT:
            raise CacheUnreadable(
                f"{path}: format {data.get('format')!r}, this cmdctl reads {FORMAT}"
            )
        entities, actions = tuple(data["entities"]), tuple(data["actions"])
        subs = {int(d["device_id"]): str(d["name"]) for d in data.get("sub_devices", [])}
        firmware = {str(k): str(v) for k, v in data.get("firmware", {}).items()}
        return CachedDevice(
            device=device,
            path=path,
            taken_at=float(data.get("taken_at", seen)),
            seen_at=seen,
            firmware=firmware,
            digest=str(data.get("hash", "")),
            entities=entities,
            actions=actions,
            sub_devices=subs,
        )
    except CacheUnreadable:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CacheUnreadable(f"{path}: damaged ({type(err).__name__}: {err})") from err


def check(index: EntityIndex, command: Command) -> tuple[DeviceRejected, bool] | None:
    """Why a cached listing refuses `command` (and whether the entity itself was found).

    None when it passes, or when the cache cannot tell (a field it lacks): the live check on
    connect still applies.
    """
    try:
        index.resolve(command)
    except DeviceRejected as err:
        return err, False
    try:
        index.plan(command)
    except DeviceRejected as err:
        return err, True
    except (AttributeError, TypeError, KeyError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class Summary:
    """What `devices ls` shows of a device's cache: firmware, counts, when last confirmed."""

    device: str
    seen_at: float
    taken_at: float
    esphome_version: str
    compilation_time: str
    entities: int
    actions: int


def summary(state_dir: Path, device: str) -> Summary | None:
    """The header of `device`'s cache file (None when missing or unreadable)."""
    path = path_of(state_dir, device)
    try:
        seen = path.stat().st_mtime
    except OSError:
        return None
    data = _header(path)
    if data is None or data.get("format") != FORMAT:
        return None
    firmware = data.get("firmware") or {}
    counts = data.get("counts") or {}
    try:
        return Summary(
            device=device,
            seen_at=seen,
            taken_at=float(data.get("taken_at", seen)),
            esphome_version=str(firmware.get("esphome_version", "")),
            compilation_time=str(firmware.get("compilation_time", "")),
            entities=int(counts.get("entities", 0)),
            actions=int(counts.get("actions", 0)),
        )
    except (TypeError, ValueError, AttributeError):
        return None


def listing(cached: CachedDevice) -> DeviceEntities:
    """`devices entities --cached`: the listing as `fleetview.inspect` shows it, without states."""
    from cmdctl.device import fleetview

    return fleetview.describe(cached.device, CachedInfo(cached.firmware), cached.index(), {})
