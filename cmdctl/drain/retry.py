"""How hard the drain tries: tenacity backoff within a run, `not_before` backoff across runs.

Within a run a device job that fails transiently is retried with exponential backoff and full
jitter, capped, a bounded number of times, and never past the run's deadline. An entry still
failing at the end of the run is rescheduled in the journal with a longer backoff (minutes, not
seconds: the device is probably away), until the entry's `max_attempts`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cmdctl.core.errors import DeviceAmbiguous, DeviceError

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff settings; every duration in seconds."""

    tries: int = 3  # device jobs per device per run (the first one included)
    ambiguous_tries: int = 2  # fewer when the failure may be a key problem in disguise
    initial: float = 0.5  # first wait within a run
    maximum: float = 4.0  # cap on one wait within a run
    jitter: float = 0.5  # plus uniform(0, jitter)
    reschedule_initial: float = 30.0  # first not_before delay across runs
    reschedule_maximum: float = 3600.0  # cap on the not_before delay
    reschedule_jitter: float = 0.2  # fraction of the delay added at random


DEFAULT = RetryPolicy()


def retrying(
    policy: RetryPolicy,
    *,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    on_retry: Callable[[DeviceError, float], None] | None = None,
) -> AsyncRetrying:
    """A tenacity controller for one device job; `deadline` is on `clock`'s scale."""
    # Imported here: `cmdctl send` needs the policy values but not tenacity (~50 ms).
    from tenacity import AsyncRetrying, retry_if_exception, wait_exponential_jitter

    from cmdctl.device.classify import is_retryable  # the one place that decides

    wait = wait_exponential_jitter(
        multiplier=policy.initial, max=policy.maximum, exp_base=2, jitter=policy.jitter
    )

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        limit = policy.ambiguous_tries if isinstance(exc, DeviceAmbiguous) else policy.tries
        if state.attempt_number >= limit:
            return True
        if deadline is not None:
            # Do not start a wait that would end past the deadline.
            return clock() + float(wait(state)) >= deadline
        return False

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        if on_retry is not None and isinstance(exc, DeviceError):
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            on_retry(exc, delay)

    return AsyncRetrying(
        sleep=sleep,
        stop=stop,
        wait=wait,
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


def reschedule_delay(
    attempts: int, policy: RetryPolicy = DEFAULT, rng: random.Random | None = None
) -> float:
    """Seconds until an entry that failed `attempts` times so far is due again."""
    base = policy.reschedule_initial * 2.0 ** max(0, attempts - 1)
    delay = min(policy.reschedule_maximum, base)
    spread = float((rng or random).uniform(0.0, policy.reschedule_jitter))
    return delay * (1.0 + spread)
