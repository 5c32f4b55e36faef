"""The process's local time zone, set for a test and put back afterwards."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


@contextlib.contextmanager
def local_zone(name: str) -> Iterator[None]:
    """Run the body with `TZ=name` in effect for the C library (`time.tzset`), whatever the
    machine's zone is; the previous zone is restored even if the body fails."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
