"""Fault injection: what a virtual device does wrong, fixed at load and changeable at runtime.

Every random choice comes from a `random.Random` seeded with (seed, device, connection number), so
the same faults under the same seed strike at the same message on every run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

HANDSHAKE_TIMEOUT = 60.0  # firmware HANDSHAKE_TIMEOUT_MS: Noise + Hello must finish by then


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """Faults as described in YAML; durations in seconds."""

    offline: bool = False  # refuse connections: nothing listens on the port
    silent: bool = False  # accept and read, never answer
    latency: float = 0.0  # added before every message the device sends
    jitter: float = 0.0  # plus uniform(0, jitter)
    drop_after: int | None = None  # close the connection after handling N received messages
    drop_probability: float = 0.0  # close before handling a received message with probability p
    reboot_after: float | None = None  # seconds after start: DisconnectRequest, then down
    reboot_every: float | None = None  # repeat the reboot with this period
    reboot_down: float = 2.0  # how long a reboot keeps the device down
    flap_up: float | None = None  # flapping: up this long, then down `flap_down`, forever
    flap_down: float = 1.0
    slow_handshake: float = 0.0  # delay before the Noise server hello / HelloResponse
    wrong_key: bool = False  # the device holds a different PSK from the one the inventory has
    handshake_timeout: float = HANDSHAKE_TIMEOUT
    # a connection over max_connections is reset once the client's first bytes arrive, with this
    # probability, instead of closed at once: firmware does one or the other depending on whether
    # the client's Hello was already waiting unread (a race; 1 in 3 to 2 in 3 resets, with load)
    reject_reset: float = 0.0

    def describe(self) -> str:
        """One short line naming the faults that are on ("" when none)."""
        parts = [name for name in ("offline", "silent", "wrong_key") if getattr(self, name)]
        if self.latency or self.jitter:
            parts.append(
                f"latency {_ms(self.latency)}" + (f"±{_ms(self.jitter)}" if self.jitter else "")
            )
        if self.drop_after is not None:
            parts.append(f"drop after {self.drop_after}")
        if self.drop_probability:
            parts.append(f"drop p={self.drop_probability:g}")
        if self.reboot_after is not None:
            every = f" every {self.reboot_every:g}s" if self.reboot_every else ""
            parts.append(f"reboot at {self.reboot_after:g}s{every} ({self.reboot_down:g}s down)")
        if self.flap_up is not None:
            parts.append(f"flapping {self.flap_up:g}s up / {self.flap_down:g}s down")
        if self.slow_handshake:
            parts.append(f"slow handshake {_ms(self.slow_handshake)}")
        if self.reject_reset:
            parts.append(f"reject reset p={self.reject_reset:g}")
        if self.handshake_timeout != HANDSHAKE_TIMEOUT:
            parts.append(f"handshake timeout {self.handshake_timeout:g}s")
        return ", ".join(parts)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


class Faults:
    """The live, mutable fault settings of one device (tests flip them while it runs)."""

    __slots__ = (
        "drop_after",
        "drop_probability",
        "handshake_timeout",
        "jitter",
        "latency",
        "reject_reset",
        "silent",
        "slow_handshake",
    )

    def __init__(self, spec: FaultSpec) -> None:
        self.silent = spec.silent
        self.latency = spec.latency
        self.jitter = spec.jitter
        self.drop_after = spec.drop_after
        self.drop_probability = spec.drop_probability
        self.slow_handshake = spec.slow_handshake
        self.handshake_timeout = spec.handshake_timeout
        self.reject_reset = spec.reject_reset

    def delay(self, rng: random.Random) -> float:
        """Seconds to hold back one outgoing message."""
        if self.jitter:
            return self.latency + rng.uniform(0.0, self.jitter)
        return self.latency

    def should_drop(self, rng: random.Random, handled: int) -> bool:
        """True when the connection must drop before handling the next received message."""
        if self.drop_after is not None and handled >= self.drop_after:
            return True
        return bool(self.drop_probability) and rng.random() < self.drop_probability


def connection_rng(seed: int, device: str, number: int) -> random.Random:
    """The deterministic random source of one connection."""
    # str seeds are hashed with SHA-512 by `random`, so this does not depend on PYTHONHASHSEED
    return random.Random(f"{seed}:{device}:{number}")
