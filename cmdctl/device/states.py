"""Entity states on one connection: the newest each entity pushed, waits for a target, reads.

The device pushes every state once after the subscribe and again on each change; a `StateBook`
keeps the newest per entity (key, device_id) for the session, which confirms commands against it
and reads current states from it (`DeviceSession.read_states`, `current_states`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmdctl.device.expectation import Expectation

if TYPE_CHECKING:
    from cmdctl.device.entities import EntityRow
    from cmdctl.device.transport import DeviceSession

# Firmware pushes every initial state right after the subscribe (batched within ~100 ms); big
# configs take a few hundred ms. Whatever has not arrived by then is shown as unknown.
STATE_TIMEOUT = 2.0

#: Domains whose entities carry no state to read.
STATELESS = frozenset({"button", "event", "action"})

Entity = tuple[int, int]  # (key, device_id)


@dataclass(slots=True)
class Waiter:
    """A wait for one entity's state to show a target."""

    entity: Entity
    expect: Expectation
    done: asyncio.Future[float]  # loop time the target was seen
    delivered: float = 0.0  # seconds from the batch start to the barrier that covered it


class StateBook:
    """The newest state of each entity on this connection, and the waits for targets."""

    def __init__(self) -> None:
        self.latest: dict[Entity, Any] = {}
        self._waiters: dict[Entity, Waiter] = {}
        self._seen = asyncio.Event()  # set on every update (read waits on it)

    def clear(self) -> None:
        """Forget every state (a new connection starts from nothing)."""
        self.latest.clear()

    def get(self, entity: Entity) -> Any:
        """The newest state of `entity`, or None."""
        return self.latest.get(entity)

    def update(self, state: Any) -> None:
        """Take a pushed state (the client's subscribe_states callback)."""
        entity = (state.key, state.device_id)
        self.latest[entity] = state
        self._seen.set()
        waiter = self._waiters.get(entity)
        if waiter is not None and not waiter.done.done() and waiter.expect.reached(state):
            waiter.done.set_result(asyncio.get_running_loop().time())

    def wait_for(self, entity: Entity, expect: Expectation) -> Waiter:
        """A new wait for `entity` to reach `expect`, replacing (cancelling) any earlier one."""
        loop = asyncio.get_running_loop()
        waiter = Waiter(entity, expect, loop.create_future())
        previous = self._waiters.get(entity)
        if previous is not None and not previous.done.done():
            previous.done.cancel()
        self._waiters[entity] = waiter
        # A switch already in the target state publishes nothing (dedup): accept what we have.
        if expect.reached(self.latest.get(entity)):
            waiter.done.set_result(loop.time())
        return waiter

    def release(self, waiter: Waiter) -> None:
        """Forget `waiter` unless a newer wait for its entity replaced it."""
        if self._waiters.get(waiter.entity) is waiter:
            del self._waiters[waiter.entity]

    def cancel_all(self) -> None:
        """Cancel every wait (the connection is going)."""
        for waiter in self._waiters.values():
            waiter.done.cancel()
        self._waiters.clear()

    async def read(
        self, wanted: Collection[Entity], timeout: float, alive: Callable[[], bool]
    ) -> dict[Entity, Any]:
        """The states of `wanted` seen within `timeout` s, returning early once `alive()` fails."""
        want = set(wanted)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not want <= self.latest.keys() and alive():
            left = deadline - loop.time()
            if left <= 0:
                break
            self._seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._seen.wait(), left)
        return {entity: self.latest[entity] for entity in want if entity in self.latest}


async def current_states(
    session: DeviceSession, rows: Sequence[EntityRow], timeout: float = STATE_TIMEOUT
) -> dict[Entity, Any]:
    """The states the device reports now for the rows that have one (bounded by `timeout`)."""
    wanted = {(r.key, r.device_id) for r in rows if r.selector.partition(".")[0] not in STATELESS}
    return await session.read_states(wanted, timeout)
