"""HTTP endpoints: /metrics, /, /healthz and /readyz (also as /-/healthy and /-/ready, the
official exporters' spelling), and POST /-/reload when lifecycle is enabled.

Handlers only read what the exporter holds. With a web config, every route but the health checks
requires its TLS and basic-auth credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import resource
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.typedefs import Handler, Middleware

from scrapejobs_exporter.config import ConfigError, load_config
from scrapejobs_exporter.exporter import Exporter
from scrapejobs_exporter.exposition import Exposition, wants_gzip
from scrapejobs_exporter.landing import api_response, page_response
from scrapejobs_exporter.webconfig import BasicAuth, WebConfig

__all__ = [
    "DEFAULT_LISTEN",
    "DEFAULT_PORT",
    "OPEN_PATHS",
    "ListenAddress",
    "Reloader",
    "Server",
    "parse_listen_address",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9842
DEFAULT_SEND_BUFFER = 256 * 1024
MAX_SEND_BUFFER = 8 * 1024 * 1024
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
EXPORTER_KEY = web.AppKey("exporter", Exporter)
PATH_KEY = web.AppKey("telemetry_path", str)
GRAFANA_KEY = web.AppKey("grafana_url", str)  # "" when --web.grafana-url is not given
ReloadFn = Callable[[], Awaitable[list[str]]]
RELOAD_KEY: web.AppKey[ReloadFn] = web.AppKey("reload")
# Probes must keep working for orchestrators that cannot present credentials.
HEALTH_PATHS = ("/healthz", "/-/healthy")
READY_PATHS = ("/readyz", "/-/ready")
OPEN_PATHS = frozenset({*HEALTH_PATHS, *READY_PATHS})
# A connection must bring a request head within this long of opening or of its last response,
# else it is closed (aiohttp's keep-alive timer runs from the connection's start).
IDLE_TIMEOUT = 30.0
MAX_REQUEST_LINE = 8190  # bytes of a request line, and of one header field
MAX_HEADERS = 64
INFLATE_STEP = 256 * 1024  # bytes of plain text made per step of an uncompressed scrape
# asyncio accepts up to `backlog` connections per wake-up, before the limiter sees any of them;
# a small backlog keeps that burst (file descriptors in hand but not yet counted) small.
ACCEPT_BACKLOG = 32
OUT_OF_FILES = "socket.accept() out of system resource"


class Reloader:
    """Re-reads the config file; a bad one is logged (one line per problem) and rejected.

    Keeps `scrapejobs_exporter_config_last_reload_*` as Prometheus does for itself.
    """

    def __init__(self, exporter: Exporter, path: str | Path) -> None:
        self.exporter = exporter
        self.path = Path(path)
        self._lock = asyncio.Lock()
        self._mark(ok=True)

    async def __call__(self) -> list[str]:
        """Reload; returns the problems (empty on success)."""
        async with self._lock:
            try:
                config = await asyncio.to_thread(load_config, self.path)
            except ConfigError as exc:
                for problem in exc.problems:
                    log.error("reload rejected: %s: %s", exc.source, problem)
                self._mark(ok=False)
                # Shown at once, not a poll interval later when the next cycle renders.
                await self.exporter.refresh_exposition()
                return [f"{exc.source}: {p}" for p in exc.problems]
            # Marked before the switch, whose last step re-renders the exposition with it.
            self._mark(ok=True)
            await self.exporter.reload(config)
            log.info("configuration reloaded from %s", self.path)
            return []

    def _mark(self, ok: bool) -> None:
        self.exporter.telemetry.reload_done(ok, time.time())


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str | None  # None: every interface, as Go's `:9842`
    port: int

    def __str__(self) -> str:
        host = self.host or ""
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"


def parse_listen_address(value: str) -> ListenAddress:
    """`:9842`, `127.0.0.1:9842`, `[::1]:9842` or `localhost:9842`."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r}: expected [host]:port, e.g. :9842")
    host = host.strip("[]")
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not all(part.isalnum() or "-" in part for part in host.split(".")):
                raise ValueError(f"invalid host in listen address {value!r}") from None
    return ListenAddress(host or None, int(port))


async def metrics(request: web.Request) -> web.StreamResponse:
    exporter = request.app[EXPORTER_KEY]
    with exporter.serve_first.serving():  # a render in progress waits meanwhile
        return await _serve_exposition(request, exporter.exposition)


async def _serve_exposition(request: web.Request, page: Exposition) -> web.StreamResponse:
    exposition = page.pick(request.headers.get("Accept"))
    headers = {"Content-Type": exposition.content_type, "Vary": "Accept, Accept-Encoding"}
    if wants_gzip(request.headers.get("Accept-Encoding")):
        # The cached parts go out as they are: no per-scrape copy of a page of megabytes.
        headers["Content-Encoding"] = "gzip"
        response = web.StreamResponse(headers=headers)
        response.content_length = exposition.size
        _widen_send_buffer(request, exposition.size)
        await response.prepare(request)
        for part in exposition.parts:  # each region whole: see exposition.REGION_SIZE
            await response.write(part)
        await response.write_eof()
        return response
    # Only gzipped bytes are kept: the page is inflated step by step as it is sent, so each
    # uncompressed scrape holds a window and a step's output, not a plain copy of the page.
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for part in exposition.parts:
        data = inflate.decompress(part, INFLATE_STEP)
        while data:
            await response.write(data)  # waits while the client is slow to read
            data = inflate.decompress(inflate.unconsumed_tail, INFLATE_STEP)
    await response.write(inflate.flush())
    await response.write_eof()
    return response


def _widen_send_buffer(request: web.Request, size: int) -> None:
    """Let the kernel take a large page in a few writes. With the default buffer a 10 MB page
    needs dozens of event-loop turns, each of which waits for the GIL while a render runs. For
    the benchmark rows "Scrape p50" and "Scrape p99 while rendering" at 50,000 jobs."""
    if size <= DEFAULT_SEND_BUFFER or request.transport is None:
        return
    sock = request.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # capped by net.core.wmem_max; best effort
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(size, MAX_SEND_BUFFER))


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[EXPORTER_KEY].ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text="not ready: the first list sweeps are not in yet\n")


async def landing(request: web.Request) -> web.Response:
    app = request.app
    return page_response(app[EXPORTER_KEY], app[PATH_KEY], request.query, app[GRAFANA_KEY] or None)


async def api_targets(request: web.Request) -> web.Response:
    return api_response(request.app[EXPORTER_KEY], request.query)


async def reload(request: web.Request) -> web.Response:
    problems = await request.app[RELOAD_KEY]()
    if problems:
        return web.Response(status=500, text="failed to reload config: " + "; ".join(problems))
    return web.Response(text="OK\n")


class _Connection(asyncio.Protocol):
    """One accepted connection: aiohttp's protocol inside, plus what the limiter needs (when
    bytes last came in, and whether a request is being handled)."""

    def __init__(self, limiter: ConnectionLimiter, inner: asyncio.Protocol) -> None:
        self.limiter = limiter
        self.inner = inner
        self.transport: asyncio.BaseTransport | None = None
        self.last_data = time.monotonic()
        self.busy = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.limiter.opened(self)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.last_data = time.monotonic()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.limiter.closed(self)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Refused(asyncio.Protocol):
    """Over the cap with every connection busy: closed at once, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


def default_max_connections() -> int:
    """Half the open-file limit (the rest is for provider connections, files and the
    listening socket), between 16 and 1024: accepting past the limit makes every accept fail."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1024
    return max(16, min(1024, soft // 2))


class ConnectionLimiter:
    """The protocol factory of the listening socket: at most `limit` connections are open.

    A connection past the cap closes the one that has been quiet longest and is not handling a
    request (an idle keep-alive, or a client trickling a request head), so a scrape still gets
    in while hundreds of idle connections are held open; if every one is busy, the new one is
    closed at once, without reading from it."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limit: int) -> None:
        self._factory = factory
        self.limit = limit
        self._open: dict[_Connection, None] = {}
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._warned = False

    def __call__(self) -> asyncio.Protocol:
        if len(self._open) >= self.limit and not self._evict():
            return _Refused()
        return _Connection(self, self._factory())

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, connection: _Connection) -> None:
        self._open[connection] = None
        if connection.transport is not None:
            self._by_transport[connection.transport] = connection

    def closed(self, connection: _Connection) -> None:
        self._open.pop(connection, None)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)

    def of(self, transport: asyncio.BaseTransport | None) -> _Connection | None:
        return None if transport is None else self._by_transport.get(transport)

    def _evict(self) -> bool:
        idle = [c for c in self._open if not c.busy and c.transport is not None]
        if not self._warned:
            self._warned = True
            log.warning(
                "%d connections open, the most allowed: the longest idle ones are closed "
                "for new ones (logged once)",
                self.limit,
            )
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_data)
        self.closed(victim)
        assert victim.transport is not None
        victim.transport.abort()  # type: ignore[attr-defined]
        return True


def _busy_middleware(limiter: ConnectionLimiter) -> Middleware:
    @web.middleware
    async def mark(request: web.Request, handler: Handler) -> web.StreamResponse:
        connection = limiter.of(request.transport)
        if connection is None:
            return await handler(request)
        connection.busy += 1
        try:
            return await handler(request)
        finally:
            connection.busy -= 1

    return mark


class QuietServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, without letting a client write tracebacks into our log: a
    malformed request or a dropped connection is the client's business (DEBUG, one line);
    anything else is ours (ERROR, with its traceback)."""

    CLIENT_ERRORS = (http_exceptions.HttpProcessingError, ConnectionError, asyncio.CancelledError)

    def __init__(self) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, self.CLIENT_ERRORS):
            text = str(msg) % args if args else str(msg)
            self.logger.debug("%s: %s", text, _one_line(exc))
            return
        if level < logging.ERROR or exc is None:
            kwargs.pop("exc_info", None)  # aiohttp's own debug notes: no traceback
        self.logger.log(level, msg, *args, **kwargs)


def _one_line(exc: BaseException) -> str:
    from scrapejobs_exporter.logs import escape_control

    return escape_control(f"{type(exc).__name__}: {exc}")[:200]


def _auth_middleware(auth: BasicAuth) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS or await auth.check(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized\n",
            headers={"WWW-Authenticate": 'Basic realm="scrapejobs-exporter"'},
        )

    return check


def build_app(
    exporter: Exporter,
    telemetry_path: str = "/metrics",
    *,
    web_config: WebConfig | None = None,
    reloader: ReloadFn | None = None,
    grafana_url: str | None = None,
    limiter: ConnectionLimiter | None = None,
) -> web.Application:
    """`reloader` enables POST /-/reload (`--web.enable-lifecycle`); `grafana_url` links the
    landing page's rows to the dashboards."""
    middlewares: list[Middleware] = []
    if limiter is not None:
        middlewares.append(_busy_middleware(limiter))
    if web_config is not None and web_config.users:
        middlewares.append(_auth_middleware(BasicAuth(web_config.users)))
    app = web.Application(middlewares=middlewares)
    app[EXPORTER_KEY] = exporter
    app[PATH_KEY] = telemetry_path
    app[GRAFANA_KEY] = grafana_url or ""
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/api/targets", api_targets)
    for path in HEALTH_PATHS:
        app.router.add_get(path, healthz)
    for path in READY_PATHS:
        app.router.add_get(path, readyz)
    if reloader is not None:
        app[RELOAD_KEY] = reloader
        app.router.add_post("/-/reload", reload)
    return app


class Server:
    """Runs the aiohttp app on one listen address; `start()`/`stop()` like the poller."""

    def __init__(
        self,
        exporter: Exporter,
        listen: ListenAddress,
        telemetry_path: str,
        *,
        web_config: WebConfig | None = None,
        reloader: ReloadFn | None = None,
        grafana_url: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        self.limiter = ConnectionLimiter(
            self._protocol, max_connections or default_max_connections()
        )
        self.app = build_app(
            exporter,
            telemetry_path,
            web_config=web_config,
            reloader=reloader,
            grafana_url=grafana_url,
            limiter=self.limiter,
        )
        self.listen = listen
        self.ssl_context = web_config.ssl_context if web_config is not None else None
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=IDLE_TIMEOUT,
            logger=QuietServerLog(),
            max_line_size=MAX_REQUEST_LINE,
            max_field_size=MAX_REQUEST_LINE,
            max_headers=MAX_HEADERS,
        )
        self._server: asyncio.Server | None = None
        self._previous_handler: Any = None
        self._out_of_files_logged = float("-inf")
        self.port = listen.port

    def _protocol(self) -> asyncio.Protocol:
        server = self._runner.server
        assert server is not None, "start() sets the runner up first"
        return server()

    async def start(self) -> None:
        """Listen; an OSError (the port is taken, ...) says `cannot listen on ADDR: why`."""
        await self._runner.setup()
        # The listening socket is ours (not a TCPSite) so that every accepted connection goes
        # through the limiter first.
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        try:
            self._server = await loop.create_server(
                self.limiter,
                self.listen.host,
                self.listen.port,
                reuse_address=True,
                ssl=self.ssl_context,
                backlog=ACCEPT_BACKLOG,
            )
        except OSError as exc:
            loop.set_exception_handler(self._previous_handler)
            reason = exc.strerror or exc
            raise OSError(exc.errno, f"cannot listen on {self.listen}: {reason}") from None
        for sock in self._server.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.port = sock.getsockname()[1]
                break

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Out of file descriptors, asyncio logs a traceback for every connection it fails to
        accept (hundreds a second under a flood): one line a minute instead; asyncio retries
        accepting a second later by itself."""
        if context.get("message") == OUT_OF_FILES:
            now = time.monotonic()
            if now - self._out_of_files_logged >= 60.0:
                self._out_of_files_logged = now
                log.warning(
                    "out of file descriptors (%s): new connections wait; the connection cap "
                    "is %d (logged once a minute)",
                    context.get("exception"),
                    self.limiter.limit,
                )
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._runner.cleanup()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None
