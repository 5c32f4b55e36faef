"""`cmdctl serve`: a real server process on 127.0.0.1, real HTTP requests, a real browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import RunningFleet, Workspace, make_workspace, three_tvs

GOOD = "name: volumes\ntargets: tvs\nsteps:\n  - number.volume: 7\n"
BAD_INPUT = GOOD + "  - name: bad input\n    select.input: HDMI 9\n"


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    token: str
    ws: Workspace
    log: list[str]

    def call(
        self,
        path: str,
        *,
        method: str = "GET",
        body: bytes | None = None,
        token: str | None = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        tok = self.token if token == "" else token
        if tok is not None:
            req.add_header("Authorization", f"Bearer {tok}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as err:
            raw, status = err.read(), err.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode()


def start(ws: Workspace, *args: str) -> Served:
    proc = ws.popen("serve", "--bind", "127.0.0.1:0", *args)
    assert proc.stderr is not None
    log: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        log.append(line)
        m = re.search(r"serving on (http://127\.0\.0\.1:\d+)/", line)
        if m:
            token = (ws.journal / "serve-token").read_text().strip()
            return Served(proc, m.group(1), token, ws, log)
    proc.kill()
    raise AssertionError("server did not start: " + "".join(log) + proc.stderr.read())


def stop(s: Served) -> str:
    s.proc.terminate()
    out, err = s.proc.communicate(timeout=10)
    return "".join(s.log) + out + err


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Three encrypted venue TVs and a workspace pointing at them."""
    with three_tvs(tmp_path) as running:
        yield running


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ws = make_workspace(tmp_path)
    s = start(ws)
    try:
        yield s
    finally:
        output = stop(s)
        assert s.token not in output  # the token never reaches the log
        assert "Traceback" not in output


def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_token_file_is_0600_and_only_its_path_is_printed(served: Served) -> None:
    path = served.ws.journal / "serve-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert any(str(path) in line for line in served.log)


def test_health_needs_no_token_and_everything_else_does(served: Served) -> None:
    assert served.call("/healthz", token=None) == (200, {"ok": True})
    for path in ("/api/status", "/api/entries", "/api/devices", "/api/events"):
        status, body = served.call(path, token=None)
        assert status == 401, path
        assert "bearer token" in body["error"]
        assert served.call(path, token="wrong-token-000000")[0] == 401
    assert served.call("/api/send", method="POST", body=b"{}", token=None)[0] == 401


def test_routes(served: Served) -> None:
    status, body = served.call("/api/bulk", method="POST", body=GOOD.encode())
    assert status == 201, body
    assert body["queued"] == 10 and body["playbook"] == "volumes"
    batch = body["batch"]
    status, st = served.call("/api/status")
    assert status == 200 and st["counts"]["pending"] == 10
    assert [b["batch"] for b in st["batches"]] == [batch]
    status, batches = served.call("/api/batches")
    assert batches == st["batches"]
    status, one = served.call(f"/api/batches/{batch}")
    assert status == 200 and len(one["devices"]) == 10
    assert one["devices"][0]["entries"][0]["state"] == "pending"
    assert served.call("/api/batches/ZZZZ")[0] == 404
    status, rows = served.call("/api/entries?device=tv-3")
    assert status == 200 and [r["device"] for r in rows] == ["tv-3"]
    assert len(served.call("/api/entries?limit=4")[1]) == 4
    assert served.call("/api/entries?state=failed")[1] == []
    status, err = served.call("/api/entries?state=nonsense")
    assert status == 400 and "unknown state" in err["error"]
    entry_id = rows[0]["id"]
    status, shown = served.call(f"/api/entries/{entry_id}")
    assert status == 200 and shown["events"][0]["type"] == "queued"
    assert served.call("/api/entries/NOPE")[0] == 404
    # the CLI sees the same journal, in the same shapes
    cli = json.loads(served.ws.run("queue", "show", entry_id, "--json").stdout)
    assert cli == shown
    status, changed = served.call(
        f"/api/entries/{entry_id}/priority", method="POST", body=b'{"priority": "high"}'
    )
    assert status == 201 and changed == {"set_to_high": [entry_id], "refused": []}
    status, changed = served.call(f"/api/entries/{entry_id}/cancel", method="POST")
    assert status == 201 and changed["cancelled"] == [entry_id]
    status, again = served.call(f"/api/entries/{entry_id}/cancel", method="POST")
    assert status == 409 and again["refused"][0]["id"] == entry_id
    status, changed = served.call(f"/api/entries/{entry_id}/retry", method="POST")
    assert status == 201 and changed["requeued"] == [entry_id]
    status, sent = served.call(
        "/api/send",
        method="POST",
        body=b'{"device": "tv-2", "entity": "switch.power", "value": "on"}'
    )
    assert status == 201 and sent["status"] == "queued" and sent["device"] == "tv-2"
    status, err = served.call(
        "/api/send", method="POST", body=b'{"device": "tv-99", "entity": "switch.power"}'
    )
    assert status == 400 and "tv-99" in err["error"]
    status, cancelled = served.call(f"/api/batches/{batch}/cancel", method="POST")
    assert status == 201 and len(cancelled["cancelled"]) == 10
    status, devices = served.call("/api/devices")
    assert status == 200 and len(devices) == 10 and devices[0]["encrypted"] is True
    assert "key" not in json.dumps(devices).replace('"encrypted"', "")
    status, hist = served.call("/api/history")
    assert status == 200 and len(hist) == 10  # the cancelled ones
    assert served.call("/api/nothing")[0] == 404
    assert served.call("/api/send")[0] == 405


def test_bulk_with_a_bad_playbook_answers_400_with_line_and_column(served: Served) -> None:
    bad = "name: x\ntargets: tvs\nsteps:\n  - number.volume: 7\n    bogus: 1\n"
    status, body = served.call("/api/bulk", method="POST", body=bad.encode())
    assert status == 400, body
    assert body["line"] == 5 and body["column"] == 5, body
    cli = served.ws.playbook("bad.yml", bad)
    result = served.ws.run("validate", str(cli))
    assert result.returncode == 2 and f"{cli}:5:5" in result.stderr  # the same place as the CLI
    status, body = served.call("/api/bulk", method="POST", body=b"steps: [")
    assert status == 400 and body["line"] >= 1
    assert served.call("/api/status")[1]["total"] == 0  # nothing queued


def test_body_size_host_and_origin_are_checked(served: Served) -> None:
    # Refused on the declared length, before any of the body is read (a client still sending
    # a large body may see the connection close instead of the answer: hence only the head).
    host, port_text = served.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port_text)), timeout=10) as conn:
        conn.sendall(
            f"POST /api/bulk HTTP/1.1\r\nHost: {host}:{port_text}\r\n"
            f"Authorization: Bearer {served.token}\r\nContent-Length: {2 << 20}\r\n\r\n".encode()
        )
        answer = conn.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    status, body = served.call("/api/status", headers={"Host": "evil.example:80"})
    assert status == 421 and "Host" in body["error"]
    port = served.url.rsplit(":", 1)[1]
    assert served.call("/api/status", headers={"Host": f"localhost:{port}"})[0] == 200
    status, body = served.call(
        "/api/bulk", method="POST", body=GOOD.encode(),
        headers={"Origin": "http://evil.example"},
    )
    assert status == 403 and "cross-origin" in body["error"]
    ok = served.call(
        "/api/bulk", method="POST", body=GOOD.encode(), headers={"Origin": served.url}
    )
    assert ok[0] == 201


def test_sse_delivers_an_event_appended_by_another_process(served: Served) -> None:
    req = urllib.request.Request(served.url + "/api/events")
    req.add_header("Authorization", f"Bearer {served.token}")
    with urllib.request.urlopen(req, timeout=15) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert stream.readline().startswith(b": cmdctl events")
        result = served.ws.run("send", "--queue", "tv-4", "switch.power", "on", "--json")
        assert result.returncode == 0, result.stderr
        sent = json.loads(result.stdout)
        while True:
            line = stream.readline()
            if line.startswith(b"data: "):
                event = json.loads(line[6:])
                break
        assert event["id"] == sent["id"] and event["type"] == "queued"
        assert event["device"] == "tv-4"


def test_bulk_is_checked_against_the_entity_cache_as_the_cli_does(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    _, ws = sim
    assert ws.run("devices", "probe").returncode == 0  # caches each TV's entity list
    s = start(ws)
    try:
        status, body = s.call("/api/bulk", method="POST", body=BAD_INPUT.encode())
        assert status == 400, body
        assert (body["line"], body["column"]) == (6, 19) and "HDMI 9" in body["error"]
        cli = ws.run("bulk", str(ws.playbook("bad.yml", BAD_INPUT)))
        assert cli.returncode == 2 and f"bad.yml:6:19: {body['error']}" in cli.stderr
        status, body = s.call(
            "/api/send", method="POST",
            body=b'{"device": "bar-tv-1", "entity": "select.input", "value": "HDMI 9"}',
        )
        assert status == 400 and "HDMI 9" in body["error"]
        assert s.call("/api/status")[1]["total"] == 0
    finally:
        assert s.token not in stop(s)


def test_bulk_then_a_drain_shows_in_status(sim: tuple[RunningFleet, Workspace]) -> None:
    _, ws = sim
    s = start(ws, "--run")
    try:
        status, body = s.call("/api/bulk", method="POST", body=BAD_INPUT.encode())
        assert status == 201, body

        def finished() -> Any:
            st = s.call(f"/api/status?batch={body['batch']}")[1]
            b = st["batches"][0]
            return st if b["finished"] == b["total"] else None

        st = wait_for(finished)
        assert st["counts"].get("done") == 3 and st["counts"].get("failed") == 3
        failed = s.call("/api/entries?state=failed")[1]
        assert len(failed) == 3 and failed[0]["last_error"]
    finally:
        assert s.token not in stop(s)


def test_a_bad_bind_is_an_input_error(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    result = ws.run("serve", "--bind", "nonsense")
    assert result.returncode == 2 and "--bind: expected HOST:PORT" in result.stderr


# -- the page in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Headless chromium driven over the DevTools pipe (fds 3 and 4): no websocket needed."""

    def __init__(self, profile: Path) -> None:
        assert CHROMIUM is not None
        self._to_r, self._to_w = os.pipe()
        self._from_r, self._from_w = os.pipe()
        # The pipe protocol reads fd 3, writes fd 4: bash (dash refuses fds over 9) puts ours there.
        redirect = f'exec "$@" 3<&{self._to_r} 4>&{self._from_w}'
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", redirect, "chromium", CHROMIUM, "--headless", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(self._to_r, self._from_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(self._to_r)
        os.close(self._from_w)
        self._buf = b""
        self._next = 0
        self.session = ""

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> Any:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._from_r, 1 << 16)
                if not chunk:
                    raise AssertionError("chromium went away")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise AssertionError(reply["error"])
                return reply["result"]

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )["sessionId"]

    def text(self, expression: str) -> Any:
        return self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}
        )["result"].get("value")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._to_w)
        os.close(self._from_r)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_page_updates_live_while_a_drain_runs_and_retry_works(
    sim: tuple[RunningFleet, Workspace], tmp_path: Path
) -> None:
    _, ws = sim
    s = start(ws)
    browser = Browser(tmp_path / "profile")
    try:
        status, _body = s.call("/api/bulk", method="POST", body=BAD_INPUT.encode())
        assert status == 201
        browser.open(f"{s.url}/#token={s.token}")
        progress = "document.querySelector('.batch .progress')?.textContent"
        assert wait_for(lambda: browser.text(progress)) == "0 done, 0 failed, 0/6 finished"
        assert browser.text("location.hash") == ""  # the token left the address bar
        assert wait_for(lambda: browser.text("document.getElementById('state').textContent")
                        == "live")
        loads = browser.text("performance.getEntriesByType('navigation').length")
        drain = ws.run("drain")
        assert drain.returncode == 1, drain.stderr  # the bad input failed on each TV
        assert wait_for(lambda: browser.text(progress) == "3 done, 3 failed, 6/6 finished")
        failures = "document.querySelectorAll('.failure').length"
        assert wait_for(lambda: browser.text(failures) == 3)
        device = "document.querySelector('.device .last').textContent"
        assert "failed" in browser.text(device)
        assert browser.text("performance.getEntriesByType('navigation').length") == loads
        browser.text("document.querySelector('.failure .retry').click()")
        assert wait_for(lambda: browser.text(failures) == 2)
        pending = s.call("/api/entries?state=pending")[1]
        assert len(pending) == 1 and pending[0]["selector"] == "select.input"
    finally:
        browser.close()
        assert s.token not in stop(s)


def test_cancel_of_an_entry_running_now_answers_409_running_now(served: Served) -> None:
    """An entry a live process is sending cannot be called back: 409 with the reason."""
    from cmdctl.core.model import Command
    from cmdctl.drain import direct, recovery
    from cmdctl.journal import events as ev
    from cmdctl.journal.store import Journal

    entry = direct.send_entry("tv-1", Command("number", "volume", {"value": 3.0}), who="t@h",
                              idempotent=True)
    owner = recovery.me("LIVE", recovery.SEND, time.time() + 600)  # this process: alive
    Journal(served.ws.journal).append(
        [ev.queued(entry), recovery.started(entry, time.time(), owner)]
    )
    status, body = served.call(f"/api/entries/{entry.id}/cancel", method="POST")
    assert status == 409, body
    assert body["refused"][0]["id"] == entry.id
    assert "running now" in json.dumps(body)


def _files_holding(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_secret_arguments_are_checked_and_only_their_names_are_stored(served: Served) -> None:
    """`!secret NAME` over HTTP: checked against secrets.yaml, stored by name, shown as ***."""
    pin = "48271937"
    (served.ws.inventory.parent / "secrets.yaml").write_text(f"door_pin: '{pin}'\n")

    def send(value: str) -> tuple[int, Any]:
        body = {"device": "tv-2", "entity": "text.note", "value": value}
        return served.call("/api/send", method="POST", body=json.dumps(body).encode())

    status, err = send("!secret no_such_pin")
    assert status == 400 and "'no_such_pin' is not in" in err["error"], err
    playbook = "name: pins\ntargets: tvs\nsteps:\n  - text.note: !secret {}\n"
    status, err = served.call(
        "/api/bulk", method="POST", body=playbook.format("no_such_pin").encode()
    )
    assert status == 400 and (err["line"], err["column"]) == (4, 16), err
    assert served.call("/api/status")[1]["total"] == 0  # nothing queued

    status, sent = send("!secret door_pin")
    assert status == 201, sent
    status, queued = served.call(
        "/api/bulk", method="POST", body=playbook.format("door_pin").encode()
    )
    assert status == 201 and queued["queued"] == 10, queued
    status, shown = served.call(f"/api/entries/{sent['id']}")
    assert status == 200 and pin not in json.dumps(shown)
    assert shown["events"][0]["command"]["args"] == {"value": {"!secret": "door_pin"}}
    rows = served.call("/api/entries?limit=20")[1]
    assert len(rows) == 11 and pin not in json.dumps(rows)
    assert _files_holding(served.ws.journal, pin) == []


def test_serve_run_sends_the_secret_it_looked_up_and_keeps_it_out_of_everything(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    running, ws = sim
    channel = "Ch 8241937"
    secrets = running.inventory.parent / "secrets.yaml"  # holds the TVs' keys already
    secrets.write_text(secrets.read_text() + f"channel: '{channel}'\n")
    playbook = "name: secret channel\ntargets: all\nsteps:\n  - text.channel: !secret channel\n"
    s = start(ws, "--run")
    try:
        status, body = s.call("/api/bulk", method="POST", body=playbook.encode())
        assert status == 201, body

        def finished() -> Any:
            st = s.call(f"/api/status?batch={body['batch']}")[1]
            b = st["batches"][0]
            return st if b["finished"] == b["total"] else None

        st = wait_for(finished)
        entries = s.call("/api/entries?state=failed")[1] + s.call("/api/entries?state=done")[1]
        assert st["counts"] == {"done": 3}, [e.get("last_error") for e in entries]
    finally:
        output = stop(s)
    devices = [running.fleet.device(f"bar-tv-{i}") for i in (1, 2, 3)]
    assert [d.state_of("text.channel") for d in devices] == [channel] * 3
    assert channel not in output and channel not in json.dumps(entries)
    assert _files_holding(ws.journal, channel) == []


def test_history_reads_the_archive_when_asked(served: Served) -> None:
    status, body = served.call("/api/bulk", method="POST", body=GOOD.encode())
    assert status == 201, body
    assert served.call(f"/api/batches/{body['batch']}/cancel", method="POST")[0] == 201
    compacted = served.ws.run("journal", "compact", "--keep", "0s")
    assert compacted.returncode == 0, compacted.stderr
    assert served.call("/api/history") == (200, [])  # all of it is in the archive now
    status, rows = served.call("/api/history?archive=1&limit=4")
    assert status == 200 and len(rows) == 4 and {r["state"] for r in rows} == {"cancelled"}
    status, rows = served.call("/api/history?archive=1&device=tv-3")
    assert status == 200 and [r["device"] for r in rows] == ["tv-3"]
    cli = json.loads(served.ws.run("history", "--archive", "--json").stdout)
    assert served.call("/api/history?archive=true")[1] == cli
    status, err = served.call("/api/history?archive=maybe")
    assert status == 400 and "archive must be 1 or 0" in err["error"]


def test_send_takes_at_expires_and_attempts_as_the_cli_does(served: Served) -> None:
    def send(**extra: Any) -> tuple[int, Any]:
        body = {"device": "tv-2", "entity": "number.volume", "value": "20", **extra}
        return served.call("/api/send", method="POST", body=json.dumps(body).encode())

    status, sent = send(at="+2h", expires="+30m", attempts=2)
    assert status == 201, sent
    shown = served.call(f"/api/entries/{sent['id']}")[1]
    queued = shown["events"][0]
    assert queued["max_attempts"] == 2
    assert 7190 < queued["not_before"] - queued["created"] <= 7200
    assert queued["expires"] - queued["not_before"] == pytest.approx(1800)
    cli = served.ws.run(
        "send", "tv-2", "number.volume", "20", "--queue", "--json",
        "--at", "+2h", "--expires", "+30m", "--attempts", "2",
    )
    assert cli.returncode == 0, cli.stderr
    cli_queued = json.loads(served.ws.run("queue", "show", json.loads(cli.stdout)["id"],
                                          "--json").stdout)["events"][0]
    assert cli_queued["max_attempts"] == 2 and cli_queued["expires"] - cli_queued["not_before"] == (
        pytest.approx(1800)
    )

    total = served.call("/api/status")[1]["total"]
    for extra, words in (
        ({"at": "2020-01-01T10:00"}, "at: time '2020-01-01T10:00' is in the past"),
        ({"expires": "+0s"}, "expires +0s is not after the start time"),
        ({"attempts": 0}, "attempts must be 1 to"),
        ({"attempts": "3"}, "'attempts' must be a whole number, got \"3\""),
        ({"at": 5}, "'at' must be a string, got 5"),
    ):
        status, err = send(**extra)
        assert status == 400 and words in err["error"], (extra, err)
    assert served.call("/api/status")[1]["total"] == total  # nothing queued


def test_bulk_takes_variables_as_bulk_var_does(served: Served) -> None:
    playbook = b"name: volumes\ntargets: tvs\nsteps:\n  - number.volume: ${volume}\n"
    status, err = served.call("/api/bulk", method="POST", body=playbook)
    assert status == 400 and "${volume} is not set for tv-1" in err["error"], err
    assert "--var" not in err["error"]
    status, body = served.call("/api/bulk?var=volume=35", method="POST", body=playbook)
    assert status == 201 and body["queued"] == 10, body
    rows = served.call("/api/entries?limit=20")[1]
    values = {served.call(f"/api/entries/{r['id']}")[1]["events"][0]["command"]["args"]["value"]
              for r in rows}
    assert values == {35.0}
    status, err = served.call("/api/bulk?var=volume", method="POST", body=playbook)
    assert status == 400 and err["error"] == "var 'volume' is not name=value", err
