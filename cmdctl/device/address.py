"""What the transport needs to know about a device: its address, its key, what it must be.

An inventory `Device` is one; so is any object a library caller or a benchmark makes with these
attributes. Kept apart from the session so the drain and the API can name the type without
importing the client (`cmdctl.device.transport` imports aioesphomeapi, ~0.15 s).
"""

from __future__ import annotations

from typing import Protocol


class SecretKey(Protocol):
    """A key that only says what it is when asked."""

    def reveal(self) -> str: ...


class DeviceAddress(Protocol):
    """What the transport needs to know about a device (an inventory `Device` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def key(self) -> SecretKey | None: ...
    @property
    def expected_name(self) -> str | None: ...
    @property
    def expected_mac(self) -> str | None: ...
    @property
    def timeout(self) -> float | None: ...
    # Minimum seconds between two commands sent to the device (None or 0: no pacing); the
    # type is the inventory `Device`'s, which leaves it None when no `pace:` applies.
    @property
    def pace(self) -> float | None: ...
    # An inventory `Device` also has `problem` (see `DeviceSession._refuse_unusable`); it is not
    # required here so that addresses written by library callers (and bench/) keep working.
