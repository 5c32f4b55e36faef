"""How a drain runs: `DrainOptions` and the engine's named limits and timeouts."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from cmdctl.device.timeouts import CONNECT_TIMEOUT, VERIFY_TIMEOUT
from cmdctl.drain import retry
from cmdctl.drain.rollout import Limit

#: Devices worked on at once: spares the Wi-Fi AP (esphome-protocol.md §5 says 32–64) while
#: a 50-device venue still goes in one wave.
DEFAULT_CONCURRENCY = 64
#: Idempotent entries of one device sent back to back before one delivery barrier.
CHUNK = 512
#: Stop taking new work this long before --max-time, so in-flight work can finish in time.
STOP_MARGIN_S = 2.0
#: After --max-time (or a second signal), cancel what is still in flight after this grace.
HARD_STOP_GRACE_S = 5.0
#: A closed socket reaches the device a few loop turns later; a windowed device job waits this
#: long after closing so the next device of the window never overlaps it on the device side.
WINDOW_SETTLE_S = 0.01
#: Passes one drain makes while entries wait for a barrier that its own work may open; a chain
#: of `after:` steps deeper than this finishes in the next drain.
MAX_PASSES = 32
#: A device job waits out a `delay:` gap up to this long (holding its slot and connection: a
#: TV's warm-up is seconds); a longer one leaves the entry queued, due when the gap is over, and
#: `cmdctl run` wakes for it (a cron `drain` takes it on its first run after that).
GAP_WAIT_S = 60.0

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class DrainOptions:
    """How a drain runs; durations in seconds."""

    max_time: float | None = None  # stop taking work this long after the start
    concurrency: int = DEFAULT_CONCURRENCY
    only: Collection[str] | None = None  # device names (--limit), None: every device
    batch: str | None = None  # only this batch
    policy: retry.RetryPolicy = retry.DEFAULT
    connect_timeout: float = CONNECT_TIMEOUT
    verify_timeout: float = VERIFY_TIMEOUT
    job_timeout: float | None = None  # per device call; None: the device's own, else default
    chunk: int = CHUNK
    window: Limit | None = None  # --window N | N%: devices of a batch in progress at once
    max_fail: Limit | None = None  # --max-fail N | N%: failed devices before a batch is held
    fail_fast: bool = False  # --fail-fast: max_fail 1
    tags: frozenset[str] | None = None  # --tags: only entries with one of these tags
    skip_tags: frozenset[str] | None = None  # --skip-tags: not entries with one of these
    coalesce: bool = True  # supersede older state-setting entries (see cmdctl.drain.coalesce)
