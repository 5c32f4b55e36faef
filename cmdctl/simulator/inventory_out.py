"""Write a `devices.yml` + `secrets.yaml` pointing cmdctl at running virtual devices."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from cmdctl.core.errors import InputError
from cmdctl.simulator.device import VirtualDevice


def _scalar(value: object) -> str:
    """One YAML flow scalar or sequence, quoted only when needed."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("...").strip()


def secret_name(device: str) -> str:
    """`bar-tv-1` → `bar_tv_1_key`."""
    return "".join(c if c.isalnum() else "_" for c in device) + "_key"


def write_inventory(devices: Iterable[VirtualDevice], inventory_path: Path) -> None:
    """Write the inventory and, beside it, `secrets.yaml` (merged with existing keys); mode 0600."""
    inventory_path = Path(inventory_path)
    secrets_path = inventory_path.with_name("secrets.yaml")
    secrets: dict[str, Any] = {}
    if secrets_path.exists():
        try:
            loaded = yaml.safe_load(secrets_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as err:
            raise InputError(
                f"cannot read existing secrets: {err}", file=str(secrets_path)
            ) from err
        if isinstance(loaded, dict):
            secrets.update(loaded)
    lines = [
        "# written by `cmdctl simulate --write-inventory`; the devices run on this machine",
        "devices:",
    ]
    for device in devices:
        spec = device.spec
        lines += [
            f"  {_scalar(spec.name)}:",
            f"    host: {_scalar(spec.host)}",
            f"    port: {device.port}",
        ]
        if spec.psk is not None:
            name = secret_name(spec.name)
            lines.append(f"    key: !secret {name}")
            secrets[name] = spec.psk
        lines.append(f"    expected_name: {_scalar(spec.name)}")
        if spec.groups:
            lines.append(f"    groups: {_scalar(list(spec.groups))}")
    _write_private(secrets_path, yaml.safe_dump(secrets, sort_keys=True))
    _write_private(inventory_path, "\n".join(lines) + "\n")


def _write_private(path: Path, text: str) -> None:
    """Replace `path` atomically with a 0600 file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
