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
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
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
ReloadFn = Callable[[], Awaitable[list[str]]]
RELOAD_KEY: web.AppKey[ReloadFn] = web.AppKey("reload")
# Probes must keep working for orchestrators that cannot present credentials.
HEALTH_PATHS = ("/healthz", "/-/healthy")
READY_PATHS = ("/readyz", "/-/ready")
OPEN_PATHS = frozenset({*HEALTH_PATHS, *READY_PATHS})


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
        telemetry = self.exporter.telemetry
        telemetry.config_reload_successful.set((), 1.0 if ok else 0.0)
        if ok:
            telemetry.config_reload_timestamp.set((), time.time())


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
        for part in exposition.parts:
            await response.write(part)
        await response.write_eof()
        return response
    # Only gzipped bytes are kept; inflating a large page must not stall other requests.
    body = await asyncio.to_thread(lambda: exposition.body)
    return web.Response(body=body, headers=headers)


def _widen_send_buffer(request: web.Request, size: int) -> None:
    """Let the kernel take a large page in a few writes. With the default buffer a 10 MB page
    needs dozens of event-loop turns, each of which waits for the GIL while a render runs."""
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
    return page_response(request.app[EXPORTER_KEY], request.app[PATH_KEY])


async def api_targets(request: web.Request) -> web.Response:
    return api_response(request.app[EXPORTER_KEY], request.query)


async def reload(request: web.Request) -> web.Response:
    problems = await request.app[RELOAD_KEY]()
    if problems:
        return web.Response(status=500, text="failed to reload config: " + "; ".join(problems))
    return web.Response(text="OK\n")


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
) -> web.Application:
    """`reloader` enables POST /-/reload (`--web.enable-lifecycle`)."""
    middlewares: list[Middleware] = []
    if web_config is not None and web_config.users:
        middlewares.append(_auth_middleware(BasicAuth(web_config.users)))
    app = web.Application(middlewares=middlewares)
    app[EXPORTER_KEY] = exporter
    app[PATH_KEY] = telemetry_path
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
    ) -> None:
        self.app = build_app(exporter, telemetry_path, web_config=web_config, reloader=reloader)
        self.listen = listen
        self.ssl_context = web_config.ssl_context if web_config is not None else None
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self.port = listen.port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.listen.host,
            self.listen.port,
            reuse_address=True,
            ssl_context=self.ssl_context,
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.port = sock.getsockname()[1]
                break

    async def stop(self) -> None:
        await self._runner.cleanup()
