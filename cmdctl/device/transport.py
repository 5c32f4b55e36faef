"""Talking to one device with the real aioesphomeapi client: connect, resolve, send, confirm.

One client and one connection per device at a time (devices have 4–5 API slots and Home
Assistant holds one). A session lists the entities once per connection, validates every command
against them before anything is sent, writes a device's commands back to back, proves delivery
with one following request/response (the device handles a connection's messages in order), then
waits, bounded, for the subscribed states to show the targets.

Statuses: `confirmed` (the state shows the target), `delivered` (barrier passed; nothing to
confirm, or a cover still moving), `mismatch` (delivered, but the state did not reach the target
within the verify timeout). A mismatch is not an exception: the device took the command and did
something else, or was slow; the engine records it as a failure of kind "mismatch" and retries
it only when the entry is idempotent, up to its max attempts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Collection, Sequence
from types import TracebackType
from typing import Any

from aioesphomeapi.model import ConnectionClosedEvent

from cmdctl.core.errors import DeliveryUnknown, DeviceError, DeviceRejected, DeviceUnavailable
from cmdctl.core.model import Command
from cmdctl.core.version import __version__
from cmdctl.device import cache, wire
from cmdctl.device.address import DeviceAddress
from cmdctl.device.classify import (
    DEVICE_EXCEPTIONS,
    another_device,
    classify,
    device_closed,
)
from cmdctl.device.entities import EntityIndex, Plan, SharedPlans
from cmdctl.device.expectation import Expectation
from cmdctl.device.segment import Marks, Outcome, Results, unsendable
from cmdctl.device.states import Entity, StateBook, Waiter
from cmdctl.device.timeouts import (
    ACTION_TIMEOUT,
    BARRIER_TIMEOUT,
    CONNECT_TIMEOUT,
    DEFAULT_JOB_TIMEOUT,
    DISCOVER_TIMEOUT,
    VERIFY_TIMEOUT,
)

CLIENT_INFO = f"cmdctl/{__version__}"

#: What a device job can fail with: already classified, or still raw from the client.
_FAILURES: tuple[type[BaseException], ...] = (DeviceError, *DEVICE_EXCEPTIONS)

class DeviceSession:
    """One connection to one device; use as `async with DeviceSession(device) as session`."""

    def __init__(
        self,
        device: DeviceAddress,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        verify_timeout: float = VERIFY_TIMEOUT,
        job_timeout: float | None = None,
        shared: SharedPlans | None = None,
    ) -> None:
        self.device = device
        self._shared = shared  # plans shared with the other devices of a drain pass
        self.connect_timeout = connect_timeout
        self.verify_timeout = verify_timeout
        self.job_timeout = job_timeout or device.timeout or DEFAULT_JOB_TIMEOUT
        self.info: Any = None  # aioesphomeapi DeviceInfo of the current connection
        self.connect_seconds: float | None = None
        self._client: wire.Client | None = None
        self._index: EntityIndex | None = None
        self._connected = False
        self._closing = False
        self._subscribed = False
        self._states = StateBook()
        self._lost: DeviceError | None = None
        self._lost_event = asyncio.Event()
        self._deadline = 0.0
        self._phase_timeout: float | None = None  # the bound of the await in flight

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> DeviceSession:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def name(self) -> str:
        """The device's inventory name."""
        return self.device.name

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return self._connected and self._client is not None and self._client.is_connected

    @property
    def api_version(self) -> str:
        """`major.minor` the device answered Hello with ("" when not connected)."""
        version = self._client.api_version if self._client is not None else None
        return f"{version.major}.{version.minor}" if version is not None else ""

    @property
    def index(self) -> EntityIndex:
        """The entity list of the current connection (connect first)."""
        if self._index is None:
            raise DeviceUnavailable(self.name, "not connected")
        return self._index

    async def connect(self) -> None:
        """Connect, log in, and list the entities; no-op when already connected."""
        self._start_job()
        await self._ensure_connected()

    def close(self) -> None:
        """Drop the connection: DisconnectRequest without waiting for the answer.

        Every batch already ended with a round trip, so a graceful wait proves nothing more and
        would cost a round trip per device; the socket is closed at once and the slot freed.
        """
        self._closing = True
        self._connected = False
        self._states.cancel_all()
        if self._client is not None:
            self._client.force_disconnect()

    # -- commands ------------------------------------------------------------------------------

    def plan(self, command: Command) -> Plan:
        """Resolve and validate a command against this device, without sending anything."""
        return self.index.plan(command)

    async def execute(self, command: Command, *, verify: bool = True) -> Outcome:
        """Send one command and wait for its outcome; raises the `DeviceError` if it failed."""
        (result,) = await self.execute_many([command], verify=verify)
        if isinstance(result, DeviceError):
            raise result
        return result

    async def execute_many(
        self, commands: Sequence[Command], *, verify: bool | Sequence[bool] = True
    ) -> list[Outcome | DeviceError]:
        """Send commands in order over this connection: all sends, one barrier, then verify.

        Raises a `DeviceError` when nothing could be attempted (connect failed). Otherwise one
        result per command: invalid ones are `DeviceRejected` and not sent; after a connection
        failure mid-batch, commands already written get `DeliveryUnknown` and the rest the
        connection's error. In a segment of more than one command, the entity commands are
        written together (`cmdctl.device.segment`): a failed write of them leaves all of them
        `DeliveryUnknown`. A batch of one command is written as it comes.

        Only the last command to an entity in a segment is verified (earlier ones end
        `delivered`: firmware pushes only the latest state of an entity per 100 ms batch). An
        action may change any entity, so commands before it are confirmed before it is sent: a
        batch is cut into segments at actions that follow something still to confirm.

        States are subscribed to right before the first verified command is written, not
        before the batch: the device handles a connection's messages in order, so everything
        written earlier has acted by then and the states it sends (every entity once, then each
        change) show at least what that command found; the pushes of the commands before it,
        which nothing waits for, are never sent (a device with 100 queued volume steps sends
        one state, not 100).
        """
        flags = [verify] * len(commands) if isinstance(verify, bool) else list(verify)
        if len(flags) != len(commands):
            raise ValueError("one verify flag per command")
        self._start_job()
        await self._ensure_connected()
        results: list[Outcome | DeviceError | None] = [None] * len(commands)
        todo: list[tuple[int, Plan]] = []
        for i, command in enumerate(commands):
            try:
                plan = self.index.plan(command)
            except DeviceRejected as err:
                results[i] = err
                continue
            todo.append((i, plan if flags[i] else _unverified(plan)))
        start = asyncio.get_running_loop().time()
        segment: list[tuple[int, Plan]] = []
        for i, plan in todo:
            if plan.command.domain == "action" and any(p.expect for _, p in segment):
                if not await self._segment(segment, results, start):
                    break
                segment = []
            segment.append((i, plan))
        else:
            await self._segment(segment, results, start)
        return [r if r is not None else self._unexpected() for r in results]

    async def _segment(
        self, segment: list[tuple[int, Plan]], results: Results, start: float
    ) -> bool:
        """Send one segment, prove delivery, verify; False when the connection failed.

        In a segment of more than one command, the entity commands are held by the client and
        written together (`wire.Client`), before anything else goes out.
        """
        loop = asyncio.get_running_loop()
        last = {(p.key, p.device_id): i for i, p in segment if p.expect is not None}
        marks = Marks(self.name, results, [] if len(segment) > 1 else None)
        phase = "sending"
        try:
            for i, plan in segment:
                entity = (plan.key, plan.device_id)
                if plan.expect is not None and last[entity] == i:
                    if not self._subscribed:  # once per connection (see execute_many)
                        marks.flush(self._client_or_fail())  # what is held goes first
                        self._subscribe()
                    marks.waiting[i] = self._states.wait_for(entity, plan.expect)
                if plan.command.domain == "action":  # what is held goes first
                    marks.flush(self._client_or_fail())
                if wire.answers(plan):
                    phase = "waiting for the action's answer"
                    answer, answered = await self._call_action(plan, start)
                    results[i] = answer
                    if answered:  # it came after everything written before it: all delivered
                        marks.delivered(loop.time() - start)
                    phase = "sending"
                    continue
                try:
                    client = self._client_or_fail()
                    if plan.command.domain == "action":
                        await wire.call(client, plan)
                    elif marks.held is not None:
                        client.hold()
                        wire.send(client, plan, self.name)
                        marks.held.append((i, plan))
                        continue
                    else:
                        wire.send(client, plan, self.name)
                except _FAILURES:
                    raise
                except Exception as err:  # the client could not encode it: nothing was written
                    marks.refused(i, plan, err)
                    continue
                marks.written(i)
            marks.flush(self._client_or_fail())
            if marks.pending:
                phase = "waiting for delivery"
                await self._barrier()
                marks.delivered(loop.time() - start)
        except _FAILURES as err:
            if self._client is not None:
                self._client.release()  # held commands were never written: they get the error
            marks.failed(self._fail(err, phase))
            return False
        await self._verify(marks.waiting, results, start)
        return True

    async def _verify(
        self,
        waiting: dict[int, Waiter],
        results: list[Outcome | DeviceError | None],
        start: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        until = min(loop.time() + self.verify_timeout, self._deadline)
        open_ = [w.done for i, w in waiting.items() if results[i] is None and not w.done.done()]
        if open_ and not self._lost_event.is_set():
            lost = asyncio.ensure_future(self._lost_event.wait())
            try:
                while (left := until - loop.time()) > 0 and not lost.done():
                    remaining: list[asyncio.Future[Any]] = [f for f in open_ if not f.done()]
                    if not remaining:
                        break
                    remaining.append(lost)
                    await asyncio.wait(remaining, timeout=left, return_when="FIRST_COMPLETED")
            finally:
                lost.cancel()
        now = loop.time() - start
        for i, waiter in waiting.items():
            self._states.release(waiter)
            if results[i] is not None:
                continue
            done = waiter.done
            if done.done() and not done.cancelled():
                # A state seen before the barrier still counts from when delivery was proven.
                results[i] = Outcome("confirmed", max(done.result() - start, waiter.delivered))
                continue
            done.cancel()
            state = self._states.get(waiter.entity)
            expect = waiter.expect
            if self._lost is not None:
                results[i] = Outcome("delivered", now, "connection lost before confirmation")
            elif expect.moving(state):
                results[i] = Outcome("delivered", now, f"still moving: {expect.observed(state)}")
            else:
                seen = expect.observed(state)
                results[i] = Outcome("mismatch", now, f"expected {expect.describe()}, saw {seen}")

    # -- the device side -------------------------------------------------------------------

    async def _ensure_connected(self) -> None:
        if self.connected:
            return
        device = self.device
        self._refuse_unusable()
        if self._client is None:
            self._client = wire.Client(
                device.host,
                device.port,
                None,
                noise_psk=self._reveal() or None,
                client_info=CLIENT_INFO,
                expected_name=device.expected_name or None,
                expected_mac=device.expected_mac or None,
                # Answering the device's GetTimeRequest is Home Assistant's job; for a short batch
                # connection it would only cost a timezone lookup in a worker thread per process.
                provide_time=False,
            )
            self._client.add_connection_closed_callback(self._on_closed)
        client = self._client
        client.release()
        self._closing = False
        self._lost = None
        self._lost_event.clear()
        self._subscribed = False
        self._states.clear()
        self._index = None
        loop = asyncio.get_running_loop()
        began = loop.time()
        phase, bound = "connecting", self._bound(self.connect_timeout)
        try:
            async with asyncio.timeout(bound):
                await client.connect(login=True, log_errors=False)
            self.connect_seconds = loop.time() - began
            phase, bound = "listing entities", self._bound(DISCOVER_TIMEOUT)
            async with asyncio.timeout(bound):
                info, entities, services = await client.device_info_and_list_entities()
        except DEVICE_EXCEPTIONS as err:
            client.force_disconnect()
            raise classify(
                err,
                self.name,
                host=self.device.host,
                port=self.device.port,
                phase=phase,
                timeout=bound,
                secret=self._reveal(),
            ) from err
        self._check_identity(info)
        self.info = info
        sub_devices = {d.device_id: d.name for d in info.devices}
        self._index = EntityIndex(self.name, entities, services, sub_devices, self._shared)
        self._connected = True
        cache.learned(self.name, info, entities, services)  # written off the loop, when changed

    def _check_identity(self, info: Any) -> None:
        """Plaintext sessions carry no MAC before DeviceInfo: check both here."""
        device = self.device
        mac = info.mac_address.replace(":", "").lower()
        wrong_name = device.expected_name and info.name != device.expected_name
        wrong_mac = device.expected_mac and mac and mac != device.expected_mac.lower()
        if wrong_name or wrong_mac:
            assert self._client is not None
            self._client.force_disconnect()
            raise another_device(
                self.name,
                name=info.name,
                mac=None if wrong_name else mac,
                where=f" at {self._where()}",
            )

    def _subscribe(self) -> None:
        if not self._subscribed:
            self._client_or_fail().subscribe_states(self._states.update)
            self._subscribed = True

    def _on_closed(self, event: ConnectionClosedEvent) -> None:
        self._connected = False
        if self._closing:
            return
        if event.error is not None and not event.expected_disconnect:
            self._lost = self._classify(event.error, "sending")
        else:
            self._lost = device_closed(self.name, expected=event.expected_disconnect)
        self._lost_event.set()

    async def _call_action(self, plan: Plan, start: float) -> tuple[Outcome | DeviceError, bool]:
        """Run an action that answers; returns its outcome and whether an answer came."""
        client = self._client_or_fail()
        self._phase_timeout = bound = self._bound(ACTION_TIMEOUT)
        try:
            response = await wire.ask(client, plan, bound)
        except TimeoutError:
            if not self.connected:
                raise
            # The device took the call but never answered; the connection itself is fine.
            unknown = DeliveryUnknown(
                self.name,
                f"{plan.selector}: no answer after {bound:.1f}s (it may or may not have run)",
            )
            return unknown, False
        except _FAILURES:
            raise
        except Exception as err:  # the client could not encode it: nothing was written
            return unsendable(self.name, plan, err), False
        elapsed = asyncio.get_running_loop().time() - start
        if response is None:
            return Outcome("delivered", elapsed), True
        if not response.success:
            reason = response.error_message or "no reason given"
            return DeviceRejected(self.name, f"{plan.selector} failed: {reason}"), True
        data = response.response_data.decode("utf-8", "replace") if response.response_data else ""
        return Outcome("delivered", elapsed, data), True

    async def _barrier(self) -> None:
        """A request/response after the sends: the device has handled everything before it."""
        self._phase_timeout = bound = self._bound(BARRIER_TIMEOUT)
        async with asyncio.timeout(bound):
            await self._client_or_fail().device_info()

    async def read_states(self, wanted: Collection[Entity], timeout: float) -> dict[Entity, Any]:
        """The states the device reports for `wanted` (key, device_id) within `timeout` s.

        Uses the session's one state subscription (the one confirmation uses). Entities that
        report nothing in time are left out; DeviceUnavailable if the connection drops.
        """
        want = set(wanted)
        if want:
            self._subscribe()
        states = await self._states.read(want, timeout, lambda: self._connected)
        if not self._connected:
            raise self._lost or DeviceUnavailable(self.name, "connection lost while reading states")
        return states

    def entity(self, domain: str, target: str) -> Entity:
        """(key, device_id) of the entity a selector names, in any domain; `DeviceRejected`
        (with a "did you mean") when the device has none."""
        info = self.index.locate(Command(domain, target))
        return (info.key, getattr(info, "device_id", 0))

    async def wait_state(
        self, entity: Entity, expect: Expectation, timeout: float
    ) -> tuple[bool, Any]:
        """Wait up to `timeout` s for `entity` to show `expect` (at once if it does already):
        (reached, the newest state seen); DeviceUnavailable if the connection drops."""
        self._subscribe()
        waiter = self._states.wait_for(entity, expect)
        lost = asyncio.ensure_future(self._lost_event.wait())
        try:
            await asyncio.wait((waiter.done, lost), timeout=timeout,
                               return_when="FIRST_COMPLETED")
        finally:
            lost.cancel()
            self._states.release(waiter)
        reached = waiter.done.done() and not waiter.done.cancelled()
        if not reached:
            waiter.done.cancel()
            if not self._connected:
                raise self._lost or DeviceUnavailable(self.name, "connection lost while waiting")
        return reached, self._states.get(entity)

    async def round_trip(self) -> float:
        """Seconds for one request/response on the open connection (a liveness probe)."""
        self._start_job()
        began = time.perf_counter()
        try:
            await self._barrier()
        except _FAILURES as err:
            raise self._fail(err, "probing") from err
        return time.perf_counter() - began

    # -- helpers -------------------------------------------------------------------------------

    def _start_job(self) -> None:
        self._deadline = asyncio.get_running_loop().time() + self.job_timeout

    def _bound(self, phase_timeout: float) -> float:
        """The phase's own timeout, cut to what is left of the job timeout."""
        left = self._deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise DeviceUnavailable(
                self.name, f"timed out after {self.job_timeout:.1f}s (device job timeout)"
            )
        return min(phase_timeout, left)

    def _client_or_fail(self) -> wire.Client:
        if self._client is None or not self._connected:
            raise self._lost or DeviceUnavailable(self.name, "connection lost")
        return self._client

    def _fail(self, err: BaseException, phase: str) -> DeviceError:
        """Classify a mid-session failure and drop the broken connection."""
        if isinstance(err, DeviceError):
            error = err
        elif self._lost is not None and not isinstance(err, TimeoutError):
            error = self._lost  # knows whether the device asked to go (reboot) or just went
        else:
            error = self._classify(err, phase)
        self._connected = False
        if self._client is not None:
            self._closing = True
            self._client.force_disconnect()
        return error

    def _classify(self, err: BaseException, phase: str) -> DeviceError:
        return classify(
            err,
            self.name,
            host=self.device.host,
            port=self.device.port,
            phase=phase,
            timeout=self._phase_timeout,
            secret=self._reveal(),
        )

    def _refuse_unusable(self) -> None:
        """`DeviceRejected`, before any contact, for a device the inventory could not resolve
        (its `problem`: e.g. a `!secret` missing from secrets.yaml); only that device fails."""
        problem: str | None = getattr(self.device, "problem", None)
        if problem is not None:
            raise DeviceRejected(self.name, f"not contacted: {problem}")

    def _reveal(self) -> str | None:
        """The key, only ever passed straight on (never held in a local of a raising frame)."""
        return self.device.key.reveal() if self.device.key is not None else None

    def _where(self) -> str:
        return f"{self.device.host}:{self.device.port}"

    def _unexpected(self) -> DeviceError:
        return DeviceUnavailable(self.name, "no outcome recorded (internal error)")


def _unverified(plan: Plan) -> Plan:
    """The same plan with nothing to confirm (verification off for this command)."""
    return dataclasses.replace(plan, expect=None) if plan.expect is not None else plan
