"""SimulatorServer: the world, a clock and the aiohttp app bound to a port."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from scrapejobs_exporter.simulator.app import SimulatorApp
from scrapejobs_exporter.simulator.clock import Clock, ManualClock, RealClock
from scrapejobs_exporter.simulator.config import SimulatorConfig, check_address
from scrapejobs_exporter.simulator.world import World, WorldParams

SHUTDOWN_TIMEOUT = 5.0


def start_time_for(config: SimulatorConfig) -> float:
    if config.start_time is not None:
        return float(config.start_time)
    now = time.time()
    # A manual clock floors to the hour, so two runs started close together
    # (same seed, same advances) produce identical state.
    return float(int(now) // 3600 * 3600) if config.manual_clock else round(now, 3)


class SimulatorServer:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self._runner: web.AppRunner | None = None
        self._app: SimulatorApp | None = None
        self._shutdown: asyncio.Event | None = None
        self._url: str | None = None

    async def start(self) -> None:
        """Build the world and start listening; raises NonLoopbackAddressError."""
        check_address(self.config)
        start = start_time_for(self.config)
        clock: Clock = (
            ManualClock(start) if self.config.manual_clock else RealClock(start, self.config.speed)
        )
        world = World(self._world_params(start))
        self._shutdown = asyncio.Event()
        self._app = SimulatorApp(self.config, world, clock, self._shutdown)
        runner = web.AppRunner(
            self._app.build(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.config.host}:{self.config.port}"
            raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror or exc}") from None
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def _world_params(self, start: float) -> WorldParams:
        c = self.config
        return WorldParams(
            seed=c.seed,
            scale=c.scale,
            running_fraction=c.running_fraction,
            stuck_fraction=c.stuck_fraction,
            start_ms=int(start * 1000),
        )

    async def stop(self) -> None:
        """Stop serving; requests held by the `timeout` fault are released."""
        if self._shutdown is not None:
            self._shutdown.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("simulator is not started")
        return self._url

    @property
    def app(self) -> SimulatorApp:
        if self._app is None:
            raise RuntimeError("simulator is not started")
        return self._app

    @property
    def world(self) -> World:
        return self.app.world

    def advance(self, seconds: float) -> None:
        """Move simulated time forward (call from the server's event loop)."""
        self.app.clock.advance(seconds)
        self.app.sync_world()

    def state(self, compact: bool = False, finished_since: float = 0.0) -> dict[str, Any]:
        """Ground truth, as served by GET /_sim/state (call from the server's loop)."""
        return self.app.state(compact=compact, finished_since=finished_since)


@contextlib.contextmanager
def run_simulator_in_thread(config: SimulatorConfig) -> Iterator[SimulatorServer]:
    """Serve from a background thread with its own event loop; stop on exit."""
    server = SimulatorServer(config)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # handed to the caller's thread below
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=main, name="scrapejobs-simulator", daemon=True)
    thread.start()
    ready.wait()
    if errors:
        thread.join()
        raise errors[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=SHUTDOWN_TIMEOUT + 10)
