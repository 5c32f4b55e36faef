#!/usr/bin/env python3
"""Chaos soak: random bulk / send / cancel / compact / drain / run under kill -9 and device faults.

For `--duration`, keeps a few `cmdctl` processes busy at once against a simulator in its own
process (`cmdctl simulate --inventory sim-N.yml --record record.jsonl`), kills some of them with
SIGKILL at random moments, and every `--phase` seconds restarts the simulator (SIGTERM or SIGKILL)
with new per-device faults (latency, drops, flapping, reboots, offline, silent, slow handshakes,
max_connections 1). Then it stops the chaos, runs clean drains against healthy devices and checks:

* `cmdctl journal verify` passes;
* nothing lost: every batch `bulk` reported as queued, every id `send` reported and every id seen
  in the journal during the run is in the journal or the archive; the archive holds only
  finished entries;
* every entry is finished, pending with a reason (not yet due), or unknown with a reason;
* no event follows the one that finished an entry (only `queue retry` reopens one; an `unknown`
  entry may still be cancelled, retried or reprioritised by a person), and `cmdctl status`
  counts what a plain fold of the journal counts;
* no `idempotent: false` command ran twice per the simulator's record (each such step carries a
  unique value), none ran while its entry says it did not (cancelled, pending, ...), and a device
  received no more button presses than there are button entries for it.

    python bench/soak.py --duration 30m [--seed S] [--devices N] [--workdir DIR] [--json OUT]

Exit 0 when no invariant is violated, 1 otherwise. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmdctl.core.model import Entry, State
from cmdctl.core.timespec import parse_duration
from cmdctl.journal import archive
from cmdctl.journal import events as ev
from cmdctl.journal.entry import entry_from_queued, fold
from cmdctl.journal.framing import scan_bytes
from cmdctl.journal.layout import QUARANTINE_DIR
from cmdctl.journal.store import Journal

OP_TIMEOUT = 120.0  # any one cmdctl process; a drain is bounded by --max-time plus device timeouts
SIM_READY_TIMEOUT = 30.0  # simulator start-up on a busy 2-core box
DEVICE_TIMEOUT = "6s"  # per-device job timeout in the inventory: bounds a silent device
SAMPLE_EVERY = 5.0  # seconds between reads of the journal for ids seen mid-run
INTERNAL_ERROR = 70  # cmdctl's exit code for a bug (it writes a crash report)
TOKEN = "nx"  # prefix of the unique value of every idempotent: false step
ITOKEN = "ix"  # prefix of unique values of idempotent steps (checked for done => received)
UNIQUE_ACTION = "send_tv_command"


# -- set-up ------------------------------------------------------------------------------------


def free_base_port(count: int, rng: random.Random) -> int:
    """A base port with `count` free consecutive ports on 127.0.0.1."""
    for _ in range(200):
        base = rng.randrange(20_000, 60_000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SystemExit("no free port range on 127.0.0.1")


@dataclass
class Fleet:
    """The soak's devices: names, ports, which ones use Noise."""

    names: list[str]
    ports: dict[str, int]
    encrypted: set[str]


def write_inventory(work: Path, devices: int, rng: random.Random) -> Fleet:
    """devices.yml (what cmdctl reads) and secrets.yaml; half the devices use Noise."""
    base = free_base_port(devices, rng)
    names = [f"soak-{i:02d}" for i in range(1, devices + 1)]
    ports = {n: base + i for i, n in enumerate(names)}
    encrypted = {n for i, n in enumerate(names) if i % 2 == 0}
    secrets = [
        f'{n.replace("-", "_")}_key: "{base64.b64encode(rng.randbytes(32)).decode()}"'
        for n in sorted(encrypted)
    ]
    (work / "secrets.yaml").write_text("\n".join(secrets) + "\n")
    (work / "devices.yml").write_text(_inventory_text(Fleet(names, ports, encrypted), None))
    return Fleet(names, ports, encrypted)


def _inventory_text(fleet: Fleet, faults: dict[str, dict[str, Any]] | None) -> str:
    lines = ["devices:"]
    for i, name in enumerate(fleet.names):
        lines += [
            f"  {name}:",
            "    host: 127.0.0.1",
            f"    port: {fleet.ports[name]}",
            f"    expected_name: {name}",
            f"    groups: [soak, {'odd' if i % 2 else 'even'}]",
            f"    timeout: {DEVICE_TIMEOUT}",
        ]
        if name in fleet.encrypted:
            lines.append(f"    key: !secret {name.replace('-', '_')}_key")
        if faults is not None:
            block = {"template": "tv", **faults.get(name, {})}
            lines.append(f"    simulate: {json.dumps(block)}")
    return "\n".join(lines) + "\n"


def random_faults(rng: random.Random, seed: int) -> dict[str, Any]:
    """One device's simulate-block additions for a phase (half the time: healthy)."""
    roll = rng.random()
    out: dict[str, Any] = {"seed": seed}
    if roll < 0.45:
        return out
    kind = rng.choice(
        ["latency", "drop", "drop", "flapping", "offline", "reboot", "slow", "silent", "maxconn"]
    )
    if kind == "latency":
        out["faults"] = {
            "latency": f"{rng.randint(20, 250)}ms",
            "jitter": f"{rng.randint(0, 100)}ms",
        }
    elif kind == "drop":
        out["faults"] = {"drop_probability": round(rng.uniform(0.03, 0.3), 3)}
    elif kind == "flapping":
        out["faults"] = {
            "flapping": {"up": f"{rng.uniform(2, 8):.1f}s", "down": f"{rng.uniform(0.5, 3):.1f}s"}
        }
    elif kind == "offline":
        out["faults"] = {"offline": True}
    elif kind == "reboot":
        out["faults"] = {
            "reboot": {
                "after": f"{rng.uniform(1, 6):.1f}s",
                "every": f"{rng.uniform(8, 20):.1f}s",
                "down": f"{rng.uniform(1, 4):.1f}s",
            }
        }
    elif kind == "slow":
        out["faults"] = {"slow_handshake": f"{rng.randint(200, 1500)}ms"}
    elif kind == "silent":
        out["faults"] = {"silent": True}
    else:
        out["max_connections"] = 1
    return out


class Simulator:
    """`cmdctl simulate` in its own process, restarted with new faults per phase."""

    def __init__(self, work: Path, fleet: Fleet, env: dict[str, str]) -> None:
        self.work = work
        self.fleet = fleet
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.phase = 0
        self.kills = 0
        self.restarts = 0
        self.faulty: Counter[str] = Counter()
        self.log: IO[bytes] | None = None

    def start(self, rng: random.Random | None) -> None:
        """Start with random faults (or all healthy when rng is None); wait until listening."""
        self.phase += 1
        faults = {}
        for name in self.fleet.names:
            block = random_faults(rng, rng.randrange(1 << 30)) if rng else {"seed": 0}
            faults[name] = block
            for key in block.get("faults", {}):
                self.faulty[key] += 1
            if "max_connections" in block:
                self.faulty["max_connections"] += 1
        spec = self.work / f"sim-{self.phase}.yml"
        spec.write_text(_inventory_text(self.fleet, faults))
        log_path = self.work / f"sim-{self.phase}.log"
        self.log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cmdctl",
                "simulate",
                "--inventory",
                str(spec),
                "--record",
                str(self.work / "record.jsonl"),
            ],
            cwd=self.work,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + SIM_READY_TIMEOUT
        while b"listening" not in log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"simulator did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        self.restarts += 1

    def stop(self, *, kill: bool) -> None:
        """SIGTERM (clean) or SIGKILL, and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
                self.kills += 1
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.kills += 1
                self.proc.wait()
        if self.log is not None:
            self.log.close()
        self.proc = None


# -- operations --------------------------------------------------------------------------------


@dataclass
class Op:
    """One cmdctl process the soak started."""

    kind: str
    argv: list[str]
    proc: subprocess.Popen[bytes]
    out: IO[bytes]
    err: IO[bytes]
    started: float
    kill_at: float | None  # SIGKILL at this monotonic time
    term_at: float | None = None  # SIGTERM at this monotonic time (`run`)
    killed: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stats:
    """What the soak did and saw."""

    ops: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    exit_codes: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)
    journal_errors: list[str] = field(default_factory=list)
    batches: dict[str, int] = field(default_factory=dict)  # reported by bulk: batch -> queued
    sent_ids: set[str] = field(default_factory=set)
    seen_ids: set[str] = field(default_factory=set)
    received: dict[str, int] = field(default_factory=dict)  # filled by `check`
    samples: dict[str, str] = field(default_factory=dict)  # first message per (kind, exit code)


class Chaos:
    """Chooses, starts, kills and reaps cmdctl processes."""

    def __init__(
        self, work: Path, fleet: Fleet, env: dict[str, str], rng: random.Random, kill_rate: float
    ) -> None:
        self.work = work
        self.fleet = fleet
        self.env = env
        self.rng = rng
        self.kill_rate = kill_rate
        self.stats = Stats()
        self.running: list[Op] = []
        self.counter = 0

    def token(self, prefix: str) -> str:
        """A value no other step of the soak uses (text entities take up to 16 characters)."""
        self.counter += 1
        return f"{prefix}{self.counter:06d}"

    # each returns (kind, argv, meta)

    def bulk(self) -> tuple[str, list[str], dict[str, Any]]:
        rng = self.rng
        steps: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 6)):
            pick = rng.random()
            if pick < 0.2:
                step: dict[str, Any] = {"switch.tv_power": rng.choice(["on", "off"])}
            elif pick < 0.35:
                step = {"select.input": rng.choice(["HDMI 1", "HDMI 2", "Cable"])}
            elif pick < 0.5:
                step = {"number.volume": rng.randint(0, 100)}
            elif pick < 0.6:
                step = {"button.identify": "press"}  # idempotent: false by default
            elif pick < 0.75:
                step = {
                    "action": UNIQUE_ACTION,
                    "idempotent": False,
                    "data": {"box": rng.randint(1, 9), "channel": self.token(TOKEN)},
                }
            elif pick < 0.87:
                step = {"text.channel": self.token(TOKEN), "idempotent": False}
            else:
                step = {"text.channel": self.token(ITOKEN)}
            steps.append({"name": f"step {self.token('')}", **step})
        playbook: dict[str, Any] = {
            "name": f"soak {self.counter}",
            "targets": rng.choice(
                [
                    "soak",
                    "odd",
                    "even",
                    "soak",
                    ",".join(rng.sample(self.fleet.names, rng.randint(1, len(self.fleet.names)))),
                ]
            ),
            "priority": rng.choice(["high", "normal", "normal", "low"]),
            "defaults": {"attempts": rng.randint(2, 6), "verify": rng.random() < 0.8},
            "steps": steps,
        }
        if rng.random() < 0.15:
            playbook["at"] = f"+{rng.randint(1, 90)}s"
        if rng.random() < 0.15:
            playbook["expires"] = f"+{rng.randint(5, 300)}s"
        path = self.work / "playbooks" / f"pb-{self.counter}.yml"
        path.write_text(json.dumps(playbook))  # JSON is YAML
        return "bulk", ["bulk", str(path), "--json", "-q"], {"playbook": str(path)}

    def send(self) -> tuple[str, list[str], dict[str, Any]]:
        rng = self.rng
        device = rng.choice(self.fleet.names)
        entity, value = rng.choice(
            [
                ("switch.tv_power", rng.choice(["on", "off"])),
                ("select.input", rng.choice(["HDMI 1", "HDMI 2", "Cable"])),
                ("number.volume", str(rng.randint(0, 100))),
                ("text.channel", self.token(ITOKEN)),
                ("button.identify", "press"),
            ]
        )
        mode = rng.choice([[], [], ["--queue"], ["--now"], ["--timeout", "1s"]])
        return "send", ["send", device, entity, value, *mode, "--json", "-q"], {}

    def cancel(self) -> tuple[str, list[str], dict[str, Any]]:
        rng = self.rng
        batches = list(self.stats.batches)
        if batches and rng.random() < 0.6:
            batch = rng.choice(batches[-10:])
            return (
                "cancel",
                ["queue", "cancel", "--batch", batch[: rng.choice([8, 26])], "--json"],
                {},
            )
        if self.stats.sent_ids and rng.random() < 0.5:
            entry = rng.choice(sorted(self.stats.sent_ids)[-20:])
            return "cancel", ["queue", "cancel", entry, "--json"], {}
        return "cancel", ["queue", "cancel", "--device", rng.choice(self.fleet.names), "--json"], {}

    def compact(self) -> tuple[str, list[str], dict[str, Any]]:
        keep = self.rng.choice(["0s", "0s", "1s", "10s", "1m"])
        return "compact", ["journal", "compact", "--keep", keep, "--json"], {}

    def drain(self) -> tuple[str, list[str], dict[str, Any]]:
        rng = self.rng
        extra = rng.choice(
            [
                [],
                [],
                ["--limit", rng.choice(["odd", "even"])],
                ["--concurrency", str(rng.randint(1, 4))],
            ]
        )
        if self.stats.batches and rng.random() < 0.15:
            extra = ["--batch", rng.choice(list(self.stats.batches))]
        return "drain", ["drain", "--max-time", f"{rng.randint(2, 30)}s", *extra, "--json"], {}

    def run(self) -> tuple[str, list[str], dict[str, Any]]:
        return "run", ["run", "-q"], {}

    def read_only(self) -> tuple[str, list[str], dict[str, Any]]:
        argv = self.rng.choice(
            [
                ["status", "--json"],
                ["queue", "ls", "--json"],
                ["history", "--json"],
                ["journal", "verify", "--json"],
            ]
        )
        return "read", argv, {}

    def start_one(self) -> None:
        """Start one random operation."""
        choice = self.rng.choices(
            [self.bulk, self.send, self.cancel, self.compact, self.drain, self.run, self.read_only],
            weights=[26, 20, 8, 8, 26, 4, 8],
        )[0]
        if choice == self.run and any(op.kind == "run" for op in self.running):
            choice = self.drain
        kind, argv, meta = choice()
        now = time.monotonic()
        kill_at = None
        term_at = None
        if kind == "run":
            life = self.rng.uniform(2, 25)
            if self.rng.random() < 0.5:
                kill_at = now + life
            else:
                term_at = now + life
        elif self.rng.random() < self.kill_rate:
            kill_at = now + self.rng.choice([self.rng.uniform(0.05, 0.6), self.rng.uniform(0.3, 4)])
        # Closed in `reap`: the process outlives this call.
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "cmdctl", *argv],
            cwd=self.work,
            env=self.env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        self.running.append(Op(kind, argv, proc, out, err, now, kill_at, term_at, meta=meta))
        self.stats.ops[kind] += 1

    def poll(self) -> None:
        """Kill the ones whose time has come; reap the finished ones."""
        now = time.monotonic()
        for op in list(self.running):
            if op.proc.poll() is None:
                if op.kill_at is not None and now >= op.kill_at:
                    op.proc.kill()
                    op.killed = True
                    self.stats.kills[op.kind] += 1
                elif op.term_at is not None and now >= op.term_at:
                    op.proc.terminate()
                    op.term_at = None
                    op.kill_at = now + 30.0  # a run that ignores SIGTERM is a finding
                elif now - op.started > OP_TIMEOUT:
                    op.proc.kill()
                    op.killed = True
                    self.stats.timeouts[op.kind] += 1
                    self.stats.crashes.append(
                        f"timeout after {OP_TIMEOUT:.0f}s: cmdctl {' '.join(op.argv)}"
                    )
                continue
            self.running.remove(op)
            self.reap(op)

    def reap(self, op: Op) -> None:
        op.proc.wait()
        op.out.seek(0)
        op.err.seek(0)
        out = op.out.read().decode(errors="replace")
        err = op.err.read().decode(errors="replace")
        op.out.close()
        op.err.close()
        code = op.proc.returncode
        if op.killed:
            return
        self.stats.exit_codes[f"{op.kind} {code}"] += 1
        line = f"cmdctl {' '.join(op.argv)} -> {code}: {(err or out).strip()[-1500:]}"
        if code not in (0,):
            self.stats.samples.setdefault(f"{op.kind} {code}", line[-400:])
        if "Traceback (most recent call last)" in err or code == INTERNAL_ERROR:
            self.stats.crashes.append(line)
        elif code == 3:
            self.stats.journal_errors.append(line)
        if op.kind == "bulk" and code == 0:
            report = json.loads(out)
            if report.get("queued"):
                self.stats.batches[report["batch"]] = int(report["queued"])
        elif op.kind == "send" and out.strip().startswith("{"):
            with contextlib.suppress(ValueError):
                entry_id = json.loads(out).get("id")
                if entry_id:
                    self.stats.sent_ids.add(entry_id)

    def stop_all(self, grace: float) -> None:
        """Let running operations finish for `grace` seconds (runs get SIGTERM), then SIGKILL."""
        deadline = time.monotonic() + grace
        for op in self.running:
            if op.kind == "run":
                op.proc.terminate()
                op.term_at = None
        while self.running and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.05)
        for op in self.running:
            op.proc.kill()
            op.killed = True
            self.stats.kills[op.kind] += 1
        for op in list(self.running):
            self.running.remove(op)
            self.reap(op)


def sample_ids(home: Path, seen: set[str]) -> None:
    """Ids of queued events committed to the journal now (read without the lock).

    Only committed lines count: a writer killed mid-append leaves an uncommitted group that the
    next writer quarantines, and those entries were never accepted.
    """
    with contextlib.suppress(FileNotFoundError):
        for line in scan_bytes((home / "journal.jsonl").read_bytes()).lines:
            if line.startswith(b'{"t":"queued","id":"'):
                seen.add(line[20:46].decode())


#: entry id -> times of its `started` events (filled by `fold_all`)
STARTS: dict[str, list[float]] = {}
#: entry id -> its event types in journal order (filled by `fold_all`)
TRAIL: dict[str, list[str]] = {}
_FINAL = frozenset({ev.DONE, ev.FAILED, ev.CANCELLED, ev.EXPIRED, ev.SUPERSEDED, ev.SKIPPED})
_AFTER_UNKNOWN = frozenset({ev.CANCELLED, ev.RETRIED, ev.REPRIORITISED})


def out_of_order(trail: list[str]) -> str | None:
    """`X after Y` when an event follows one that finished the entry (only a retry reopens it;
    an `unknown` entry waits for a person: cancel, retry or reprioritise)."""
    closed: str | None = None
    for t in trail:
        if t == ev.RETRIED:
            closed = None
        elif closed is not None and not (closed == ev.UNKNOWN and t in _AFTER_UNKNOWN):
            return f"{t} after {closed}"
        elif t in _FINAL or t == ev.UNKNOWN:
            closed = t
    return None


# -- final check -------------------------------------------------------------------------------


@dataclass
class Final:
    """The state after the soak, and the invariants it broke."""

    entries: dict[str, Entry]
    archive_only_states: dict[str, State]
    violations: list[str]
    notes: list[str]


def fold_all(home: Path) -> tuple[dict[str, Entry], dict[str, State], list[str]]:
    """Entries from archive + journal (archive first; duplicated archive lines once)."""
    problems: list[str] = []
    archive_events: list[ev.Event] = []
    seen_lines: set[str] = set()
    with contextlib.suppress(FileNotFoundError):
        for number, raw in enumerate(archive.read_all(home)[0], 1):
            try:
                event = ev.decode(raw)
            except ev.EventDecodeError as err:
                problems.append(f"archive line {number}: {err}")
                continue
            key = json.dumps([event.type, event.id, event.ts, event.fields], sort_keys=True)
            if key not in seen_lines:
                seen_lines.add(key)
                archive_events.append(event)
    scan = Journal(home).read()
    journal_events = [
        e
        for e in scan.events()
        if json.dumps([e.type, e.id, e.ts, e.fields], sort_keys=True) not in seen_lines
    ]
    entries: dict[str, Entry] = {}
    archive_only: dict[str, Entry] = {}
    for source, evs in (("archive", archive_events), ("journal", journal_events)):
        for event in evs:
            TRAIL.setdefault(event.id, []).append(event.type)
            if event.type == ev.STARTED:
                STARTS.setdefault(event.id, []).append(event.ts)
            if event.type == ev.QUEUED:
                if event.id in entries:
                    problems.append(f"{source}: second queued for {event.id}")
                    continue
                entries[event.id] = entry_from_queued(event)
                if source == "archive":
                    archive_only[event.id] = entries[event.id]
            elif event.id not in entries:
                problems.append(f"{source}: {event.type} for unknown id {event.id}")
            else:
                entries[event.id] = fold(entries[event.id], event)
                if source == "archive":
                    archive_only[event.id] = fold(archive_only[event.id], event)
    return entries, {k: e.state for k, e in archive_only.items()}, problems


def received_commands(record: Path) -> list[dict[str, Any]]:
    """Every command line of the simulator's record (a torn last line skipped)."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for raw in record.read_bytes().splitlines():
            if b'"t":"command"' in raw:
                with contextlib.suppress(ValueError):
                    out.append(json.loads(raw))
    return out


def token_of(entry: Entry) -> str | None:
    """The unique value of a soak step, if this entry has one."""
    args = entry.command.args
    if entry.command.domain == "action":
        value = (args.get("data") or {}).get("channel")
    elif entry.command.domain == "text":
        value = args.get("value")
    else:
        return None
    return value if isinstance(value, str) and value.startswith((TOKEN, ITOKEN)) else None


def ran_when_it_should_not(entry: Entry, received: float) -> bool:
    """An idempotent: false command reached its device, yet its entry says it should not have.

    Never started; or still pending (a started one must never be run again on its own); or
    received after the event that finished it. (Cancelling an `unknown` entry is a person's
    decision after it may have run, as `queue cancel` allows.)
    """
    starts = STARTS.get(entry.id, [])
    if not starts or min(starts) > received:
        return True
    if entry.state is State.PENDING:
        return True
    return (
        entry.state in _NOT_RUN and entry.finished_at is not None and received > entry.finished_at
    )


_NOT_RUN = frozenset({State.CANCELLED, State.EXPIRED, State.SUPERSEDED, State.SKIPPED})


def check(home: Path, record: Path, stats: Stats, now: float) -> Final:
    """Every invariant; `violations` lists each breach."""
    violations: list[str] = []
    notes: list[str] = []
    entries, archive_states, problems = fold_all(home)
    violations += [f"fold: {p}" for p in problems[:20]]
    by_batch: Counter[str] = Counter(e.batch for e in entries.values())
    for batch, queued in stats.batches.items():
        if by_batch[batch] != queued:
            violations.append(
                f"lost: bulk reported batch {batch} queued {queued}, "
                f"journal+archive hold {by_batch[batch]}"
            )
    for entry_id in sorted((stats.sent_ids | stats.seen_ids) - set(entries)):
        violations.append(f"lost: entry {entry_id} (seen during the run) is gone")
    disorder: Counter[str] = Counter()
    for e in entries.values():
        wrong = out_of_order(TRAIL.get(e.id, []))
        if wrong is not None:
            disorder[wrong] += 1
            if disorder[wrong] <= 3:
                violations.append(
                    f"{wrong}: {e.id} {e.device} {e.command.selector} "
                    f"(idempotent {e.idempotent}, events {' '.join(TRAIL[e.id])})"
                )
    if disorder:
        violations.append(f"events after an entry finished, by kind: {dict(disorder)}")
    for entry_id, state in archive_states.items():
        if not state.finished:
            violations.append(f"archived while live: {entry_id} is {state.value} in the archive")
    for e in entries.values():
        if e.state is State.RUNNING:
            violations.append(f"still running after the final drain: {e.id} ({e.device})")
        elif e.state is State.PENDING and e.not_before <= now:
            violations.append(
                f"due but pending after the final drain: {e.id} ({e.device}, "
                f"{e.command.selector}, not_before {e.not_before - now:+.0f}s)"
            )
        elif e.state is State.UNKNOWN and not e.reason:
            violations.append(f"unknown without a reason: {e.id}")
    # What the devices received.
    commands = received_commands(record)
    by_token: Counter[tuple[str, str]] = Counter()
    received_at: dict[tuple[str, str], float] = {}
    presses: Counter[str] = Counter()
    for c in commands:
        args = c.get("args") or {}
        value = (
            (args.get("data") or {}).get("channel")
            if c["kind"] == "action"
            else args.get("value")
            if c["kind"] == "text"
            else None
        )
        if isinstance(value, str) and value.startswith((TOKEN, ITOKEN)):
            by_token[(c["device"], value)] += 1
            received_at[(c["device"], value)] = float(c["ts"])
        if c["kind"] == "button":
            presses[c["device"]] += 1
    button_entries: Counter[str] = Counter()
    duplicates = 0
    checked = 0
    for e in entries.values():
        if e.command.domain == "button":
            button_entries[e.device] += 1
        token = token_of(e)
        if token is None:
            continue
        n = by_token[(e.device, token)]
        if not e.idempotent:
            checked += 1
            if n > 1:
                duplicates += 1
                violations.append(
                    f"idempotent: false ran {n} times: {e.id} {e.device} "
                    f"{e.command.selector}={token} ({e.state.value})"
                )
            if n and ran_when_it_should_not(e, received_at[(e.device, token)]):
                violations.append(
                    f"ran yet {e.state.value}: {e.id} {e.device} {e.command.selector}={token} "
                    f"(starts {STARTS.get(e.id, [])}, received {received_at[(e.device, token)]})"
                )
        if e.state is State.DONE and n == 0:
            violations.append(
                f"done but never received: {e.id} {e.device} "
                f"{e.command.selector}={token} (outcome {e.outcome})"
            )
    for device, n in presses.items():
        if n > button_entries[device]:
            violations.append(
                f"{device} got {n} button presses for {button_entries[device]} button entries"
            )
    notes.append(
        f"idempotent: false entries checked against the record: {checked}; ran twice: {duplicates}"
    )
    stats.received = {
        "commands_received": len(commands),
        "button_presses": sum(presses.values()),
        "button_entries": sum(button_entries.values()),
        "nonidempotent_checked": checked,
        "duplicates": duplicates,
    }
    return Final(entries, archive_states, violations, notes)


def why(entry: Entry, at: float) -> str:
    """A pending or unknown entry's reason, short enough to count."""
    if entry.state is State.UNKNOWN:
        return f"unknown: {(entry.reason or 'NO REASON')[:70]}"
    if entry.not_before <= at:
        return "pending: due (a violation)"
    if entry.last_error:
        error = entry.last_error.removeprefix(f"{entry.device}: ").split(" (")[0]
        return f"pending: retry backoff after {error[:60]}"
    return "pending: not yet due (scheduled with --at / at:)"


def status_disagreements(status: dict[str, Any], home: Path) -> list[str]:
    """`cmdctl status` (snapshot and all) must count what a plain fold of the journal counts."""
    entries: dict[str, Entry] = {}
    for event in Journal(home).read().events():
        if event.type == ev.QUEUED:
            entries.setdefault(event.id, entry_from_queued(event))
        elif event.id in entries:
            entries[event.id] = fold(entries[event.id], event)
    counts = dict(Counter(e.state.value for e in entries.values()))
    out = []
    if status.get("counts") != counts:
        out.append(f"status counts {status.get('counts')} but the journal folds to {counts}")
    if status.get("damaged_lines") or status.get("problems"):
        out.append(
            f"status reports damage: {status.get('damaged_lines')} lines, "
            f"problems {status.get('problems')}"
        )
    return out


# -- main --------------------------------------------------------------------------------------


def cmdctl(
    env: dict[str, str], work: Path, *argv: str, timeout: float = OP_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run one cmdctl command to completion."""
    return subprocess.run(
        [sys.executable, "-m", "cmdctl", *argv],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def final_drain(
    env: dict[str, str], work: Path, home: Path, settle: float
) -> tuple[list[str], float]:
    """Clean drains until nothing is due (waiting up to `settle` s for backoffs falling due).

    Returns the log and when the last drain started: everything due by then must be finished.
    """
    log = []
    deadline = time.monotonic() + settle
    while True:
        started = time.time()
        proc = cmdctl(env, work, "drain", "--json", timeout=300)
        log.append(f"drain -> {proc.returncode}")
        if proc.returncode not in (0, 1, 4, 6):
            log.append(proc.stderr.strip()[-1500:])
        if proc.returncode == 6:  # busy: nothing of ours runs now, so this is a finding
            if time.monotonic() > deadline + 60:
                return log, 0.0
            time.sleep(1)
            continue
        now = time.time()
        ledger = Journal(home).ledger()
        waiting = [e.not_before for e in ledger.entries() if e.state is State.PENDING]
        due_soon = [t for t in waiting if t <= now + max(0.0, deadline - time.monotonic())]
        if not due_soon:
            return log, started
        wait = max(0.5, min(due_soon) - now + 0.5)
        if time.monotonic() + wait > deadline:
            return log, started
        time.sleep(wait)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="30m", help="how long the chaos lasts (30m, 20s)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--parallel", type=int, default=3, help="cmdctl processes at once")
    parser.add_argument("--phase", default="60s", help="restart the simulator this often")
    parser.add_argument(
        "--kill-rate", type=float, default=0.25, help="share of operations killed with SIGKILL"
    )
    parser.add_argument("--settle", default="90s", help="final drains wait this long for backoffs")
    parser.add_argument("--json", type=Path, help="write the final counts here")
    args = parser.parse_args()
    duration = parse_duration(args.duration)
    phase = parse_duration(args.phase)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cmdctl-soak-")))
        else:
            work = args.workdir.resolve()
            work.mkdir(parents=True, exist_ok=True)
        return soak(work, rng, seed, duration, phase, parse_duration(args.settle), args)


def soak(
    work: Path,
    rng: random.Random,
    seed: int,
    duration: float,
    phase: float,
    settle: float,
    args: argparse.Namespace,
) -> int:
    (work / "playbooks").mkdir(exist_ok=True)
    home = work / "journal"
    fleet = write_inventory(work, args.devices, rng)
    env = {
        **os.environ,
        "CMDCTL_HOME": str(home),
        "CMDCTL_INVENTORY": str(work / "devices.yml"),
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    print(
        f"soak: seed {seed}, {args.devices} devices, {duration:.0f} s, workdir {work}", flush=True
    )
    sim = Simulator(work, fleet, env)
    chaos = Chaos(work, fleet, env, rng, args.kill_rate)
    began = time.monotonic()
    try:
        sim.start(rng)
        next_phase = began + phase * rng.uniform(0.5, 1.5)
        next_sample = began
        next_report = began + 60
        while time.monotonic() - began < duration:
            now = time.monotonic()
            if now >= next_phase:
                sim.stop(kill=rng.random() < 0.4)
                time.sleep(rng.choice([0.0, 0.0, rng.uniform(0.5, 5.0)]))  # all down for a while
                sim.start(rng)
                next_phase = time.monotonic() + phase * rng.uniform(0.5, 1.5)
            if now >= next_sample:
                sample_ids(home, chaos.stats.seen_ids)
                next_sample = now + SAMPLE_EVERY
            if now >= next_report:
                print(
                    f"  {now - began:5.0f}s: {sum(chaos.stats.ops.values())} operations, "
                    f"{sum(chaos.stats.kills.values())} kills, simulator phase {sim.phase}, "
                    f"{len(chaos.stats.seen_ids)} entries seen, "
                    f"{len(chaos.stats.crashes)} crashes/timeouts",
                    flush=True,
                )
                next_report = now + 60
            chaos.poll()
            while len(chaos.running) < args.parallel:
                chaos.start_one()
            time.sleep(0.05)
        chaos.stop_all(grace=30.0)
        sample_ids(home, chaos.stats.seen_ids)
        sim.stop(kill=False)
        sim.start(None)  # every device healthy
        drains, last_drain = final_drain(env, work, home, settle)
        verify = cmdctl(env, work, "journal", "verify", "--json")
        status = cmdctl(env, work, "status", "--json")
        final = check(home, work / "record.jsonl", chaos.stats, last_drain)
    finally:
        chaos.stop_all(grace=0.0)
        sim.stop(kill=False)
    stats = chaos.stats
    violations = list(final.violations)
    if verify.returncode != 0:
        violations.insert(0, f"journal verify exited {verify.returncode}: {verify.stdout[-1500:]}")
    if status.returncode != 0:
        violations.append(f"status exited {status.returncode}: {status.stderr[-500:]}")
    else:
        violations += status_disagreements(json.loads(status.stdout), home)
    violations += [f"crash: {c}" for c in stats.crashes]
    quarantine = (
        sorted(p.name for p in (home / QUARANTINE_DIR).glob("*"))
        if (home / QUARANTINE_DIR).is_dir()
        else []
    )
    states = Counter(e.state.value for e in final.entries.values())
    reasons = Counter(
        why(e, last_drain)
        for e in final.entries.values()
        if e.state in (State.PENDING, State.UNKNOWN)
    )
    extra = stats.received
    result = {
        "seed": seed,
        "duration_s": round(time.monotonic() - began, 1),
        "devices": args.devices,
        "operations": dict(stats.ops),
        "operations_total": sum(stats.ops.values()),
        "kills": dict(stats.kills),
        "kills_total": sum(stats.kills.values()),
        "simulator_restarts": sim.restarts,
        "simulator_kills": sim.kills,
        "device_faults_applied": dict(sim.faulty),
        "exit_codes": dict(sorted(stats.exit_codes.items())),
        "journal_errors": stats.journal_errors[:10],
        "exit_code_samples": stats.samples,
        "bulk_batches_reported": len(stats.batches),
        "entries": len(final.entries),
        "entries_by_state": dict(states),
        "pending_unknown_reasons": dict(reasons),
        "archived_entries": len(final.archive_only_states),
        "quarantined_files": len(quarantine),
        "final_drains": drains,
        **extra,
        "notes": final.notes,
        "violations": len(violations),
        "violation_list": violations[:50],
    }
    print(json.dumps(result, indent=2), flush=True)
    print(
        f"soak: {result['operations_total']} operations, {result['kills_total']} kills, "
        f"{sim.restarts} simulator starts ({sim.kills} killed), "
        f"{len(final.entries)} entries {dict(states)}, "
        f"{extra.get('commands_received', 0)} commands received, "
        f"{extra.get('duplicates', 0)} idempotent:false duplicates, "
        f"violations = {len(violations)}",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    (work / "soak-result.json").write_text(json.dumps(result, indent=2))
    return 1 if violations else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        sys.exit(main())
    sys.exit(130)
