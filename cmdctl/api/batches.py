"""The batch side of a `Fleet`: a playbook expanded over the inventory (`plan`), checked
against the devices' cached entity lists (`check_cached`) and journaled as one `Batch` whose
immediate steps run before it is returned (`queue`, `bulk`)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cmdctl.api import arguments
from cmdctl.api.arguments import CONCURRENCY, MAX_COMMANDS, Variables, Warn
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.core.model import Entry, Priority
    from cmdctl.drain.observer import Observer
    from cmdctl.drain.totals import Totals
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.inputs.playbook import Plan
    from cmdctl.inputs.secretfile import SecretsFile
    from cmdctl.journal.store import Journal


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


class Batches:
    """Playbooks queued as batches (the `Fleet` provides what is declared here)."""

    journal: Journal
    who: str
    warn: Warn
    clock: Callable[[], float]
    _secret: Callable[[str], str]  # the value of `!secret NAME`, for sending only
    _secrets_file: Callable[[], SecretsFile]

    if TYPE_CHECKING:

        @property
        def inventory(self) -> Inventory: ...

        @property
        def state_dir(self) -> Path: ...

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

        wanted, unwanted = arguments.tags(tags), arguments.tags(skip_tags)
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

