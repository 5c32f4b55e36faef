"""The inventory: `devices.yml` and the `secrets.yaml` beside it → `Device`s and groups.

Here: the values (`Secret`, `Device`, `Inventory`) and where the file is. Reading and checking
it is `inventory_file` (the schema and keys), `inventory_fields` (one value) and
`inventory_groups` (groups, and what devices take from them); `load_inventory` does it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.inputs import yamlsrc
from cmdctl.inputs.variables import Value
from cmdctl.inputs.yamlsrc import Loc, MapNode

DEFAULT_PORT = 6053  # ESPHome's native API port
INVENTORY_ENV = "CMDCTL_INVENTORY"
INVENTORY_FILE = "devices.yml"
SECRETS_FILE = "secrets.yaml"  # the name ESPHome uses, beside the YAML that refers to it
ALL = "all"

# Longest `pace:` and `timeout:`. Longer is a typo (`99999999d`) or a schedule, and work would
# then wait (near) forever with no word; spacing commands further apart is what `at:` is for.
MAX_PACE = 3600.0
MAX_TIMEOUT = 3600.0


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
    pace: float | None = None  # minimum seconds between two commands sent to it (see
    # inventory_groups.resolve_paces)
    # Why cmdctl cannot talk to it as written (its key did not resolve: a `!secret` missing from
    # secrets.yaml, an unset `${VAR}`, a malformed key), as one located line; None when usable.
    # One device's broken key must not stop the fleet: the inventory loads with a warning, and
    # the transport refuses this device alone (`DeviceRejected`, never contacted).
    problem: str | None = None
    # Playbook variables from the device's own `vars:`, the top-level `vars:` entry naming it and
    # its most specific groups (see inventory_groups.resolve_vars); not the inventory's
    # defaults, which rank below a playbook's own `vars:` (`Inventory.default_vars`).
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
    from cmdctl.inputs import inventory_file

    return inventory_file.read(path, os.environ if env is None else env)
