"""`Fleet`: one inventory and one journal, and every operation the CLI offers on them.

Journal operations (status, entries, cancel, …) are plain methods; the ones that talk to
devices (`send`, `bulk`, `drain`) are coroutines. Nothing here prints or exits: results are
values, errors are `CmdctlError` subclasses, and warnings go to the `warn` callback.
aioesphomeapi is imported on first use, so that `import cmdctl` stays cheap.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cmdctl.api import places
from cmdctl.api.records import Records
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    import asyncio

    from cmdctl.api.scene import Scene
    from cmdctl.core.model import Entry, Priority
    from cmdctl.device.scene import DeviceScene
    from cmdctl.device.transport import DeviceAddress
    from cmdctl.drain.direct import Mode, SendResult
    from cmdctl.drain.engine import Engine
    from cmdctl.drain.notify import NotifyWatch
    from cmdctl.drain.observer import Observer
    from cmdctl.drain.options import DrainOptions
    from cmdctl.drain.totals import Totals
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.inputs.playbook import Plan
    from cmdctl.inputs.secretfile import SecretsFile
    from cmdctl.inputs.variables import Value
    from cmdctl.journal.store import Journal

#: `variables=` of `plan` / `bulk`: name → value (text, number, true/false), or `name=value`
#: strings as `--var` takes them (the value read as YAML: `volume=30` is a number).
Variables = Mapping[str, "Value | str | int | float | bool"] | Iterable[str]

Warn = Callable[[str], None]
Lookup = Callable[[str], "DeviceAddress | None"]

#: How long `send` tries directly before it queues (the CLI's `--timeout` default).
SEND_TIMEOUT_S = 5.0
#: A playbook expanding to more commands than this is refused (the CLI's `--max-commands`).
MAX_COMMANDS = 100_000
#: Devices worked on at once by immediate steps and drains (the CLI's `--concurrency`).
CONCURRENCY = 64
#: A `notify` hook running longer than this is killed (the CLI's `--notify-timeout`).
NOTIFY_TIMEOUT_S = 10.0
#: Devices `scene` reads at once, and how long it waits for one to answer (device.scene).
SCENE_CONCURRENCY = 32
SCENE_CONNECT_TIMEOUT = 5.0


def _python_warning(message: str) -> None:
    import warnings

    warnings.warn(message, UserWarning, stacklevel=3)


@dataclass(frozen=True, slots=True)
class Batch:
    """A queued playbook: its plan, and how its immediate steps went (None: it had none)."""

    plan: Plan
    totals: Totals | None = None

    def __repr__(self) -> str:
        # Short: asyncio.run reprs a coroutine's result, and the plan of a bulk holds 100,000
        # entries (that repr was a third of a 10,000-command bulk's time).
        return (
            f"Batch(id={self.id!r}, queued={self.plan.counts(inline=False)[0]}, "
            f"immediate={self.plan.counts(inline=True)[0]})"
        )

    @property
    def id(self) -> str:
        """The batch id (`status(batch.id)`, `cancel(batch=batch.id)`)."""
        return self.plan.batch

    @property
    def queued(self) -> tuple[Entry, ...]:
        """Entries left in the journal for a drain."""
        return self.plan.queued

    @property
    def immediate(self) -> tuple[Entry, ...]:
        """Entries of `mode: immediate` steps, run before `bulk` returned."""
        return self.plan.immediate

    @property
    def exit_code(self) -> ExitCode:
        """What `cmdctl bulk` exits with: the immediate steps' verdict, else OK."""
        return ExitCode.OK if self.totals is None else self.totals.exit_code()


def _any_cached(plan: Plan, state_dir: Path) -> bool:
    """Whether any device of `plan` has an entity cache file (readable or not)."""
    import os

    from cmdctl.device import cache

    try:
        names = set(os.listdir(cache.directory(state_dir)))
    except FileNotFoundError:
        return False
    except OSError:
        return True  # let the check find out, and say so
    return any(cache.path_of(state_dir, device.name).name in names for device in plan.devices)


def _tags(value: str | Collection[str] | None) -> frozenset[str] | None:
    """`"power,night"` or `{"power", "night"}` → a set of tags (None: not given)."""
    if value is None:
        return None
    from cmdctl.inputs.playbook import parse_tags

    return parse_tags(value if isinstance(value, str) else ",".join(value))


class Fleet(Records):
    """The devices of one inventory and the journal of their commands (its journal side, from
    `status` to `events`, is `Records`)."""

    def __init__(
        self,
        journal: Journal,
        inventory: Path | Inventory | None = None,
        *,
        who: str | None = None,
        warn: Warn | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`inventory`: a file, a loaded Inventory, or None (found on first use as the CLI
        finds it). `warn` receives warnings (default: Python's `warnings.warn`)."""
        self.journal = journal
        self._inventory = inventory
        self.who = who if who is not None else places.who()
        self.warn: Warn = warn or _python_warning
        self.clock = clock
        self._secrets: SecretsFile | None = None

    @classmethod
    def open(
        cls,
        inventory: Path | str | None = None,
        journal: Path | str | None = None,
        *,
        who: str | None = None,
        warn: Warn | None = None,
    ) -> Fleet:
        """The fleet at `inventory` (else `$CMDCTL_INVENTORY`, `./devices.yml`, the config
        directory) with the journal in `journal` (else `$CMDCTL_HOME`, the XDG state dir)."""
        from cmdctl.journal.store import Journal

        directory = places.journal_dir(None if journal is None else Path(journal))
        inv = None if inventory is None else Path(inventory)
        return cls(Journal(directory), inv, who=who, warn=warn)

    # -- inventory ---------------------------------------------------------------------------

    @property
    def inventory(self) -> Inventory:
        """The inventory, loaded (and validated) on first use."""
        from cmdctl.inputs.inventory import Inventory, load_inventory

        if not isinstance(self._inventory, Inventory):
            self._inventory = load_inventory(places.find_inventory(self._inventory))
        return self._inventory

    @property
    def state_dir(self) -> Path:
        """Where the devices' cached entity lists are ($CMDCTL_HOME or the XDG state dir, as
        the CLI records them), whichever journal this fleet uses."""
        return places.journal_dir(None)

    @property
    def secrets(self) -> Callable[[str], str]:
        """What an engine looks `!secret NAME` arguments up with, just before sending
        (`Engine(..., secrets=fleet.secrets)`): the secrets.yaml beside the inventory."""
        return self._secret

    def _secret(self, name: str) -> str:
        """The value of `!secret NAME` (secrets.yaml beside the inventory), for sending only."""
        return self._secrets_file().value(name)

    def _secrets_file(self) -> SecretsFile:
        from cmdctl.inputs.secretfile import SecretsFile

        if self._secrets is None:
            self._secrets = SecretsFile.beside(self.inventory.path)
        return self._secrets

    def select(self, pattern: str) -> frozenset[str]:
        """Device names a `--limit` pattern selects (`bar:&tvs`); InputError when none."""
        from cmdctl.inputs.selection import select_names

        return frozenset(select_names(self.inventory, pattern))

    def lookup(self, limit: str | None = None) -> tuple[Lookup, frozenset[str] | None]:
        """(name → device address, the names `limit` selects or None); without `limit` the
        inventory is read only when a device is first looked up (an idle drain needs none)."""
        if limit is not None:
            return self.inventory.by_name.get, self.select(limit)

        def lookup(name: str) -> DeviceAddress | None:
            return self.inventory.by_name.get(name)

        return lookup, None

    # -- send --------------------------------------------------------------------------------

    def command(
        self,
        device: str,
        entity: str,
        value: str | float | bool | None = None,
        *,
        verify: bool = True,
        check_cache: bool = False,
        at: str | None = None,
        expires: str | None = None,
        attempts: int | None = None,
    ) -> Entry:
        """The journal entry `send` would run, checked against the inventory (and with
        `check_cache` or an `at` still ahead, the device's cached entity list); nothing is
        written. `at`, `expires` (relative: from `at`) and `attempts` as in a playbook."""
        from cmdctl.core import secretref, timespec
        from cmdctl.drain import direct
        from cmdctl.inputs import commands
        from cmdctl.inputs.step import check_attempts

        self.inventory.device(device)  # InputError with a did-you-mean hint
        domain, target = commands.parse_selector(entity)
        command = commands.parse_cli_value(domain, target, _value_text(value))
        self._secrets_file().check((name, None) for name in secretref.names(command.args))
        now = self.clock()
        not_before, until = timespec.schedule(at, expires, now)
        if check_cache or not_before > now:
            from cmdctl.api import cachecheck

            cachecheck.check_command(device, command, self.state_dir, self.warn)
        return direct.send_entry(
            device,
            command,
            who=self.who,
            idempotent=commands.idempotent_default(command),
            verify=verify,
            now=now,
            max_attempts=(
                direct.SEND_MAX_ATTEMPTS if attempts is None else check_attempts(attempts)
            ),
            not_before=not_before,
            expires=until,
        )

    async def deliver(
        self, entry: Entry, *, mode: Mode | str = "auto", timeout: float = SEND_TIMEOUT_S
    ) -> SendResult:
        """Run (or with mode "queue", or when it is due later, only journal) an entry made by
        `command`."""
        from cmdctl.drain import direct

        how = _mode(mode)
        later = entry.not_before > entry.created
        if later and how is direct.Mode.NOW:
            from cmdctl.core.timespec import format_when

            when = format_when(entry.not_before, now=entry.created)
            raise InputError(
                f"--now and --at contradict each other: the command is due {when}",
                hint="drop --now to queue it for then, or --at to send it now",
            )
        if how is direct.Mode.QUEUE or later:
            return direct.queue_only(self.journal, entry)
        address = self.inventory.device(entry.device)
        return await direct.send(
            self.journal, address, entry, mode=how, timeout=timeout, secrets=self._secret
        )

    async def send(
        self,
        device: str,
        entity: str,
        value: str | float | bool | None = None,
        *,
        mode: Mode | str = "auto",
        timeout: float = SEND_TIMEOUT_S,
        verify: bool = True,
        at: str | None = None,
        expires: str | None = None,
        attempts: int | None = None,
    ) -> SendResult:
        """Send one command now: "auto" queues it if the device is away, "now" never queues,
        "queue" only journals it for the next drain; with `at` still ahead it is only queued,
        due then. The outcome is in the result."""
        from cmdctl.drain import direct

        how = _mode(mode)
        entry = self.command(
            device,
            entity,
            value,
            verify=verify,
            check_cache=how is direct.Mode.QUEUE,
            at=at,
            expires=expires,
            attempts=attempts,
        )
        return await self.deliver(entry, mode=how, timeout=timeout)

    # -- bulk --------------------------------------------------------------------------------

    def plan(
        self,
        playbook: Path | str,
        *,
        limit: str | None = None,
        priority: Priority | str | None = None,
        at: str | None = None,
        tags: str | Collection[str] | None = None,
        skip_tags: str | Collection[str] | None = None,
        max_commands: int = MAX_COMMANDS,
        variables: Variables | None = None,
    ) -> Plan:
        """A playbook (a file, or YAML text) expanded over the inventory; nothing written.
        `variables` beat every `vars:` (README: Variables)."""
        from cmdctl.core.ids import IdFactory
        from cmdctl.core.model import Priority
        from cmdctl.inputs import playbook as pb
        from cmdctl.inputs.variables import given

        wanted, unwanted = _tags(tags), _tags(skip_tags)
        if isinstance(playbook, Path):
            book = pb.load_playbook(playbook, max_commands=max_commands)
        else:
            book = pb.parse_playbook(playbook, max_commands=max_commands)
        prio = Priority.parse(priority) if isinstance(priority, str) else priority
        plan = pb.expand(
            book,
            self.inventory,
            now=self.clock(),
            ids=IdFactory().new,
            who=self.who,
            limit=limit,
            priority=prio,
            at=at,
            max_commands=max_commands,
            tags=wanted,
            skip_tags=unwanted,
            variables=given(variables),
        )
        # Every `!secret` the batch refers to must exist now; its value is read when sending.
        self._secrets_file().check(ref for step in plan.steps for ref in step.secrets)
        return plan

    def check_cached(self, plan: Plan) -> None:
        """InputError at the step's file:line:column for the first command a device's cached
        entity list refuses (devices without a cache are checked when they connect)."""
        if not _any_cached(plan, self.state_dir):
            return  # nothing to check against (and no entry of a bulk needs to be made)
        from cmdctl.api import cachecheck

        cachecheck.check_plan(plan, self.state_dir, self.warn)

    async def queue(
        self, plan: Plan, *, concurrency: int = CONCURRENCY, observer: Observer | None = None
    ) -> Batch:
        """Journal the whole plan in one durable append, then run its immediate steps."""
        import asyncio

        if plan.immediate:
            from cmdctl.drain import direct  # aioesphomeapi: only when something is sent

            totals = await direct.run_immediate(
                self.journal,
                self.inventory.by_name.get,
                plan.immediate,
                concurrency=concurrency,
                observer=observer,
                queued=plan.queued,
                secrets=self._secret,
            )
            return Batch(plan, totals)
        await asyncio.to_thread(self.journal_plan, plan)
        return Batch(plan)

    def journal_plan(self, plan: Plan) -> None:
        """`queue` for a plan without immediate steps, not async: the whole plan in one durable
        append, encoded from its parts (no event per command is made to encode it)."""
        from cmdctl.journal.runs import QueuedRuns, Run

        if plan.first(inline=True) is not None:
            raise ValueError("a plan with immediate steps is queued by `queue`")
        runs = QueuedRuns(
            Run(part.like, part.ids, part.devices) for part in plan.parts
        )
        if runs:
            for repair in self.journal.append(runs).repairs:
                self.warn(str(repair))

    async def bulk(
        self,
        playbook: Path | str,
        *,
        limit: str | None = None,
        priority: Priority | str | None = None,
        at: str | None = None,
        tags: str | Collection[str] | None = None,
        skip_tags: str | Collection[str] | None = None,
        max_commands: int = MAX_COMMANDS,
        concurrency: int = CONCURRENCY,
        variables: Variables | None = None,
    ) -> Batch:
        """`plan` + `check_cached` + `queue`: a playbook queued as one batch, its immediate
        steps run. A playbook given as text is validated like a file (errors name line:col)."""
        plan = self.plan(
            playbook,
            limit=limit,
            priority=priority,
            at=at,
            tags=tags,
            skip_tags=skip_tags,
            max_commands=max_commands,
            variables=variables,
        )
        self.check_cached(plan)
        return await self.queue(plan, concurrency=concurrency)

    # -- scene -------------------------------------------------------------------------------

    async def scene(
        self,
        pattern: str,
        *,
        concurrency: int = SCENE_CONCURRENCY,
        connect_timeout: float = SCENE_CONNECT_TIMEOUT,
        on_device: Callable[[DeviceScene], None] | None = None,
    ) -> Scene:
        """What the devices `pattern` selects show now, as a `Scene` whose `playbook()` puts
        it back (`cmdctl scene save`). Nothing is sent or journaled; a device that cannot be
        read is in the scene with its error (`Scene.failed`, `Scene.exit_code`)."""
        from cmdctl.api.scene import Scene
        from cmdctl.device import scene
        from cmdctl.inputs.selection import select

        devices = select(self.inventory, pattern)
        taken_at = self.clock()
        saved = await scene.save_fleet(
            devices,
            concurrency=concurrency,
            connect_timeout=connect_timeout,
            on_result=on_device,
        )
        return Scene(pattern, taken_at, tuple(saved))

    # -- drain -------------------------------------------------------------------------------

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
            tags=_tags(tags),
            skip_tags=_tags(skip_tags),
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

def _value_text(value: str | float | bool | None) -> str:
    """A value as `cmdctl send` takes it: True → "on", 40 → "40", None → ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _mode(mode: Mode | str) -> Mode:
    from cmdctl.drain.direct import Mode

    try:
        return Mode(mode)
    except ValueError:
        names = ", ".join(m.value for m in Mode)
        raise InputError(f"unknown send mode {mode!r}", hint=f"one of: {names}") from None
