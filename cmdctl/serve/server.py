"""A small HTTP/1.1 server on asyncio streams: routing, the token, Host/Origin checks, SSE.

One request per connection (`Connection: close`): the API is small and the event stream is one
long response. Standard library only: the routes are few and the parsing is kept strict.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cmdctl.core.errors import CmdctlError, InputError
from cmdctl.journal.feed import Feed
from cmdctl.serve import token as tokens
from cmdctl.serve.ops import Conflict, NotFound, Ops

#: Largest request body (a playbook of a few thousand steps fits).
MAX_BODY = 1 << 20
#: Largest request line plus headers.
MAX_HEAD = 16 << 10
#: A client that has not sent its request within this is dropped (slowloris).
READ_TIMEOUT_S = 10.0
#: An idle event stream gets a comment this often, so proxies and the page see it is alive.
KEEPALIVE_S = 15.0
#: How often the event stream looks at the journal (as `events --follow`).
FEED_POLL_S = 0.05

_STATUS = {
    200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
    411: "Length Required", 413: "Content Too Large", 421: "Misdirected Request",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
}
_SECURITY_HEADERS = (
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Frame-Options: DENY\r\n"
    "Cache-Control: no-store\r\n"
)
_PAGE_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


class HttpError(Exception):
    """An answer other than 200: status and a JSON body."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **extra}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Awaitable[Any]]


class Server:
    """The API, the event stream and the page over `ops`, checked against `token` and `hosts`."""

    def __init__(
        self,
        ops: Ops,
        token: str,
        hosts: set[str],
        log: Callable[[str], None],
    ) -> None:
        self.ops = ops
        self.token = token
        self.hosts = {h.lower() for h in hosts}
        self.log = log
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        r = self._route
        r("GET", r"/api/status", self._status)
        r("GET", r"/api/batches", self._batches)
        r("GET", r"/api/batches/(?P<id>[^/]+)", self._batch)
        r("POST", r"/api/batches/(?P<id>[^/]+)/cancel", self._batch_cancel)
        r("POST", r"/api/batches/(?P<id>[^/]+)/retry", self._batch_retry)
        r("GET", r"/api/entries", self._entries)
        r("GET", r"/api/entries/(?P<id>[^/]+)", self._entry)
        r("POST", r"/api/entries/(?P<id>[^/]+)/cancel", self._cancel)
        r("POST", r"/api/entries/(?P<id>[^/]+)/retry", self._retry)
        r("POST", r"/api/entries/(?P<id>[^/]+)/priority", self._priority)
        r("GET", r"/api/history", self._history)
        r("GET", r"/api/devices", self._devices)
        r("POST", r"/api/send", self._send)
        r("POST", r"/api/bulk", self._bulk)

    def _route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"\Z"), handler))

    # -- connections -------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection: one request, one response."""
        try:
            try:
                req = await asyncio.wait_for(_read_request(reader), READ_TIMEOUT_S)
                self._check(req)
                if req.method == "GET" and req.path == "/api/events":
                    await self._events(req, writer)
                    return
                status, ctype, body, extra = await self._dispatch(req)
            except HttpError as err:
                status, ctype, body, extra = err.status, "application/json", _json(err.body), ""
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception as err:  # never a traceback in a response
                self.log(f"internal error: {type(err).__name__}: {err}")
                status, ctype = 500, "application/json"
                body, extra = _json({"error": "internal error (see the server's log)"}), ""
            writer.write(_head(status, ctype, len(body), extra) + body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # the server is stopping: this connection ends with it (asyncio logs otherwise)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _check(self, req: Request) -> None:
        host = req.headers.get("host", "").lower()
        if host not in self.hosts:  # DNS rebinding: a page from evil.example on our address
            raise HttpError(421, "unexpected Host header", hint="add it with --allow-host")
        origin = req.headers.get("origin")
        if req.method != "GET" and origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                raise HttpError(403, "cross-origin request refused")
        if req.path in ("/healthz", "/", "/index.html"):
            return  # the page is static: it holds no data and no token
        auth = req.headers.get("authorization", "")
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not tokens.matches(given.strip(), self.token):
            raise HttpError(401, "a bearer token is needed (Authorization: Bearer TOKEN)")

    async def _dispatch(self, req: Request) -> tuple[int, str, bytes, str]:
        if req.path == "/healthz" and req.method == "GET":
            return 200, "application/json", _json({"ok": True}), ""
        if req.path in ("/", "/index.html") and req.method == "GET":
            page = resources.files("cmdctl.serve").joinpath("page.html").read_bytes()
            csp = f"Content-Security-Policy: {_PAGE_CSP}\r\n"
            return 200, "text/html; charset=utf-8", page, csp
        allowed = []
        for method, pattern, handler in self._routes:
            m = pattern.match(req.path)
            if m is None:
                continue
            allowed.append(method)
            if method == req.method:
                req.params = m.groupdict()
                try:
                    result = await handler(req)
                except NotFound as err:
                    raise HttpError(404, str(err)) from None
                except Conflict as err:
                    raise HttpError(409, "nothing changed", **err.body) from None
                except InputError as err:
                    raise HttpError(400, err.message, **_where(err)) from None
                except CmdctlError as err:
                    raise HttpError(503, err.message) from None
                code = 201 if req.method == "POST" else 200
                return code, "application/json", _json(result), ""
        if allowed:
            raise HttpError(405, f"{req.method} is not allowed here", allow=allowed)
        raise HttpError(404, f"no route {req.path}")

    # -- the routes --------------------------------------------------------------------------

    async def _status(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.status, req.query.get("batch"))

    async def _batches(self, req: Request) -> Any:
        return (await asyncio.to_thread(self.ops.status))["batches"]

    async def _batch(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.batch, req.params["id"])

    async def _batch_cancel(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.cancel, None, req.params["id"])

    async def _batch_retry(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.retry, None, req.params["id"])

    async def _entries(self, req: Request) -> Any:
        q = req.query
        return await asyncio.to_thread(
            lambda: self.ops.entries(
                state=q.get("state"), device=q.get("device"), batch=q.get("batch"),
                limit=_int(q, "limit", 200),
            )
        )

    async def _entry(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.entry, req.params["id"])

    async def _cancel(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.cancel, req.params["id"], None)

    async def _retry(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.retry, req.params["id"], None)

    async def _priority(self, req: Request) -> Any:
        level = _field(_json_body(req), "priority")
        return await asyncio.to_thread(self.ops.priority, req.params["id"], level)

    async def _history(self, req: Request) -> Any:
        q = req.query
        since = None
        if "since" in q:
            from cmdctl.core.timespec import parse_duration

            since = parse_duration(q["since"])
        return await asyncio.to_thread(
            lambda: self.ops.history(device=q.get("device"), since=since,
                                     limit=_int(q, "limit", 50))
        )

    async def _devices(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.devices)

    async def _send(self, req: Request) -> Any:
        data = _json_body(req)
        value = data.get("value")
        if value is not None and not isinstance(value, str):
            value = json.dumps(value)
        device, entity = _field(data, "device"), _field(data, "entity")
        return await asyncio.to_thread(self.ops.send, device, entity, value)

    async def _bulk(self, req: Request) -> Any:
        q = req.query
        return await asyncio.to_thread(
            lambda: self.ops.bulk(
                req.body, limit=q.get("limit"), priority=q.get("priority"), at=q.get("at")
            )
        )

    async def _events(self, req: Request, writer: asyncio.StreamWriter) -> None:
        """Server-Sent Events: each journal event as `data: {events --json line}`."""
        since = req.query.get("since")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
            + _SECURITY_HEADERS.encode() + b"X-Accel-Buffering: no\r\n\r\n: cmdctl events\n\n"
        )
        await writer.drain()
        with Feed(self.ops.journal.directory) as feed:
            backlog = await asyncio.to_thread(feed.poll)  # the history: only what `since` asks
            cutoff = float(since) if since is not None and _is_number(since) else None
            pending = [i for i in backlog if cutoff is not None and i.event.ts >= cutoff]
            idle = 0.0
            while True:
                for item in pending:
                    data = json.dumps(item.as_json(), ensure_ascii=False, separators=(",", ":"))
                    writer.write(f"event: journal\ndata: {data}\n\n".encode())
                if pending:
                    idle = 0.0
                    await writer.drain()
                elif idle >= KEEPALIVE_S:
                    idle = 0.0
                    writer.write(b": keepalive\n\n")
                    await writer.drain()
                if writer.is_closing():
                    return
                await asyncio.sleep(FEED_POLL_S)
                idle += FEED_POLL_S
                pending = await asyncio.to_thread(feed.poll)


async def _read_request(reader: asyncio.StreamReader) -> Request:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    if len(head) > MAX_HEAD:
        raise HttpError(431, "request head too large")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "malformed request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "malformed header")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(411, "send a Content-Length, not a chunked body")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        raise HttpError(400, "bad Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise HttpError(413, f"body larger than {MAX_BODY:,} bytes")
    body = await reader.readexactly(length) if length else b""
    url = urlsplit(target)
    query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
    return Request(method, url.path, query, headers, body)


def _head(status: int, ctype: str, length: int, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status} {_STATUS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n{_SECURITY_HEADERS}{extra}\r\n"
    ).encode()


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _json_body(req: Request) -> dict[str, Any]:
    try:
        data = json.loads(req.body or b"{}")
    except (ValueError, UnicodeDecodeError) as err:
        raise HttpError(400, f"the body is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the body must be a JSON object")
    return data


def _field(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise HttpError(400, f"the body needs {key!r} (a string)")
    return value


def _int(query: dict[str, str], key: str, default: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    if not text.isdigit():
        raise HttpError(400, f"{key} must be a whole number, got {text!r}")
    return int(text)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _where(err: InputError) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if err.hint:
        out["hint"] = err.hint
    if err.line is not None:
        out["line"] = err.line
        out["column"] = err.column
    return out


async def serve(
    server: Server, host: str, port: int, on_ready: Callable[[str, int], None]
) -> None:
    """Listen on host:port (0: any free port) until cancelled; `on_ready(host, port)` once bound."""
    listener = await asyncio.start_server(server.handle, host, port, limit=MAX_HEAD)
    bound = listener.sockets[0].getsockname()
    on_ready(host, int(bound[1]))
    async with listener:
        await listener.serve_forever()
