"""What a drain tells monitoring: a Prometheus textfile and one JSON line per outcome.

The textfile is for node_exporter's textfile collector: replaced atomically (temporary file in
the same directory, fsync, rename), no timestamps (the collector refuses them), every family
with HELP and TYPE. Values describe the last drain (for `cmdctl run`: the run so far), so they
are gauges, not counters. Command latency is what the engine measured for each command it did
(from the send to the confirmation or delivery barrier), per device, as a summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import os
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cmdctl.core import durable
from cmdctl.core.errors import InputError, JournalError
from cmdctl.core.model import Entry, JSONValue, State
from cmdctl.drain import totals as tot
from cmdctl.drain.observer import Finished
from cmdctl.drain.totals import Tally, Totals

if TYPE_CHECKING:
    from cmdctl.drain.observer import Observer
    from cmdctl.journal.ledger import Ledger
    from cmdctl.journal.store import Journal

#: Quantiles of the per-device command latency summary.
QUANTILES = (0.5, 0.9, 0.99)
#: The latency summary of a `cmdctl run` covers at most its latest this many commands.
MAX_LATENCY_SAMPLES = 10_000
# The recorder appends every 30 ms (more under load); a pass's outcomes are on disk well within
# this, and metrics a little stale are better than none.
SETTLE_TIMEOUT = 5.0
SETTLE_POLL = 0.05
#: node_exporter reads other users' files: the metrics are not secret (the log file is 0600).
METRICS_MODE = 0o644
LOG_MODE = 0o600

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")

@dataclass(frozen=True, slots=True)
class DrainMetrics:
    """Everything the textfile says about one drain."""

    totals: Totals
    queued: int  # pending entries in the journal after the drain
    finished: float  # epoch seconds
    latencies: Mapping[str, Sequence[float]] = field(default_factory=dict)  # device → seconds


# -- the textfile ------------------------------------------------------------------------------


def check_target(path: Path, what: str) -> Path:
    """`path` as given, if its directory exists and it is not one; else an InputError."""
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory", hint="give a file name")
    if not path.parent.is_dir():
        raise InputError(f"{what}: no directory {path.parent}", hint="create it first")
    return path


def render(m: DrainMetrics) -> str:
    """The Prometheus text exposition of `m` (format 0.0.4), newline-terminated."""
    t = m.totals
    out: list[str] = []
    gauge = _family(out, "gauge")
    gauge(
        "cmdctl_queued_commands",
        "Commands pending in the journal after the last drain.",
        [({}, m.queued)],
    )
    gauge(
        "cmdctl_drain_commands",
        "Commands given each outcome by the last drain (cmdctl run: since it started); "
        "done = confirmed + delivered.",
        [({"outcome": name}, t.count(name)) for name in tot.OUTCOMES],
    )
    gauge("cmdctl_drain_retries", "Extra connection attempts in the last drain.", [({}, t.retried)])
    gauge(
        "cmdctl_drain_left_commands",
        "Due commands the last drain did not get to (time ran out, or it was stopped).",
        [({}, t.left)],
    )
    gauge(
        "cmdctl_drain_superseded_commands",
        "Commands the last drain did not send because a newer one for the same entity "
        "replaced them (coalescing).",
        [({}, t.superseded)],
    )
    gauge(
        "cmdctl_drain_held_commands",
        "Commands the last drain left pending because their batch crossed its failure "
        "threshold (cmdctl queue ls says why).",
        [({}, t.held)],
    )
    gauge(
        "cmdctl_drain_duration_seconds", "Wall time of the last drain.", [({}, round(t.seconds, 3))]
    )
    gauge(
        "cmdctl_drain_exit_code",
        "Exit code of the last drain (0 ok, 1 failed, 4 unreachable).",
        [({}, int(t.exit_code()))],
    )
    gauge(
        "cmdctl_drain_last_timestamp_seconds",
        "When the last drain ended (epoch seconds).",
        [({}, round(m.finished, 3))],
    )
    gauge(
        "cmdctl_device_commands",
        "Commands per device and outcome in the last drain (outcomes with none left out).",
        [
            ({"device": tally.device, "outcome": name}, tally.get(name))
            for tally in tot.sorted_tallies(t.devices.values())
            for name in tot.OUTCOMES
            if tally.get(name)
        ],
    )
    samples: list[tuple[str, dict[str, str], float]] = []
    for device in sorted(m.latencies):
        values = sorted(m.latencies[device])
        if not values:
            continue
        for q in QUANTILES:
            labels = {"device": device, "quantile": _number(q)}
            samples.append(("", labels, round(_quantile(values, q), 6)))
        samples.append(("_sum", {"device": device}, round(math.fsum(values), 6)))
        samples.append(("_count", {"device": device}, len(values)))
    _header(
        out,
        "cmdctl_command_duration_seconds",
        "Seconds from sending a command to its confirmation (or delivery), per device, "
        f"for the commands the last drain did (cmdctl run: its latest {MAX_LATENCY_SAMPLES}).",
        "summary",
    )
    out.extend(
        _sample(f"cmdctl_command_duration_seconds{suffix}", labels, value)
        for suffix, labels, value in samples
    )
    return "\n".join(out) + "\n"


def _family(
    out: list[str], kind: str
) -> Callable[[str, str, list[tuple[dict[str, str], float]]], None]:
    def add(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        _header(out, name, help_text, kind)
        out.extend(_sample(name, labels, value) for labels, value in samples)

    return add


def _header(out: list[str], name: str, help_text: str, kind: str) -> None:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"bad metric name {name!r}")
    text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def _sample(name: str, labels: Mapping[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    parts = []
    for key, raw in labels.items():
        if not _LABEL_NAME.match(key) or key.startswith("__"):
            raise ValueError(f"bad label name {key!r}")
        parts.append(f'{key}="{escape_label(raw)}"')
    return f"{name}{{{','.join(parts)}}} {_number(value)}"


def escape_label(value: str) -> str:
    """A label value as the text format needs it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def write_textfile(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (`core.durable.replace_file`: a hidden temporary
    file that node_exporter's `*.prom` never matches, fsync, rename, fsync the directory)."""
    durable.replace_file(path, text.encode("utf-8"), mode=METRICS_MODE)


# -- from the journal --------------------------------------------------------------------------


def queued(ledger: Ledger) -> int:
    """Pending entries (due or not)."""
    return ledger.counts().get(State.PENDING, 0)


Latencies = Mapping[str, Sequence[float]]  # device → seconds, oldest first


def collect(ledger: Ledger, totals: Totals, latencies: Latencies) -> DrainMetrics:
    """The metrics of a drain with these totals and command latencies."""
    return DrainMetrics(
        totals=totals, queued=queued(ledger), finished=time.time(), latencies=latencies
    )


# -- the outcome log ---------------------------------------------------------------------------


class OutcomeLog:
    """`--log-file`: one JSON line per outcome, appended and written through (mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> OutcomeLog:
        """Open for appending (created 0600); OSError if it cannot be."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, LOG_MODE)
        with contextlib.suppress(OSError):  # someone else's shared log: leave its mode alone
            os.fchmod(fd, LOG_MODE)
        self._fd = fd
        return self

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutcomeLog:
        return self.open() if self._fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self, done: Finished, at: float) -> dict[str, JSONValue]:
        """The record of one outcome: the entry as `--json` shows it, after this outcome."""
        return {**done.after.as_json(), "result": done.outcome, "detail": done.detail, "at": at}

    def write(self, done: Finished) -> None:
        """Append one line and hand it to the kernel at once (one write, O_APPEND)."""
        if self._fd is None:
            return
        record = self.line(done, round(time.time(), 6))
        data = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        durable.write_all(self._fd, data)


# -- watching a drain --------------------------------------------------------------------------


class DrainWatch:
    """An engine observer in front of another: logs outcomes and notices when a pass ends.

    It keeps its own totals (tallies as the engine reports them) and the latest command
    latencies the engine measured, and calls `on_pass(totals, latencies, pass_ids)` in a worker
    thread when every device of a pass is done, so `cmdctl run` can rewrite its metrics without
    stalling the loop; `pass_ids` maps the entries given an outcome in the pass to their
    `updated` time before it (their outcome events may still be on their way to the journal).
    """

    def __init__(
        self,
        inner: Observer,
        *,
        log: OutcomeLog | None = None,
        on_pass: Callable[[Totals, Latencies, Mapping[str, float]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.log = log
        self.on_pass = on_pass
        self.clock = clock
        self.began = clock()
        self.totals = Totals()
        # (device, seconds) of the commands done in this run, newest last; bounded, so that a
        # `cmdctl run` of weeks does not grow without end.
        self.done: deque[tuple[str, float]] = deque(maxlen=MAX_LATENCY_SAMPLES)
        self._open: set[str] = set()
        self._pass: dict[str, float] = {}  # id → `updated` before its outcome in this pass
        self._tasks: set[asyncio.Task[None]] = set()

    def planned(self, entries: Sequence[Entry]) -> None:
        """Forward; remember which devices this pass works on."""
        self._open.update(e.device for e in entries)
        self.inner.planned(entries)

    def step(self, device: str, text: str) -> None:
        """Forward."""
        self.inner.step(device, text)

    def finished(self, done: Finished) -> None:
        """Forward, count, and log the outcome."""
        self.inner.finished(done)
        entry = done.entry
        self.totals.tally(entry.device).add(done.outcome)
        self._pass.setdefault(entry.id, entry.updated)
        if done.duration is not None and math.isfinite(done.duration) and done.duration >= 0:
            self.done.append((done.after.ran_on or entry.device, done.duration))
        if self.log is not None:
            self.log.write(done)

    def latencies(self) -> dict[str, list[float]]:
        """device → seconds of the commands done in this run (the latest, see `done`)."""
        out: dict[str, list[float]] = {}
        for device, seconds in self.done:
            out.setdefault(device, []).append(seconds)
        return out

    def device_done(self, tally: Tally) -> None:
        """Forward; when it was the last device of the pass, call `on_pass` off the loop."""
        self.inner.device_done(tally)
        mine = self.totals.tally(tally.device)
        mine.retried, mine.seconds, mine.error = tally.retried, tally.seconds, tally.error
        self._open.discard(tally.device)
        if not self._open and self.on_pass is not None:
            self.totals.seconds = self.clock() - self.began
            # A copy: the next pass may start while the worker thread still reads it.
            totals = copy.deepcopy(self.totals)
            settled, self._pass = self._pass, {}
            task = asyncio.ensure_future(
                asyncio.to_thread(self.on_pass, totals, self.latencies(), settled)
            )
            self._tasks.add(task)  # a strong reference until it is done
            task.add_done_callback(self._tasks.discard)


# -- one drain's monitoring --------------------------------------------------------------------


class Monitor:
    """`--metrics-file` and `--log-file` of one `drain` or `run`; a context manager.

    Both paths are checked (and the log opened) at construction, so a bad path is an input error
    before any work starts. Failing to write metrics later never fails the drain: `warn` is told.
    """

    def __init__(
        self,
        journal: Journal,
        *,
        metrics_file: Path | None,
        log_file: Path | None,
        warn: Callable[[str], None],
        each_pass: bool = False,
    ) -> None:
        self.journal = journal
        self.metrics_file = (
            None if metrics_file is None else check_target(metrics_file, "--metrics-file")
        )
        self.warn = warn
        self.each_pass = each_pass
        self.log: OutcomeLog | None = None
        self.watcher: DrainWatch | None = None
        if log_file is not None:
            check_target(log_file, "--log-file")
            try:
                self.log = OutcomeLog(log_file).open()
            except OSError as err:
                raise InputError(f"--log-file: cannot open {log_file}: {err.strerror}") from None

    @property
    def active(self) -> bool:
        """True when either option was given."""
        return self.metrics_file is not None or self.log is not None

    def watch(self, inner: Observer) -> Observer:
        """The observer to give the engine: `inner` itself when nothing is asked for."""
        if not self.active:
            return inner
        on_pass = self._after_pass if self.each_pass and self.metrics_file is not None else None
        self.watcher = DrainWatch(inner, log=self.log, on_pass=on_pass)
        return self.watcher

    def finish(self, totals: Totals) -> None:
        """The run is over: write the metrics from its totals, close the log."""
        try:
            if self.metrics_file is not None:
                self._write(totals, self.watcher.latencies() if self.watcher else {})
        finally:
            self.close()

    def _after_pass(
        self, totals: Totals, latencies: Latencies, settled: Mapping[str, float]
    ) -> None:
        """In a worker thread: once the pass's outcomes are on disk, write the metrics."""
        self._write(totals, latencies, settled)

    def _write(
        self, totals: Totals, latencies: Latencies, settled: Mapping[str, float] | None = None
    ) -> None:
        assert self.metrics_file is not None
        try:
            ledger = self.journal.ledger()
            # The engine's group commit appends outcomes a moment after it reports them.
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while settled and not _recorded(ledger, settled) and time.monotonic() < deadline:
                time.sleep(SETTLE_POLL)
                ledger = self.journal.ledger()
            write_textfile(self.metrics_file, render(collect(ledger, totals, latencies)))
        except (OSError, JournalError) as err:
            self.warn(f"cannot write the metrics file {self.metrics_file}: {err}")

    def close(self) -> None:
        """Close the log (idempotent)."""
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _recorded(ledger: Ledger, marks: Mapping[str, float]) -> bool:
    """True when every entry has its outcome on disk: an event newer than its mark, and not
    just its `started` (written before the command leaves); gone from the journal: too."""
    there = [i for i in marks if i in ledger]
    if any(ledger.state(i) is State.RUNNING for i in there):
        return False
    # Decoded together: one pass over the ledger's log, not one per entry.
    return all(entry.updated > marks[entry.id] for entry in ledger.entries_of(there))
