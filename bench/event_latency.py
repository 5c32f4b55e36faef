"""Event latency: an event appended by one process reaches an SSE client of `cmdctl serve` and an
`cmdctl events --follow` reader.

One process appends `--events` `queued` events, one append each, `--gap` apart; a `cmdctl serve`
process streams them on /api/events to an HTTP client in this process, and a `cmdctl events
--follow --json` process prints them on a pipe. The latency of each event is the time from just
before its append to its line arriving, for each reader.

Target: median and p95 under 200 ms for both.

    python bench/event_latency.py [--events 1000] [--gap 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal

TARGET_S = 0.200


def entry(n: int) -> Entry:
    now = time.time()
    ident = new_id()
    return Entry(
        id=ident, batch=ident, device="tv-1", command=Command("number", "volume", {"value": n}),
        priority=Priority.NORMAL, created=now, not_before=now + 3600, expires=None,
        idempotent=True, verify=True, max_attempts=3, who="bench@localhost", origin="send",
        step="",
    )


def read_lines(stream: object, seen: dict[str, float], prefix: str) -> None:
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.decode() if isinstance(raw, bytes) else raw
        if not line.startswith(prefix):
            continue
        try:
            data = json.loads(line[len(prefix):])
        except ValueError:
            continue
        if data.get("type") == "queued":
            seen.setdefault(data["id"], time.time())


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "state"
        journal = Journal(home)
        journal.append([ev.queued(entry(-1))])  # the journal exists before the readers start
        env = dict(os.environ, CMDCTL_HOME=str(home), NO_COLOR="1")
        cmd = [sys.executable, "-m", "cmdctl"]
        server = subprocess.Popen([*cmd, "serve", "--bind", "127.0.0.1:0"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        follower = subprocess.Popen([*cmd, "events", "--follow", "--json"], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            url = None
            assert server.stdout is not None
            for line in server.stdout:
                found = re.search(r"serving on (http://\S+?)/? ", line + " ")
                if found:
                    url = found.group(1).rstrip("/")
                    break
            if url is None:
                raise SystemExit("cmdctl serve did not start")
            token = (home / "serve-token").read_text().strip()
            request = urllib.request.Request(f"{url}/api/events")
            request.add_header("Authorization", f"Bearer {token}")
            stream = urllib.request.urlopen(request, timeout=60)
            sse: dict[str, float] = {}
            follow: dict[str, float] = {}
            threads = [
                threading.Thread(target=read_lines, args=(stream, sse, "data: "), daemon=True),
                threading.Thread(target=read_lines, args=(follower.stdout, follow, ""),
                                 daemon=True),
            ]
            for t in threads:
                t.start()
            time.sleep(1.0)  # both readers are following
            sent: dict[str, float] = {}
            for n in range(args.events):
                item = entry(n)
                sent[item.id] = time.time()
                journal.append([ev.queued(item)])
                time.sleep(args.gap)
            deadline = time.time() + 10
            while time.time() < deadline and (len(sse) < len(sent) or len(follow) < len(sent)):
                time.sleep(0.05)
        finally:
            server.terminate()
            follower.terminate()
            server.wait(10)
            follower.wait(10)
    print(f"{args.events} events, one append each, {args.gap * 1000:.0f} ms apart")
    ok = True
    for name, seen in (("SSE client (cmdctl serve)", sse), ("cmdctl events --follow", follow)):
        lat = [seen[i] - t for i, t in sent.items() if i in seen]
        missing = len(sent) - len(lat)
        median, p95 = quantiles(lat) if lat else (float("nan"), float("nan"))
        ok = ok and not missing and p95 < TARGET_S
        print(f"  {name:27s} median {median * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"
              f"  missing {missing}  (target < {TARGET_S * 1000:.0f} ms)")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
