"""One virtual device: its listener, entities, actions, live faults and connections."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.simulator.actions import Action
from cmdctl.simulator.entities import COMMANDS, KINDS, BinarySensor, Entity
from cmdctl.simulator.faults import Faults
from cmdctl.simulator.proto import TYPE_OF, pb
from cmdctl.simulator.record import Received, Recorder
from cmdctl.simulator.session import DISCONNECT_GRACE, Session
from cmdctl.simulator.spec import DeviceSpec

log = logging.getLogger("cmdctl.simulator")

# a client has DISCONNECT_GRACE to answer DisconnectRequest; then allow for the close itself
DISCONNECT_WAIT = DISCONNECT_GRACE + 1.0
LISTEN_BACKLOG = 64  # firmware uses 1–4; larger here so a burst of test clients is not refused
# firmware lists (and sends initial states) by entity type in this order (esphome/core/
# entity_types.h), each type in configuration order; user actions come before all of them
LIST_ORDER = (
    "binary_sensor",
    "cover",
    "fan",
    "light",
    "switch",
    "button",
    "climate",
    "number",
    "text",
    "select",
    "lock",
    "valve",
    "media_player",
)
_LIST_DONE = (TYPE_OF[pb.ListEntitiesDoneResponse], b"")
_SERVICES = TYPE_OF[pb.ListEntitiesServicesResponse]


class VirtualDevice:
    """A simulated ESPHome device speaking the native API on `host:port`."""

    def __init__(self, spec: DeviceSpec, recorder: Recorder | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.recorder = recorder if recorder is not None else Recorder()
        self.faults = Faults(spec.faults)
        self.max_connections = spec.max_connections
        self.port = spec.port
        self.sessions: set[Session] = set()
        self.received: list[Received] = []
        key = spec.device_psk
        self.psk_bytes = None if key is None else base64.b64decode(key)
        self._entities: dict[tuple[int, int], Entity] = {}
        self._by_selector: dict[str, Entity] = {}
        for entity_spec in sorted(spec.entities, key=lambda e: LIST_ORDER.index(e.kind)):
            entity = KINDS[entity_spec.kind](entity_spec, spec.name)
            self._entities[(entity.key, entity_spec.device_id)] = entity
            self._by_selector.setdefault(entity_spec.selector, entity)
        # selector → the binary sensors that follow it (`follows:`)
        self._followers: dict[str, list[Entity]] = {}
        for entity in self._entities.values():
            if entity.spec.follows:
                if entity.spec.follows not in self._by_selector:
                    raise InputError(
                        f"{spec.name}: {entity.spec.selector} follows {entity.spec.follows!r},"
                        " which the device does not have",
                        hint="name an entity of the same device, like switch.tv_power",
                    )
                self._followers.setdefault(entity.spec.follows, []).append(entity)
        self._actions = {a.key: Action(a, spec.name) for a in spec.actions}
        self._server: asyncio.Server | None = None
        self._connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._listing: dict[bool, list[tuple[int, bytes]]] = {}

    def __repr__(self) -> str:
        return f"<VirtualDevice {self.name} {self.spec.host}:{self.port}>"

    # ------------------------------------------------------------------ lifecycle

    @property
    def online(self) -> bool:
        """True while the device listens."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (unless the offline fault is set) and start scheduled faults."""
        if not self.spec.faults.offline:
            await self._listen()
        f = self.spec.faults
        if f.reboot_after is not None:
            self._spawn(self._reboot_schedule(f.reboot_after, f.reboot_down, f.reboot_every))
        if f.flap_up is not None:
            self._spawn(self._flap_schedule(f.flap_up, f.flap_down))

    async def stop(self) -> None:
        """Stop schedules, close the listener and every connection."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._go_down("device stopped")

    async def set_offline(self, offline: bool) -> None:
        """Go offline (refuse connections, drop current ones) or come back online."""
        if offline:
            await self._go_down("device offline")
        elif self._server is None:
            await self._listen()

    async def reboot(self, down: float) -> None:
        """Send DisconnectRequest to every client, stay down `down` seconds, come back."""
        await self.disconnect_clients()
        await self._go_down("device rebooting")
        await asyncio.sleep(down)
        await self._listen()

    async def disconnect_clients(self) -> None:
        """Ask every client to disconnect, as firmware does on shutdown/OTA, and wait for them."""
        for session in list(self.sessions):
            session.request_disconnect()
        deadline = time.monotonic() + DISCONNECT_WAIT
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    def set_key(self, psk: str | None) -> None:
        """Change the key the device holds (None: plaintext); new connections use it."""
        self.psk_bytes = None if psk is None else base64.b64decode(psk)

    def set_max_connections(self, limit: int) -> None:
        """Change the connection limit (existing connections stay)."""
        self.max_connections = limit

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: Session(self),
                self.spec.host,
                self.port,
                backlog=LISTEN_BACKLOG,
                reuse_address=True,
            )
        except OSError as err:
            raise InputError(
                f"{self.name}: cannot listen on {self.spec.host}:{self.port}: {err.strerror}",
                hint="choose another --base-port, or 0 for free ports",
            ) from err
        self.port = self._server.sockets[0].getsockname()[1]

    async def _go_down(self, reason: str) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self.sessions):
            session.abort(reason)
        if server is not None:
            await server.wait_closed()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reboot_schedule(self, after: float, down: float, every: float | None) -> None:
        await asyncio.sleep(after)
        while True:
            log.info("%s: rebooting (fault) for %.1fs", self.name, down)
            await self.reboot(down)
            if every is None:
                return
            await asyncio.sleep(max(0.0, every - down))

    async def _flap_schedule(self, up: float, down: float) -> None:
        while True:
            await asyncio.sleep(up)
            await self.set_offline(True)
            await asyncio.sleep(down)
            await self.set_offline(False)

    @property
    def connections_made(self) -> int:
        """How many connections the device has accepted so far."""
        return self._connections

    def next_connection_number(self) -> int:
        """A number for a new connection, unique per device."""
        self._connections += 1
        return self._connections

    # ------------------------------------------------------------------ state

    def state_of(self, selector: str) -> Any:
        """Current state of `kind.object_id` (e.g. `switch.tv_power`) as a plain value."""
        try:
            return self._by_selector[selector].value()
        except KeyError:
            raise KeyError(f"{self.name} has no entity {selector!r}") from None

    def snapshot(self) -> dict[str, Any]:
        """object_id → state for every entity of the main device."""
        return {e.object_id: e.value() for e in self._entities.values() if not e.spec.device_id}

    # ------------------------------------------------------------------ protocol answers

    def device_info(self) -> Any:
        """The DeviceInfoResponse."""
        s = self.spec
        msg = pb.DeviceInfoResponse(
            name=s.name,
            friendly_name=s.friendly_name or s.name,
            mac_address=s.mac.upper(),
            esphome_version=s.esphome_version,
            compilation_time=s.compilation_time,
            model=s.model,
            manufacturer=s.manufacturer,
            api_encryption_supported=self.psk_bytes is not None,
        )
        for sub in s.sub_devices:
            msg.devices.add(device_id=sub.device_id, name=sub.name, area_id=sub.area_id)
        return msg

    def listing(self, with_object_id: bool) -> list[tuple[int, bytes]]:
        """The actions, every ListEntities*Response, then ListEntitiesDoneResponse."""
        cached = self._listing.get(with_object_id)
        if cached is None:
            cached = [(_SERVICES, a.info().SerializeToString()) for a in self._actions.values()]
            cached += [
                (TYPE_OF[e.list_type], e.info(with_object_id).SerializeToString())
                for e in self._entities.values()
            ]
            cached.append(_LIST_DONE)
            self._listing[with_object_id] = cached
        return cached

    def initial_states(self) -> list[tuple[int, bytes]]:
        """The state of every stateful entity, sent when a client subscribes."""
        out = []
        for entity in self._entities.values():
            msg = entity.state()
            if msg is not None:
                out.append((TYPE_OF[entity.state_type], msg.SerializeToString()))
        return out

    def on_command(self, session: Session, msg: Any) -> None:
        """Apply an entity command, record it, publish the new state."""
        cls = COMMANDS[type(msg)]
        entity = self._entities.get((msg.key, msg.device_id))
        if entity is None:  # firmware ignores unknown keys without a word
            self._record(session, cls.kind, None, msg.key, msg.device_id, {}, False)
            return
        result = entity.command(msg)
        self._record(
            session,
            cls.kind,
            entity.object_id,
            msg.key,
            msg.device_id,
            result.args,
            result.accepted,
        )
        if result.publish:
            self.publish(entity)
        followers = self._followers.get(entity.spec.selector, ())
        if followers:
            value = entity.value()
            on = bool(value.get("state")) if isinstance(value, dict) else bool(value)
            for follower in followers:
                self._spawn(self._follow(follower, on))

    async def _follow(self, follower: Entity, on: bool) -> None:
        """A `follows:` binary sensor takes the state `lag` seconds later (if it changed)."""
        await asyncio.sleep(follower.spec.lag)
        if isinstance(follower, BinarySensor) and follower.on != on:
            follower.on = on
            self.publish(follower)

    def on_execute(self, session: Session, msg: Any) -> None:
        """Run a user action, record it, answer when the action and the request ask for it."""
        action = self._actions.get(msg.key)
        if action is None:
            self._record(session, "action", None, msg.key, 0, {}, False)
            return
        args, accepted, reply = action.execute(msg, self.snapshot)
        self._record(session, "action", action.spec.name, msg.key, 0, args, accepted)
        if reply is not None:
            session.reply(reply)

    def publish(self, entity: Entity) -> None:
        """Push the entity's state to every subscribed connection."""
        msg = entity.state()
        if msg is None:
            return
        msg_type = TYPE_OF[entity.state_type]
        payload = msg.SerializeToString()
        delay = self.spec.batch_delay
        ident = (entity.key, entity.spec.device_id)
        for session in self.sessions:
            if session.subscribed:
                session.push_state(ident, msg_type, payload, delay)

    def _record(
        self,
        session: Session,
        kind: str,
        object_id: str | None,
        key: int,
        device_id: int,
        args: dict[str, Any],
        accepted: bool,
    ) -> None:
        item = Received(
            time.time(), self.name, session.number, kind, object_id, key, device_id, args, accepted
        )
        self.received.append(item)
        self.recorder.command(item)
