"""HTTP endpoints: /metrics, /, /healthz, /readyz. Handlers only read what the exporter holds."""

from __future__ import annotations

import html
import ipaddress
import socket
from dataclasses import dataclass

from aiohttp import web

from exporter import __version__
from exporter.exposition import wants_gzip
from exporter.runtime import Exporter

__all__ = ["DEFAULT_LISTEN", "DEFAULT_PORT", "ListenAddress", "Server", "parse_listen_address"]

DEFAULT_PORT = 9842
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
EXPORTER_KEY = web.AppKey("exporter", Exporter)
PATH_KEY = web.AppKey("telemetry_path", str)


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


async def metrics(request: web.Request) -> web.Response:
    exposition = request.app[EXPORTER_KEY].exposition.pick(request.headers.get("Accept"))
    headers = {"Content-Type": exposition.content_type, "Vary": "Accept, Accept-Encoding"}
    if wants_gzip(request.headers.get("Accept-Encoding")):
        headers["Content-Encoding"] = "gzip"
        return web.Response(body=exposition.gzipped, headers=headers)
    return web.Response(body=exposition.body, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="OK\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[EXPORTER_KEY].ready:
        return web.Response(text="ready\n")
    return web.Response(status=503, text="not ready: the first poll cycle has not finished\n")


async def landing(request: web.Request) -> web.Response:
    path = html.escape(request.app[PATH_KEY])
    body = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>scrapejobs-exporter</title></head>
<body><h1>scrapejobs-exporter</h1><p>Version {html.escape(__version__)}</p>
<ul><li><a href="{path}">Metrics</a></li><li><a href="/healthz">Health</a></li>
<li><a href="/readyz">Readiness</a></li></ul></body></html>
"""
    return web.Response(text=body, content_type="text/html")


def build_app(exporter: Exporter, telemetry_path: str = "/metrics") -> web.Application:
    app = web.Application()
    app[EXPORTER_KEY] = exporter
    app[PATH_KEY] = telemetry_path
    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/", landing)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class Server:
    """Runs the aiohttp app on one listen address; `start()`/`stop()` like the poller."""

    def __init__(self, exporter: Exporter, listen: ListenAddress, telemetry_path: str) -> None:
        self.app = build_app(exporter, telemetry_path)
        self.listen = listen
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self.port = listen.port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.listen.host, self.listen.port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        for sock in sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.port = sock.getsockname()[1]
                break

    async def stop(self) -> None:
        await self._runner.cleanup()
