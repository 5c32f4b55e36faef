"""Many virtual devices in one event loop, sharing one record."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from cmdctl.core.errors import InputError
from cmdctl.simulator.device import VirtualDevice
from cmdctl.simulator.record import Recorder
from cmdctl.simulator.spec import DeviceSpec

_START_CHUNK = 100  # listeners opened concurrently; bounded to keep start-up memory flat


class Fleet:
    """Start and stop a set of virtual devices: `async with Fleet(specs) as fleet: ...`."""

    def __init__(
        self, specs: Iterable[DeviceSpec], *, record_path: Path | str | None = None
    ) -> None:
        self.recorder = Recorder(record_path)
        self.devices = [VirtualDevice(spec, self.recorder) for spec in specs]
        self._by_name = {d.name: d for d in self.devices}
        if len(self._by_name) != len(self.devices):
            raise InputError("two simulated devices share a name")

    def device(self, name: str) -> VirtualDevice:
        """The device called `name`."""
        return self._by_name[name]

    async def start(self) -> None:
        """Open every listener; on failure, close the ones already open and re-raise."""
        self.recorder.open()
        try:
            for i in range(0, len(self.devices), _START_CHUNK):
                await asyncio.gather(*(d.start() for d in self.devices[i : i + _START_CHUNK]))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every listener and connection, then the record file."""
        await asyncio.gather(*(d.stop() for d in self.devices), return_exceptions=True)
        self.recorder.close()

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
