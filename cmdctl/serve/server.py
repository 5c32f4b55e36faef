"""The HTTP layer of `cmdctl serve`: Starlette routes and checks, served by uvicorn.

Starlette gives the routing, the request and response objects and the event stream; uvicorn
parses HTTP. The checks (Host, Origin, the token, the body size) run in one ASGI wrapper in
front of the routes, before any of a body is read. Both are imported only by `cmdctl serve`:
the CLI imports this module inside the command, so `--help` and `send` stay fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cmdctl.core.errors import CmdctlError, InputError
from cmdctl.journal.feed import Feed
from cmdctl.serve import token as tokens
from cmdctl.serve.ops import Conflict, NotFound, Ops

T = TypeVar("T")

#: Largest request body (a playbook of a few thousand steps fits).
MAX_BODY = 1 << 20
#: Largest request line plus headers.
MAX_HEAD = 16 << 10
#: An idle connection is dropped after this (uvicorn's keep-alive timeout).
IDLE_TIMEOUT_S = 10
#: An idle event stream gets a comment this often, so proxies and the page see it is alive.
KEEPALIVE_S = 15.0
#: How often the event stream looks at the journal (as `events --follow`).
FEED_POLL_S = 0.05

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
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

    def response(self) -> Response:
        return _json_response(self.status, self.body)


Handler = Callable[[Request], Awaitable[Any]]

#: Paths open without the token: the health check and the static page (no data, no token).
_OPEN = ("/healthz", "/", "/index.html")


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
        #: Set when the server stops: open event streams end so the connections can close.
        self.stopping = asyncio.Event()
        api = [
            ("GET", "/api/status", self._status),
            ("GET", "/api/batches", self._batches),
            ("GET", "/api/batches/{id}", self._batch),
            ("POST", "/api/batches/{id}/cancel", self._batch_cancel),
            ("POST", "/api/batches/{id}/retry", self._batch_retry),
            ("GET", "/api/entries", self._entries),
            ("GET", "/api/entries/{id}", self._entry),
            ("POST", "/api/entries/{id}/cancel", self._cancel),
            ("POST", "/api/entries/{id}/retry", self._retry),
            ("POST", "/api/entries/{id}/priority", self._priority),
            ("GET", "/api/history", self._history),
            ("GET", "/api/devices", self._devices),
            ("POST", "/api/send", self._send),
            ("POST", "/api/bulk", self._bulk),
        ]
        routes = [
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/", self._page, methods=["GET"]),
            Route("/index.html", self._page, methods=["GET"]),
            Route("/api/events", self._guard(self._events), methods=["GET"]),
            *(Route(path, self._endpoint(handler), methods=[method])
              for method, path, handler in api),
        ]
        self.app: ASGIApp = _Checks(
            Starlette(
                routes=routes,
                exception_handlers={HTTPException: _http_exception},  # 404, 405 as JSON
            ),
            self,
        )

    # -- checks and errors -------------------------------------------------------------------

    def check(self, method: str, path: str, headers: dict[str, str]) -> None:
        """Host, Origin, the token, the body's size: HttpError when one fails."""
        host = headers.get("host", "").lower()
        if host not in self.hosts:  # DNS rebinding: a page from evil.example on our address
            raise HttpError(421, "unexpected Host header", hint="add it with --allow-host")
        origin = headers.get("origin")
        if method != "GET" and origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                raise HttpError(403, "cross-origin request refused")
        if path not in _OPEN:
            auth = headers.get("authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not tokens.matches(given.strip(), self.token):
                raise HttpError(401, "a bearer token is needed (Authorization: Bearer TOKEN)")
        if "transfer-encoding" in headers:
            raise HttpError(411, "send a Content-Length, not a chunked body")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise HttpError(400, "bad Content-Length")
        if int(length_text) > MAX_BODY:
            raise HttpError(413, f"body larger than {MAX_BODY:,} bytes")

    def _guard(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[
        [Request], Awaitable[Response]
    ]:
        """`handler` with HttpError as its answer and no traceback in any response."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except HttpError as err:
                return err.response()
            except Exception as err:  # never a traceback in a response
                self.log(f"internal error: {type(err).__name__}: {err}")
                return _json_response(500, {"error": "internal error (see the server's log)"})

        return endpoint

    def _endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A JSON route: the result as 200 (201 for POST), the ops' errors as their status."""

        async def call(request: Request) -> Response:
            try:
                result = await handler(request)
            except NotFound as err:
                raise HttpError(404, str(err)) from None
            except Conflict as err:
                raise HttpError(409, "nothing changed", **err.body) from None
            except InputError as err:
                raise HttpError(400, err.message, **_where(err)) from None
            except CmdctlError as err:
                raise HttpError(503, err.message) from None
            return _json_response(201 if request.method == "POST" else 200, result)

        return self._guard(call)

    # -- the routes --------------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        return _json_response(200, {"ok": True})

    async def _page(self, request: Request) -> Response:
        page = resources.files("cmdctl.serve").joinpath("page.html").read_bytes()
        return Response(
            page,
            headers={"Content-Type": "text/html; charset=utf-8",
                     "Content-Security-Policy": _PAGE_CSP},
        )

    async def _status(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.status, _query(req).get("batch"))

    async def _batches(self, req: Request) -> Any:
        return (await asyncio.to_thread(self.ops.status))["batches"]

    async def _batch(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.batch, req.path_params["id"])

    async def _batch_cancel(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.cancel, None, req.path_params["id"])

    async def _batch_retry(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.retry, None, req.path_params["id"])

    async def _entries(self, req: Request) -> Any:
        q = _query(req)
        return await asyncio.to_thread(
            lambda: self.ops.entries(
                state=q.get("state"), device=q.get("device"), batch=q.get("batch"),
                limit=_int(q, "limit", 200),
            )
        )

    async def _entry(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.entry, req.path_params["id"])

    async def _cancel(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.cancel, req.path_params["id"], None)

    async def _retry(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.retry, req.path_params["id"], None)

    async def _priority(self, req: Request) -> Any:
        level = _field(await _json_body(req), "priority")
        return await asyncio.to_thread(self.ops.priority, req.path_params["id"], level)

    async def _history(self, req: Request) -> Any:
        q = _query(req)
        since = None
        if "since" in q:
            from cmdctl.core.timespec import parse_duration

            since = parse_duration(q["since"])
        return await asyncio.to_thread(
            lambda: self.ops.history(device=q.get("device"), since=since,
                                     limit=_int(q, "limit", 50), archive=_flag(q, "archive"))
        )

    async def _devices(self, req: Request) -> Any:
        return await asyncio.to_thread(self.ops.devices)

    async def _send(self, req: Request) -> Any:
        data = await _json_body(req)
        value = data.get("value")
        if value is not None and not isinstance(value, str):
            value = json.dumps(value)
        device, entity = _field(data, "device"), _field(data, "entity")
        at, expires = _optional(data, "at", str), _optional(data, "expires", str)
        attempts = _optional(data, "attempts", int)
        return await asyncio.to_thread(
            lambda: self.ops.send(
                device, entity, value, at=at, expires=expires, attempts=attempts
            )
        )

    async def _bulk(self, req: Request) -> Any:
        q = _query(req)
        body = await req.body()
        return await asyncio.to_thread(
            lambda: self.ops.bulk(
                body, limit=q.get("limit"), priority=q.get("priority"), at=q.get("at"),
                variables=req.query_params.getlist("var"),
            )
        )

    async def _events(self, req: Request) -> Response:
        """Server-Sent Events: each journal event as `data: {events --json line}`."""
        since = _query(req).get("since")
        cutoff = float(since) if since is not None and _is_number(since) else None
        return StreamingResponse(
            self._stream(cutoff),
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"},
        )

    async def _stream(self, cutoff: float | None) -> AsyncIterator[bytes]:
        yield b": cmdctl events\n\n"
        with Feed(self.ops.journal.directory) as feed:
            backlog = await asyncio.to_thread(feed.poll)  # the history: only what `since` asks
            pending = [i for i in backlog if cutoff is not None and i.event.ts >= cutoff]
            idle = 0.0
            while not self.stopping.is_set():
                if pending:
                    idle = 0.0
                    out = []
                    for item in pending:
                        data = json.dumps(item.as_json(), ensure_ascii=False,
                                          separators=(",", ":"))
                        out.append(f"event: journal\ndata: {data}\n\n")
                    yield "".join(out).encode()
                elif idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield b": keepalive\n\n"
                await asyncio.sleep(FEED_POLL_S)
                idle += FEED_POLL_S
                pending = await asyncio.to_thread(feed.poll)


class _Checks:
    """ASGI wrapper: the checks before any route (and before any body is read), the security
    headers and `Connection: close` on every answer."""

    def __init__(self, app: ASGIApp, server: Server) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items()]
                extra.append((b"connection", b"close"))  # one request per connection
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1").strip()
                   for k, v in scope["headers"]}
        try:
            self.server.check(scope["method"], scope["path"], headers)
        except HttpError as err:
            await err.response()(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = [m.strip() for m in (exc.headers or {}).get("Allow", "").split(",") if m.strip()]
        return _json_response(
            405, {"error": f"{request.method} is not allowed here", "allow": allow}
        )
    if exc.status_code == 404:
        return _json_response(404, {"error": f"no route {request.url.path}"})
    return _json_response(exc.status_code, {"error": exc.detail})


def _json_response(status: int, value: Any) -> Response:
    return Response(_json(value), status_code=status, media_type="application/json")


def _query(req: Request) -> dict[str, str]:
    return dict(req.query_params)  # the last of repeated keys, as before


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


async def _json_body(req: Request) -> dict[str, Any]:
    try:
        data = json.loads(await req.body() or b"{}")
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


def _optional(data: dict[str, Any], key: str, kind: type[T]) -> T | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        name = "a whole number" if kind is int else "a string"
        raise HttpError(400, f"{key!r} must be {name}, got {json.dumps(value)}")
    return value


def _int(query: dict[str, str], key: str, default: int) -> int:
    text = query.get(key)
    if text is None:
        return default
    if not text.isdigit():
        raise HttpError(400, f"{key} must be a whole number, got {text!r}")
    return int(text)


def _flag(query: dict[str, str], key: str) -> bool:
    text = query.get(key)
    if text is None:
        return False
    if text.lower() in ("", "1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise HttpError(400, f"{key} must be 1 or 0, got {text!r}")


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


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: `cmdctl serve` (run_async) owns SIGINT/SIGTERM
    and stops the server by cancelling `serve`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve(
    server: Server, host: str, port: int, on_ready: Callable[[str, int], None]
) -> None:
    """Listen on host:port (0: any free port) until cancelled; `on_ready(host, port)` once bound."""
    sock = _listen(host, port)
    config = uvicorn.Config(
        server.app, http="h11", lifespan="off", log_level="warning", access_log=False,
        server_header=False, h11_max_incomplete_event_size=MAX_HEAD,
        timeout_keep_alive=IDLE_TIMEOUT_S, timeout_graceful_shutdown=5,
    )
    web = _Uvicorn(config)
    task = asyncio.create_task(web.serve(sockets=[sock]))
    try:
        while not web.started:
            if task.done():
                task.result()  # startup failed: its error
                return
            await asyncio.sleep(0.01)
        on_ready(host, int(sock.getsockname()[1]))
        await asyncio.shield(task)
    except asyncio.CancelledError:
        server.stopping.set()  # event streams end, so their connections close
        web.should_exit = True
        with contextlib.suppress(Exception):
            await task
        raise
    finally:
        sock.close()
