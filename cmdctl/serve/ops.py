"""What each API route does, over the journal and inventory, in the CLI's `--json` shapes.

The one place the server calls into cmdctl: when the library facade lands, these become calls to
it. Every function returns JSON-ready values and raises `NotFound`, `Conflict` or `InputError`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cmdctl.core.errors import BusyError, InputError
from cmdctl.core.model import Command, Entry, Priority, State
from cmdctl.inputs.inventory import Inventory
from cmdctl.inputs.playbook import Plan
from cmdctl.journal import events as ev
from cmdctl.journal import queueops, summary
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.queueops import Change
from cmdctl.journal.store import Journal

#: Rows a list route returns when the request says nothing (as `queue ls` / `history`).
DEFAULT_ROWS = 200
MAX_ROWS = 10_000
#: The query parameter that gives a bulk's variables: `?var=name=value`, as `bulk --var`.
VAR = "var"


class NotFound(Exception):
    """No such entry or batch (HTTP 404)."""


class Conflict(Exception):
    """Nothing changed: every chosen entry was left alone, with the reasons (HTTP 409)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("nothing changed")
        self.body = body


def _no_check(*_args: object) -> None:
    """No entity-cache check."""


@dataclass
class Ops:
    """The journal, the inventory (loaded per request: edits show at once), who acts, and the
    CLI's entity-cache checks (`bulk` / `send --queue` refuse what a cached listing refuses)."""

    journal: Journal
    inventory: Callable[[], Inventory]
    who: str
    check_plan: Callable[[Plan], None] = _no_check
    check_command: Callable[[str, Command], None] = _no_check

    # -- reads -------------------------------------------------------------------------------

    def status(self, batch: str | None = None) -> dict[str, Any]:
        """`status --json` (of one batch when given)."""
        scan, ledger = self.journal.load()
        batch_id = _batch(ledger, batch) if batch else None
        st = summary.status(
            ledger,
            now=time.time(),
            batch=batch_id,
            damaged_lines=len(scan.damaged),
            problems=[f"line {d.line}: {d.reason}" for d in scan.damaged],
        )
        return summary.status_json(st)

    def batch(self, batch: str) -> dict[str, Any]:
        """One batch's `status --json` line, with each device's entries (state, error)."""
        ledger = self.journal.ledger()
        batch_id = _batch(ledger, batch)
        st = summary.status(ledger, now=time.time(), batch=batch_id)
        lines = summary.status_json(st)["batches"]
        out: dict[str, Any] = lines[0] if lines else {"batch": batch_id}
        devices: dict[str, list[dict[str, Any]]] = {}
        for e in ledger.entries(batch=batch_id):
            devices.setdefault(e.device, []).append(
                {
                    "id": e.id,
                    "selector": e.command.selector,
                    "state": e.state.value,
                    "outcome": e.outcome,
                    "last_error": e.last_error,
                    "ran_on": e.ran_on,
                }
            )
        out["devices"] = [{"device": d, "entries": rows} for d, rows in devices.items()]
        return out

    def entries(
        self,
        *,
        state: str | None = None,
        device: str | None = None,
        batch: str | None = None,
        limit: int = DEFAULT_ROWS,
    ) -> list[dict[str, Any]]:
        """`queue ls --json`: unfinished entries unless a state is given, in journal order."""
        ledger = self.journal.ledger()
        wanted = _state(state)
        ids = ledger.ids_where(
            device=device,
            batch=_batch(ledger, batch) if batch else None,
            state=wanted,
            unfinished=wanted is None,
        )
        return [entry.as_json() for entry in ledger.entries_of(ids[: _rows(limit)])]

    def entry(self, entry_id: str) -> dict[str, Any]:
        """`queue show --json`: the entry and its events."""
        ledger = self.journal.ledger()
        entry = _lookup(ledger, entry_id)
        history = [r if isinstance(r, ev.Event) else ev.decode(r) for r in ledger.records(entry.id)]
        return {
            **entry.as_json(),
            "events": [{"type": e.type, "ts": e.ts, **dict(e.fields)} for e in history],
        }

    def history(
        self,
        *,
        device: str | None = None,
        since: float | None = None,
        limit: int = 50,
        archive: bool = False,
    ) -> list[dict[str, Any]]:
        """`history --json` (with `archive`, `history --archive --json`): finished entries,
        newest first."""
        scan, ledger = self.journal.load()
        cutoff = time.time() - since if since is not None else None
        rows = summary.history(
            ledger.entries(device=device) if device else ledger.entries(),
            device=device,
            since=cutoff,
        )
        last = _rows(limit)
        if archive:
            from cmdctl.journal.archive import View
            from cmdctl.journal.archive import history as archived

            def wanted(e: Entry) -> bool:  # as `history --archive`: where a failover ran, too
                return device is None or device in (e.device, e.ran_on)

            with View.open(self.journal.directory, scan.file) as view:
                rows = archived(view, ledger, rows, wanted=wanted, since=cutoff, last=last)
        return [e.as_json() for e in rows[:last]]

    def devices(self) -> list[dict[str, Any]]:
        """`devices ls --json` without the entity cache: name, address, groups, last outcome."""
        from cmdctl.device import fleetview

        inv = self.inventory()
        seen = fleetview.activity(self.journal.ledger().entries())
        out = []
        for d in inv.devices:
            act = seen.get(d.name)
            last = act.last if act is not None else None
            out.append(
                {
                    "name": d.name,
                    "host": d.host,
                    "port": d.port,
                    "encrypted": d.key is not None,  # never the key itself
                    "problem": d.problem,
                    "groups": sorted(
                        g for g, m in inv.groups.items() if d.name in m and g != "all"
                    ),
                    "last_seen": act.last_seen if act else None,
                    "last": None
                    if last is None
                    else {
                        "at": last.at,
                        "entry": last.entry,
                        "selector": last.selector,
                        "state": last.state.value,
                        "outcome": last.outcome,
                        "error": last.error,
                    },
                }
            )
        return out

    # -- writes ------------------------------------------------------------------------------

    def send(
        self,
        device: str,
        entity: str,
        value: str | None,
        *,
        at: str | None = None,
        expires: str | None = None,
        attempts: int | None = None,
    ) -> dict[str, Any]:
        """`send --queue --json` (with `--at`, `--expires`, `--attempts`): one entry queued for
        the next drain."""
        from cmdctl.core import timespec
        from cmdctl.core.secretref import names
        from cmdctl.drain import direct
        from cmdctl.inputs import commands
        from cmdctl.inputs.secretfile import SecretsFile
        from cmdctl.inputs.step import check_attempts

        inventory = self.inventory()
        inventory.device(device)  # InputError with a did-you-mean hint
        domain, target = commands.parse_selector(entity)
        command = commands.parse_cli_value(domain, target, "" if value is None else value)
        SecretsFile.beside(inventory.path).check((name, None) for name in names(command.args))
        now = time.time()
        not_before, until = timespec.schedule(
            at, expires, now, at_name="at", expires_name="expires"
        )
        tries = (
            direct.SEND_MAX_ATTEMPTS if attempts is None else check_attempts(attempts, "attempts")
        )
        self.check_command(device, command)
        entry = direct.send_entry(
            device,
            command,
            who=self.who,
            idempotent=commands.idempotent_default(command),
            now=now,
            max_attempts=tries,
            not_before=not_before,
            expires=until,
        )
        return direct.queue_only(self.journal, entry).as_dict()

    def bulk(
        self,
        body: bytes,
        *,
        limit: str | None = None,
        priority: str | None = None,
        at: str | None = None,
        variables: Sequence[str] = (),
    ) -> dict[str, Any]:
        """`bulk --json` (with `--var name=value` for each of `variables`): the playbook in
        `body` validated as the CLI does, queued as one batch."""
        from cmdctl.core.ids import IdFactory
        from cmdctl.inputs import playbook
        from cmdctl.inputs.secretfile import SecretsFile
        from cmdctl.inputs.variables import VariableError, given
        from cmdctl.journal.runs import QueuedRuns, Run

        pb = playbook.load_playbook_text(body, "playbook")
        inventory = self.inventory()
        try:
            plan = playbook.expand(
                pb,
                inventory,
                now=time.time(),
                ids=IdFactory().new,
                who=self.who,
                limit=limit,
                priority=Priority.parse(priority) if priority is not None else None,
                at=at,
                max_commands=pb.max_commands,
                variables=given(variables, VAR),
            )
        except VariableError as err:  # its hint names `var=name=...`, not the CLI's `--var`
            raise err.given_as(VAR) from None
        SecretsFile.beside(inventory.path).check(r for step in plan.steps for r in step.secrets)
        self.check_plan(plan)
        if plan.first(inline=True) is not None:
            raise InputError(
                "the playbook has `mode: immediate` steps",
                hint="run it with `cmdctl bulk`; the server only queues (a drain runs the work)",
            )
        # Encoded from the plan's parts, as `bulk` does: no entry or event per command.
        self.journal.append(QueuedRuns(Run(p.like, p.ids, p.devices) for p in plan.parts))
        return {
            "batch": plan.batch,
            "playbook": plan.name,
            "devices": len(plan.devices),
            "steps": len(plan.steps),
            "queued": plan.counts(inline=False)[0],
            "immediate": 0,
        }

    def cancel(self, entry_id: str | None = None, batch: str | None = None) -> dict[str, Any]:
        """`queue cancel --json` of one entry or a batch's unfinished entries."""
        from cmdctl.drain import recovery

        with contextlib.ExitStack() as stack:
            try:  # no drain can take an orphaned entry while we decide
                stack.enter_context(self.journal.try_drain_lock())
                holding = True
            except BusyError:
                holding = False

            def decide(ledger: Ledger) -> Change:
                chosen = self._chosen(ledger, entry_id, batch)
                if entry_id is None:
                    chosen = [e for e in chosen if not e.finished]
                orphans: set[str] = set()
                if any(e.state is State.RUNNING for e in chosen):
                    orphans = recovery.orphaned(ledger, time.time(), holding_drain_lock=holding)
                return queueops.cancel(chosen, who=self.who, now=time.time(), orphaned=orphans)

            change = self.journal.transact(decide)[0]
        return _report(change, "cancelled")

    def retry(self, entry_id: str | None = None, batch: str | None = None) -> dict[str, Any]:
        """`queue retry --json` of one entry, or of a batch's failed entries."""
        t = time.time()

        def decide(ledger: Ledger) -> Change:
            if entry_id is not None:
                chosen = [_lookup(ledger, entry_id)]
            else:
                chosen = ledger.entries(state=State.FAILED, batch=_batch(ledger, batch or ""))
            return queueops.retry(chosen, who=self.who, now=t)

        return _report(self.journal.transact(decide)[0], "requeued")

    def priority(self, entry_id: str, level: str) -> dict[str, Any]:
        """`queue priority --json`."""
        prio = Priority.parse(level)

        def decide(ledger: Ledger) -> Change:
            return queueops.reprioritise([_lookup(ledger, entry_id)], prio, now=time.time())

        change = self.journal.transact(decide)[0]
        return _report(change, f"set_to_{prio.value}")

    def _chosen(self, ledger: Ledger, entry_id: str | None, batch: str | None) -> list[Entry]:
        if entry_id is not None:
            return [_lookup(ledger, entry_id)]
        return ledger.entries(batch=_batch(ledger, batch or ""))


def _report(change: Change, key: str) -> dict[str, Any]:
    body = {
        key: [e.id for e in change.changed],
        "refused": [{"id": e.id, "reason": why} for e, why in change.refused],
    }
    if not change.changed and change.refused:
        raise Conflict(body)
    return body


def _lookup(ledger: Ledger, entry_id: str) -> Entry:
    try:
        return ledger.lookup(entry_id)
    except InputError as err:
        if err.message.startswith("no entry"):
            raise NotFound(err.message) from None
        raise


def _batch(ledger: Ledger, text: str) -> str:
    """The batch whose id is `text` or starts with it (as `status BATCH`)."""
    batches = list(ledger.batches())
    if text in batches:
        return text
    matches = [b for b in batches if text and b.startswith(text.upper())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no batch {text!r}")
    raise InputError(f"batch prefix {text!r} matches {len(matches)} batches")


def _state(text: str | None) -> State | None:
    if text is None:
        return None
    try:
        return State(text.lower())
    except ValueError:
        names = ", ".join(s.value for s in State)
        raise InputError(f"unknown state {text!r}", hint=f"one of: {names}") from None


def _rows(limit: int) -> int:
    if not 1 <= limit <= MAX_ROWS:
        raise InputError(f"limit must be 1 to {MAX_ROWS}, got {limit}")
    return limit
