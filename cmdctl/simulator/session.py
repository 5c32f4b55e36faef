"""One client connection to a virtual device: the firmware's per-connection state machine.

Stages: [Noise: client hello → handshake] → waiting for Hello → ready. Before Hello only Hello,
Disconnect and Ping are served; DeviceInfoRequest or any other known request closes the connection
(as `on_no_setup_connection` does); unknown message types are ignored in every stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, Any

from cmdctl.simulator.entities import COMMANDS
from cmdctl.simulator.faults import connection_rng
from cmdctl.simulator.framing import (
    BAD_INDICATOR,
    PLAINTEXT_BAD_INDICATOR,
    FrameError,
    NoiseFrames,
    PlainFrames,
)
from cmdctl.simulator.proto import TYPE_OF, pb
from cmdctl.simulator.spec import OBJECT_ID_DROPPED_MINOR

if TYPE_CHECKING:
    from cmdctl.simulator.device import VirtualDevice

log = logging.getLogger("cmdctl.simulator")

_COMMAND_IDS = {TYPE_OF[cls]: cls for cls in COMMANDS}

HELLO, DISCONNECT_REQ, DISCONNECT_RESP, PING_REQ, PING_RESP = 1, 5, 6, 7, 8
DEVICE_INFO, LIST_ENTITIES, SUBSCRIBE_STATES, EXECUTE_SERVICE = 9, 11, 20, 42
# known requests that need an authenticated connection but that the simulator does not serve
# (logs, Home Assistant services/states, time): firmware closes if sent before Hello
_IGNORED_AUTHED = frozenset({28, 34, 37, 38, 40})
_NEEDS_AUTH = frozenset(
    {LIST_ENTITIES, SUBSCRIBE_STATES, EXECUTE_SERVICE, *_IGNORED_AUTHED, *_COMMAND_IDS}
)

_NOISE_HELLO, _NOISE_HANDSHAKE, _WAIT_HELLO, _READY, _CLOSED = range(5)
# how long a device waits for DisconnectResponse after it asked the client to disconnect
DISCONNECT_GRACE = 1.0
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
# a rejected client that says nothing is reset after this long anyway (it normally speaks within
# a millisecond of connecting)
REJECT_RESET_WAIT = 1.0
# closes for a request out of turn; firmware leaves the rest of the client's bytes unread
_PROTOCOL_CLOSES = frozenset({"request before hello", "device info before hello"})


class Session(asyncio.Protocol):
    """The device side of one TCP connection."""

    __slots__ = (
        "_batch",
        "_batch_timer",
        "_close_when_sent",
        "_deadline",
        "_delay_timer",
        "_delayed",
        "_in_read",
        "_out",
        "_reset_on_data",
        "device",
        "frames",
        "handled",
        "legacy_ids",
        "number",
        "rng",
        "stage",
        "subscribed",
        "transport",
    )

    def __init__(self, device: VirtualDevice) -> None:
        self.device = device
        self.number = device.next_connection_number()
        self.rng = connection_rng(device.spec.seed, device.spec.name, self.number)
        self.transport: asyncio.Transport | None = None
        self.frames: PlainFrames | NoiseFrames
        self.stage = _CLOSED
        self.subscribed = False
        self.legacy_ids = False
        self.handled = 0
        self._out: list[bytes] = []
        self._in_read = False
        self._delayed: deque[tuple[float, bytes]] = deque()
        self._delay_timer: asyncio.TimerHandle | None = None
        self._close_when_sent: str | None = None
        self._reset_on_data = False
        self._batch: dict[tuple[int, int], tuple[int, bytes]] = {}
        self._batch_timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        device = self.device
        if len(device.sessions) >= device.max_connections:
            # firmware: "Max connections (N), rejecting" — accept, then close() at once, no
            # bytes; the kernel sends FIN, or RST if the client's hello already arrived
            self._close_when_sent = "max connections"
            device.recorder.connection(
                device.name, self.number, "reject", len(device.sessions), "max connections"
            )
            reset = device.faults.reject_reset
            if reset and self.rng.random() < reset:
                self._reset_on_data = True  # the RST branch of firmware's race
                loop = asyncio.get_running_loop()
                self._deadline = loop.call_later(REJECT_RESET_WAIT, self._reset)
            else:
                transport.close()
            return
        device.sessions.add(self)
        device.recorder.connection(device.name, self.number, "open", len(device.sessions))
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(device.faults.handshake_timeout, self._deadline_passed)
        psk = device.psk_bytes
        if psk is None:
            self.frames = PlainFrames()
            self.stage = _WAIT_HELLO
        else:
            self.frames = NoiseFrames(psk, device.name, device.spec.mac)
            self.stage = _NOISE_HELLO

    def connection_lost(self, exc: Exception | None) -> None:
        self.stage = _CLOSED
        for timer in (self._deadline, self._batch_timer, self._delay_timer):
            if timer is not None:
                timer.cancel()
        device = self.device
        if self in device.sessions:  # rejected connections were never counted
            device.sessions.discard(self)
            reason = self._close_when_sent or ("reset" if exc else "closed by client")
            device.recorder.connection(
                device.name, self.number, "close", len(device.sessions), reason
            )

    def data_received(self, data: bytes) -> None:
        if self._reset_on_data:
            self._reset()
            return
        if self.stage == _CLOSED or self.device.faults.silent:
            return
        self._in_read = True
        try:
            if isinstance(self.frames, NoiseFrames):
                self._noise_data(self.frames, data)
            else:
                self._plain_data(self.frames, data)
        finally:
            self._in_read = False
            self._flush()

    # ------------------------------------------------------------------ framing

    def _plain_data(self, frames: PlainFrames, data: bytes) -> None:
        try:
            messages = frames.split(data)
        except FrameError as err:
            if err.reason == BAD_INDICATOR:
                # what a plaintext device writes; it then closes with the client's bytes unread,
                # so the kernel sends RST, not FIN
                self._out.append(PLAINTEXT_BAD_INDICATOR)
                self._flush()
                self._close_when_sent = err.reason
                self.stage = _CLOSED
                self._reset()
                return
            self.close(err.reason)
            return
        for i, (msg_type, payload) in enumerate(messages, 1):
            self._message(msg_type, payload)
            if self.stage == _CLOSED:
                if self._close_when_sent in _PROTOCOL_CLOSES and (
                    i < len(messages) or frames.pending
                ):
                    self._linger_reset()  # firmware closes with bytes unread: the kernel sends RST
                return

    def _noise_data(self, frames: NoiseFrames, data: bytes) -> None:
        try:
            bodies = frames.split(data)
            for body in bodies:
                if self.stage == _NOISE_HELLO:
                    self._send(frames.server_hello(body), self.device.faults.slow_handshake)
                    self.stage = _NOISE_HANDSHAKE
                elif self.stage == _NOISE_HANDSHAKE:
                    self._send(frames.handshake(body))
                    self.stage = _WAIT_HELLO
                else:
                    try:
                        msg_type, payload = frames.decrypt(body)
                    except FrameError as err:  # after the handshake: no reject frame, just close
                        self.close(f"decrypt failed: {err.reason}")
                        return
                    self._message(msg_type, payload)
                if self.stage == _CLOSED:
                    return
        except FrameError as err:
            self._send(NoiseFrames.reject(err.reason))
            self.close(err.reason)

    # ------------------------------------------------------------------ messages

    def _message(self, msg_type: int, payload: bytes) -> None:
        device = self.device
        if device.faults.should_drop(self.rng, self.handled):
            self.close("dropped (fault)")
            return
        self.handled += 1
        if msg_type in _COMMAND_IDS:
            if self.stage != _READY:
                self.close("request before hello")
                return
            cls = _COMMAND_IDS[msg_type]
            device.on_command(self, cls.FromString(payload))
        elif msg_type == HELLO:
            self._hello(pb.HelloRequest.FromString(payload))
        elif msg_type == PING_REQ:
            self.reply(pb.PingResponse())
        elif msg_type == DISCONNECT_REQ:
            self.reply(pb.DisconnectResponse())
            self.close("disconnect requested by client")
        elif msg_type == DISCONNECT_RESP:
            self.close("disconnect acknowledged")
        elif msg_type == DEVICE_INFO:
            if self.stage != _READY:
                self.close("device info before hello")
                return
            self.reply(device.device_info())
        elif msg_type in _NEEDS_AUTH:
            if self.stage != _READY:
                self.close("request before hello")
                return
            if msg_type == LIST_ENTITIES:
                for item_type, item in device.listing(self.legacy_ids):
                    self._send(self._encode(item_type, item))
            elif msg_type == SUBSCRIBE_STATES:
                self.subscribed = True
                for item_type, item in device.initial_states():
                    self._send(self._encode(item_type, item))
            elif msg_type == EXECUTE_SERVICE:
                device.on_execute(self, pb.ExecuteServiceRequest.FromString(payload))
        # anything else (PingResponse, AuthenticationRequest, unknown ids): ignored like firmware

    def _hello(self, msg: Any) -> None:
        device = self.device
        spec = device.spec
        client_old = (msg.api_version_major, msg.api_version_minor) < (1, 14)
        self.legacy_ids = spec.api_minor < 14 or (
            client_old and spec.api_minor < OBJECT_ID_DROPPED_MINOR
        )
        reply = pb.HelloResponse(
            api_version_major=1,
            api_version_minor=spec.api_minor,
            server_info=spec.esphome_version,
            name=spec.name,
        )
        slow = device.faults.slow_handshake if isinstance(self.frames, PlainFrames) else 0.0
        self._send(self._encode(TYPE_OF[pb.HelloResponse], reply.SerializeToString()), slow)
        self.stage = _READY
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    # ------------------------------------------------------------------ output

    def reply(self, msg: Any) -> None:
        """Queue one message for the client."""
        self._send(self._encode(TYPE_OF[type(msg)], msg.SerializeToString()))
        if not self._in_read:
            self._flush()

    def push_state(
        self, entity: tuple[int, int], msg_type: int, payload: bytes, batch_delay: float
    ) -> None:
        """Send a state update now, or keep the latest per entity until the batch timer fires.

        Like firmware's deferred batch: the timer starts with the first state queued and is not
        pushed back by later ones; a newer state of the same entity replaces the queued one in
        place. `entity` is (key, device_id): sub-devices may reuse a key.
        """
        if self.stage != _READY:
            return
        if batch_delay <= 0:
            self._send(self._encode(msg_type, payload))
            if not self._in_read:
                self._flush()
            return
        self._batch[entity] = (msg_type, payload)
        if self._batch_timer is None:
            loop = asyncio.get_running_loop()
            self._batch_timer = loop.call_later(batch_delay, self._flush_batch)

    def _flush_batch(self) -> None:
        self._batch_timer = None
        if self.stage != _READY:
            return
        batch, self._batch = self._batch, {}
        for msg_type, payload in batch.values():
            self._send(self._encode(msg_type, payload))
        self._flush()

    def _encode(self, msg_type: int, payload: bytes) -> bytes:
        return self.frames.encode(msg_type, payload)

    def _send(self, chunk: bytes, extra_delay: float = 0.0) -> None:
        """Queue bytes, in order, honouring the latency fault."""
        faults = self.device.faults
        delay = extra_delay + (faults.delay(self.rng) if faults.latency or faults.jitter else 0.0)
        if delay <= 0.0 and not self._delayed:
            self._out.append(chunk)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        if self._delayed:
            when = max(when, self._delayed[-1][0])
        self._delayed.append((when, chunk))
        if self._delay_timer is None:
            self._delay_timer = loop.call_at(self._delayed[0][0], self._release)

    def _release(self) -> None:
        self._delay_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            self._delayed.clear()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        ready = []
        while self._delayed and self._delayed[0][0] <= now:
            ready.append(self._delayed.popleft()[1])
        if ready:
            transport.write(b"".join(ready))
        if self._delayed:
            self._delay_timer = loop.call_at(self._delayed[0][0], self._release)
        elif self._close_when_sent is not None:
            transport.close()

    def _flush(self) -> None:
        if self._out and self.transport is not None and not self.transport.is_closing():
            out, self._out = self._out, []
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    # ------------------------------------------------------------------ closing

    def close(self, reason: str) -> None:
        """Close after everything queued has been written (FIN, like firmware's close)."""
        if self._close_when_sent is not None:
            return
        self.stage = _CLOSED
        self._close_when_sent = reason
        self._flush()
        if not self._delayed and self.transport is not None:
            self.transport.close()

    def request_disconnect(self) -> None:
        """Ask the client to disconnect (reboot, shutdown); close if it does not answer in time."""
        if self.stage != _READY:
            self.close("device disconnecting")
            return
        self.reply(pb.DisconnectRequest())
        loop = asyncio.get_running_loop()
        loop.call_later(DISCONNECT_GRACE, self.close, "device disconnecting")

    def abort(self, reason: str) -> None:
        """Drop the connection at once with a reset (network gone)."""
        self._close_when_sent = reason
        self.stage = _CLOSED
        self._reset()

    def _reset(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self._linger_reset()
        transport.abort()

    def _linger_reset(self) -> None:
        """Make the coming close of the socket send RST instead of FIN."""
        sock = None if self.transport is None else self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)

    def _deadline_passed(self) -> None:
        self._deadline = None
        if self.stage not in (_READY, _CLOSED):
            self.close("handshake timeout")
