"""Fixtures for the engine tests: simulated fleets on 127.0.0.1, a journal, entry builders."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal.store import Journal
from cmdctl.simulator import DeviceSpec, FaultSpec, Fleet, VirtualDevice, venue

from .simproc import cmdctl_argv

__all__ = ["cmdctl_argv"]  # re-exported for the tests


@dataclass(frozen=True, slots=True)
class Key:
    """A stand-in for the inventory's Secret."""

    value: str

    def reveal(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "'***'"


@dataclass(frozen=True, slots=True)
class Address:
    """What the transport needs of an inventory Device."""

    name: str
    host: str
    port: int
    key: Key | None = None
    expected_name: str | None = None
    expected_mac: str | None = None
    timeout: float | None = None
    pace: float | None = None  # seconds between two commands to it (inventory `pace`)


def address(dev: VirtualDevice, **changes: Any) -> Address:
    """The inventory entry a user would write for a simulated device."""
    psk = dev.spec.psk
    base = Address(dev.name, "127.0.0.1", dev.port, Key(psk) if psk else None, dev.name)
    return replace(base, **changes)


def tvs(count: int, *, encrypted: bool = False, seed: int = 0, **faults: Any) -> list[DeviceSpec]:
    """`count` venue TVs, every one with the same faults."""
    specs = venue(count, encrypted=encrypted, seed=seed)
    if faults:
        specs = [replace(s, faults=FaultSpec(**faults)) for s in specs]
    return specs


def make_entry(
    device: str,
    domain: str,
    target: str,
    args: dict[str, Any],
    *,
    batch: str = "B",
    idempotent: bool = True,
    verify: bool = True,
    max_attempts: int = 3,
    priority: Priority = Priority.NORMAL,
    not_before: float | None = None,
    expires: float | None = None,
    step: str = "",
) -> Entry:
    """A fresh pending entry."""
    now = time.time()
    return Entry(
        id=new_id(),
        batch=batch,
        device=device,
        command=Command(domain, target, args),
        priority=priority,
        created=now,
        not_before=now if not_before is None else not_before,
        expires=expires,
        idempotent=idempotent,
        verify=verify,
        max_attempts=max_attempts,
        who="tester@localhost",
        origin="bulk",
        step=step or f"{domain}.{target}",
    )


def queue(journal: Journal, entries: Iterable[Entry]) -> list[Entry]:
    """Append entries as one batch; returns them."""
    from cmdctl.journal import events as ev

    out = list(entries)
    journal.append([ev.queued(e) for e in out])
    return out


def addresses(fleet: Fleet, **changes: Any) -> dict[str, Address]:
    """Inventory addresses of every device in the fleet."""
    return {d.name: address(d, **changes) for d in fleet.devices}


def received(dev: VirtualDevice) -> list[tuple[str, Any]]:
    """(selector, args) of every command the device accepted, in order."""
    return [(r.selector, r.args) for r in dev.received if r.accepted]


def states(journal: Journal, ids: Sequence[str] | None = None) -> dict[str, str]:
    """entry id → state value."""
    ledger = journal.ledger()
    chosen = list(ledger.ids()) if ids is None else ids
    return {i: ledger.state(i).value for i in chosen}


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """An empty journal in a temp dir."""
    return Journal(tmp_path / "journal")


@pytest.fixture
async def fleet3() -> AsyncIterator[Fleet]:
    """Three healthy plaintext TVs."""
    async with Fleet(tvs(3)) as fleet:
        yield fleet


# -- the real `cmdctl` process ---------------------------------------------------------------

def cli_env(home: Path, inventory: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment pointing cmdctl at a journal (and inventory), never a terminal."""
    import os

    env = dict(os.environ, CMDCTL_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    env.pop("CMDCTL_INVENTORY", None)
    if inventory is not None:
        env["CMDCTL_INVENTORY"] = str(inventory)
    env.update(extra)
    return env


def run_cmdctl(
    *args: str, env: dict[str, str], timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run `cmdctl ARGS...` to completion."""
    return subprocess.run(
        cmdctl_argv(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


async def acmdctl(
    *args: str, env: dict[str, str], timeout: float = 30.0
) -> tuple[int, str, str]:
    """Run `cmdctl ARGS...` without blocking the loop (the simulator may live in it)."""
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        *cmdctl_argv(*args), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def start_cmdctl(*args: str, env: dict[str, str]) -> Any:
    """Start `cmdctl ARGS...` in the background (an asyncio Process)."""
    import asyncio

    return await asyncio.create_subprocess_exec(
        *cmdctl_argv(*args), env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
