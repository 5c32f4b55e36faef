"""The drain side of a `Fleet`: engines over its journal and inventory, their options and
`notify` hooks, and `drain` (every due command once) and `run` (until stopped)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from cmdctl.api import arguments
from cmdctl.api.arguments import CONCURRENCY, NOTIFY_TIMEOUT_S, Lookup, Warn
from cmdctl.core.errors import InputError

if TYPE_CHECKING:
    import asyncio

    from cmdctl.drain.engine import Engine
    from cmdctl.drain.notify import NotifyWatch
    from cmdctl.drain.observer import Observer
    from cmdctl.drain.options import DrainOptions
    from cmdctl.drain.totals import Totals
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.journal.store import Journal


class Drains:
    """Drain engines and the drains they run (the `Fleet` provides what is declared here)."""

    journal: Journal
    warn: Warn
    # (name → device address, the names `limit` selects or None): `Fleet.lookup`
    lookup: Callable[[str | None], tuple[Lookup, frozenset[str] | None]]
    _secret: Callable[[str], str]  # the value of `!secret NAME`, for sending only

    if TYPE_CHECKING:

        @property
        def inventory(self) -> Inventory: ...

    def engine(
        self,
        options: DrainOptions | None = None,
        *,
        limit: str | None = None,
        observer: Observer | None = None,
    ) -> Engine:
        """A drain engine over this journal and inventory (`limit`: only these devices)."""
        from cmdctl.drain import engine as eng
        from cmdctl.drain.options import DrainOptions

        devices, only = self.lookup(limit)
        options = options or DrainOptions()
        if only is not None:
            options = dataclasses.replace(options, only=only)
        return eng.Engine(
            self.journal, devices, options, observer=observer, secrets=self._secret
        )

    def notifier(
        self,
        command: str,
        *,
        timeout: float = NOTIFY_TIMEOUT_S,
        inner: Observer | None = None,
        per_pass: bool = False,
    ) -> NotifyWatch:
        """An engine observer running the shell `command` once per finished batch and once
        per failure, the event as JSON on stdin (README: Notifications); device keys never
        reach it. `per_pass`: batches are reported after each pass (`run`), not at the end.
        `close()` it after the run: that waits for the hooks still queued."""
        from cmdctl.drain import notify
        from cmdctl.drain.observer import NullObserver

        if not command.strip():
            raise InputError("--notify: empty command", hint="give a shell command line")

        def keys() -> list[str]:  # so that a key taken from `${ENV}` never reaches the hook
            return [d.key.reveal() for d in self.inventory.devices if d.key is not None]

        hook = notify.Hook(command, timeout=timeout, warn=self.warn, secrets=keys)
        return notify.NotifyWatch(inner or NullObserver(), hook, per_pass=per_pass)

    def drain_options(
        self,
        *,
        batch: str | None = None,
        concurrency: int = CONCURRENCY,
        max_time: float | None = None,
        window: int | str | None = None,
        max_fail: int | str | None = None,
        fail_fast: bool = False,
        tags: str | Collection[str] | None = None,
        skip_tags: str | Collection[str] | None = None,
    ) -> DrainOptions:
        """The engine's options from the arguments `drain` and `run` share."""
        from cmdctl.drain import rollout
        from cmdctl.drain.options import DrainOptions

        return DrainOptions(
            max_time=max_time,
            concurrency=concurrency,
            batch=batch,
            window=None if window is None else rollout.parse(str(window), "window"),
            max_fail=None if max_fail is None else rollout.parse(str(max_fail), "max_fail"),
            fail_fast=fail_fast,
            tags=arguments.tags(tags),
            skip_tags=arguments.tags(skip_tags),
        )

    async def _work(
        self,
        forever: bool,
        options: DrainOptions,
        *,
        limit: str | None,
        observer: Observer | None,
        notify: str | None,
        notify_timeout: float,
        stop: asyncio.Event | None = None,
    ) -> Totals:
        import asyncio

        from cmdctl.drain import loops

        watch = None
        if notify is not None:
            watch = self.notifier(
                notify, timeout=notify_timeout, inner=observer, per_pass=forever
            )
            observer = watch
        try:
            engine = self.engine(options, limit=limit, observer=observer)
            if watch is not None:
                watch.run_id = engine.run_id
            if not forever:
                return await loops.drain_with(engine)
            stopper = None
            if stop is not None:

                async def on_stop() -> None:
                    await stop.wait()
                    engine.request_stop("stopped by the caller", signal=False)

                stopper = asyncio.create_task(on_stop())
            try:
                return await loops.serve(engine)
            finally:
                if stopper is not None:
                    stopper.cancel()
        finally:
            if watch is not None:
                await asyncio.to_thread(watch.close)  # the hooks already queued run first

    async def drain(
        self,
        *,
        limit: str | None = None,
        batch: str | None = None,
        concurrency: int = CONCURRENCY,
        max_time: float | None = None,
        window: int | str | None = None,
        max_fail: int | str | None = None,
        fail_fast: bool = False,
        tags: str | Collection[str] | None = None,
        skip_tags: str | Collection[str] | None = None,
        observer: Observer | None = None,
        notify: str | None = None,
        notify_timeout: float = NOTIFY_TIMEOUT_S,
    ) -> Totals:
        """Run every due command once, devices in parallel (as `cmdctl drain`); BusyError when
        another drain holds the journal. Per-device failures are in the totals. `notify`: a
        shell command run per finished batch and per failure (see `notifier`)."""
        options = self.drain_options(
            batch=batch,
            concurrency=concurrency,
            max_time=max_time,
            window=window,
            max_fail=max_fail,
            fail_fast=fail_fast,
            tags=tags,
            skip_tags=skip_tags,
        )
        return await self._work(
            False, options, limit=limit, observer=observer, notify=notify,
            notify_timeout=notify_timeout,
        )

    async def run(
        self,
        *,
        stop: asyncio.Event | None = None,
        limit: str | None = None,
        batch: str | None = None,
        concurrency: int = CONCURRENCY,
        window: int | str | None = None,
        max_fail: int | str | None = None,
        fail_fast: bool = False,
        tags: str | Collection[str] | None = None,
        skip_tags: str | Collection[str] | None = None,
        observer: Observer | None = None,
        notify: str | None = None,
        notify_timeout: float = NOTIFY_TIMEOUT_S,
    ) -> Totals:
        """`cmdctl run`: drain, then run commands as they are queued and fall due, holding the
        drain lock, until `stop` is set (work in flight finishes first); BusyError when
        another drain holds the journal."""
        options = self.drain_options(
            batch=batch,
            concurrency=concurrency,
            window=window,
            max_fail=max_fail,
            fail_fast=fail_fast,
            tags=tags,
            skip_tags=skip_tags,
        )
        return await self._work(
            True, options, limit=limit, observer=observer, notify=notify,
            notify_timeout=notify_timeout, stop=stop,
        )
