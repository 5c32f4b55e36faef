"""`--notify CMD`: a user's shell command run when a batch is through and when an entry fails.

When: a *failure* event for each entry this run gives `failed`, `unknown` or `expired`, or gives
up on as unreachable (it does not stay queued); a *batch* event once every entry of a batch that
this run planned has an outcome in this run, sent when the pass that gave the last one has ended
(`drain`: at its end, one event per batch with the counts of the whole drain; `run`: at the end
of each pass, so a batch whose entries come due at different times gets one event per pass that
took some of them and finished them all). Entries settled without being planned (expired while
queued, recovered after a crash) only get failure events.

How: `/bin/sh -c CMD` in a worker thread, one hook at a time in the order the events happened,
the event as JSON on stdin and `CMDCTL_*` variables in its environment (cmdctl's own environment
otherwise, less every variable that holds a device key: an inventory may take keys from
`${ENV}`; keys never reach the hook's environment, its stdin or its argv). Each hook has a
timeout; then its process group is killed. At most `QUEUE_SIZE` events wait: when the hooks
fall behind, newer events are dropped, said once when it starts and counted at the end. A hook
that fails is one warning line; it never changes the journal or the exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cmdctl.core.model import Entry, JSONValue, State
from cmdctl.drain import totals as tot
from cmdctl.drain.observer import Finished
from cmdctl.drain.totals import Tally

if TYPE_CHECKING:
    from cmdctl.drain.observer import Observer

#: Seconds a hook may run before it is killed (`--notify-timeout`).
DEFAULT_TIMEOUT = 10.0
#: Events waiting for the hook at most; beyond this they are dropped (a slow hook must not
#: make a `cmdctl run` of weeks grow without bound).
QUEUE_SIZE = 100
#: A hook's stderr kept for the warning line when it fails.
MAX_STDERR = 200
SHELL = "/bin/sh"
#: The outcomes that are failures worth a message of their own.
FAILURES = (tot.FAILED, tot.UNKNOWN, tot.EXPIRED)
#: The variables cmdctl sets for a hook (inherited ones of the same name are removed first).
ENV_NAMES = (
    "CMDCTL_EVENT", "CMDCTL_RUN", "CMDCTL_BATCH", "CMDCTL_PLAYBOOK", "CMDCTL_OUTCOME",
    "CMDCTL_DEVICE", "CMDCTL_ENTRY", "CMDCTL_COUNT", "CMDCTL_SUMMARY",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Event:
    """One hook call: what goes on its stdin and in its environment."""

    kind: str  # "batch" or "failure"
    body: Mapping[str, JSONValue]
    env: Mapping[str, str]
    label: str  # what the warning line says it was about: "batch B", "entry E"


@dataclass(slots=True)
class _Batch:
    waiting: int = 0  # planned in this run without an outcome yet
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, JSONValue]] = field(default_factory=list)
    playbook: str | None = None
    origin: str = ""
    first: float | None = None  # epoch seconds of its first outcome in this round


def is_failure(done: Finished) -> bool:
    """True for an outcome that gets a failure event (see the module docstring)."""
    if done.outcome in FAILURES:
        return True
    return done.outcome == tot.UNREACHABLE and done.after.state is not State.PENDING


def summary(total: int, counts: Mapping[str, int]) -> str:
    """`2 commands: 2 confirmed`."""
    parts = ", ".join(f"{counts[name]} {name}" for name in tot.OUTCOMES if counts.get(name))
    return f"{total} command{'s' if total != 1 else ''}: {parts}"


class Hook:
    """Runs CMD for each event, one at a time, in a worker thread; a bounded queue in front."""

    def __init__(
        self,
        command: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        warn: Callable[[str], None],
        size: int = QUEUE_SIZE,
        secrets: Callable[[], Collection[str]] = frozenset,
    ) -> None:
        self.command = command
        # The values no variable handed to the hook may hold (device keys), asked for when the
        # first hook runs: by then the drain has loaded the inventory anyway.
        self._secrets = secrets
        self._hidden: frozenset[str] | None = None
        self.timeout = timeout
        self.warn = warn
        self.dropped = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(maxsize=size)
        self._thread = threading.Thread(target=self._work, name="cmdctl-notify", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        """Queue `event` without waiting; drop it when the queue is full (said once)."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                self.warn(
                    f"--notify is falling behind ({self._queue.maxsize} events waiting); "
                    "dropping new events until it catches up"
                )

    def close(self) -> None:
        """Run what is queued, then stop the worker (each hook is bounded by the timeout)."""
        self._queue.put(None)
        self._thread.join()
        if self.dropped:
            n = self.dropped
            were = "s were" if n != 1 else " was"
            self.warn(f"--notify: {n} event{were} dropped (the hook was too slow)")

    def _work(self) -> None:
        while (event := self._queue.get()) is not None:
            problem = self.call(event)
            if problem is not None:
                self.warn(f"--notify hook for {event.label} {problem}")

    def call(self, event: Event) -> str | None:
        """Run the hook for `event`; None when it exited 0, else what went wrong (one line)."""
        if self._hidden is None:
            self._hidden = frozenset(s.strip() for s in self._secrets())
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ENV_NAMES and v.strip() not in self._hidden
        }
        env.update(event.env)
        data = (json.dumps(event.body, separators=(",", ":"), default=str) + "\n").encode()
        try:
            proc = subprocess.Popen(
                [SHELL, "-c", self.command],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,  # cmdctl's stdout is its own (--json)
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as err:
            return f"could not start: {SHELL}: {err.strerror}"
        try:
            _, err_out = proc.communicate(data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return f"timed out after {self.timeout:g}s and was killed"
        if proc.returncode == 0:
            return None
        why = _last_line(err_out)
        code = proc.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exited {code}"
        return f"failed: {status}" + (f": {why}" if why else "")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended just now
        os.killpg(proc.pid, signal.SIGKILL)


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:MAX_STDERR] if lines else ""


class NotifyWatch:
    """An engine observer in front of another: turns outcomes into hook events (see module)."""

    def __init__(
        self,
        inner: Observer,
        hook: Hook,
        *,
        per_pass: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.inner = inner
        self.hook = hook
        self.per_pass = per_pass
        self.clock = clock
        self.run_id = ""  # set once the engine exists
        self.started = clock()
        self._batches: dict[str, _Batch] = {}
        self._open: set[str] = set()  # devices of the pass not done yet

    def planned(self, entries: Sequence[Entry]) -> None:
        """Forward; count what each batch has to come."""
        for entry in entries:
            batch = self._batches.setdefault(entry.batch, _Batch())
            batch.waiting += 1
            batch.playbook, batch.origin = entry.playbook, entry.origin
            self._open.add(entry.device)
        self.inner.planned(entries)

    def step(self, device: str, text: str) -> None:
        """Forward."""
        self.inner.step(device, text)

    def finished(self, done: Finished) -> None:
        """Forward; a failure event now, and count the outcome towards its batch."""
        self.inner.finished(done)
        entry = done.entry
        failure = is_failure(done)
        if failure:
            self.hook.put(self._failure(done))
        batch = self._batches.get(entry.batch)
        if batch is None or batch.waiting == 0:
            return  # settled without being planned: its failure event says it
        batch.waiting -= 1
        batch.counts[done.outcome] = batch.counts.get(done.outcome, 0) + 1
        batch.first = batch.first or self.clock()
        if failure:
            batch.failures.append(self._entry(done))

    def device_done(self, tally: Tally) -> None:
        """Forward; at the end of a pass (`run`), send the batches it finished."""
        self.inner.device_done(tally)
        self._open.discard(tally.device)
        if self.per_pass and not self._open:
            self.flush()

    def flush(self) -> None:
        """Send an event for every batch whose planned entries all have an outcome."""
        for batch_id, batch in list(self._batches.items()):
            if batch.waiting == 0 and batch.counts:
                del self._batches[batch_id]
                self.hook.put(self._batch(batch_id, batch))

    def close(self) -> None:
        """The run is over: send the finished batches, wait for the hooks."""
        self.flush()
        self.hook.close()

    def _base(self, kind: str) -> dict[str, JSONValue]:
        return {
            "event": kind,
            "run": {"id": self.run_id, "started": round(self.started, 3)},
            "at": round(self.clock(), 3),
        }

    def _entry(self, done: Finished) -> dict[str, JSONValue]:
        after = done.after
        return {
            "id": after.id,
            "device": after.device,
            "ran_on": after.ran_on,
            "command": after.command.selector,
            "args": dict(after.command.args),
            "step": after.step,
            "outcome": done.outcome,
            "state": after.state.value,
            "error": after.last_error or after.reason or done.detail,
            "attempts": after.attempts,
        }

    def _failure(self, done: Finished) -> Event:
        entry = done.entry
        item = self._entry(done)
        body = {
            **self._base("failure"),
            "batch": entry.batch,
            "playbook": entry.playbook,
            **{k: v for k, v in item.items() if k != "id"},
            "entry": entry.id,
        }
        text = f"{entry.device}: {entry.command.selector}: {done.outcome}: {item['error']}"
        env = {
            "CMDCTL_EVENT": "failure",
            "CMDCTL_RUN": self.run_id,
            "CMDCTL_BATCH": entry.batch,
            "CMDCTL_PLAYBOOK": entry.playbook or "",
            "CMDCTL_OUTCOME": done.outcome,
            "CMDCTL_DEVICE": entry.device,
            "CMDCTL_ENTRY": entry.id,
            "CMDCTL_COUNT": "1",
            "CMDCTL_SUMMARY": text,
        }
        return Event("failure", body, env, f"entry {entry.id}")

    def _batch(self, batch_id: str, batch: _Batch) -> Event:
        total = sum(batch.counts.values())
        done = batch.counts.get(tot.CONFIRMED, 0) + batch.counts.get(tot.DELIVERED, 0)
        outcome = "ok" if done == total else "failed" if batch.failures else "partial"
        text = summary(total, batch.counts)
        body = {
            **self._base("batch"),
            "batch": batch_id,
            "playbook": batch.playbook,
            "origin": batch.origin,
            "outcome": outcome,
            "total": total,
            "counts": {name: batch.counts.get(name, 0) for name in tot.OUTCOMES},
            "failures": list(batch.failures),
            "first": None if batch.first is None else round(batch.first, 3),
            "summary": text,
        }
        label = batch.playbook or batch.origin
        env = {
            "CMDCTL_EVENT": "batch",
            "CMDCTL_RUN": self.run_id,
            "CMDCTL_BATCH": batch_id,
            "CMDCTL_PLAYBOOK": batch.playbook or "",
            "CMDCTL_OUTCOME": outcome,
            "CMDCTL_COUNT": str(total),
            "CMDCTL_SUMMARY": f"batch {batch_id} ({label}): {text}",
        }
        return Event("batch", body, env, f"batch {batch_id}")
