"""How a command runs and ends, defined once: exit codes, signals and the shutdown grace.

`run`, `demo` and `simulate` (also as `python -m scrapejobs_exporter.simulator`) serve through
`serve_until_signal`; `watch` ends on the same signals through `stop_on_signals`.

This module imports nothing of the package: the simulator uses it too, and must not import the
code it is used to test.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "SHUTDOWN_GRACE",
    "Service",
    "bounded",
    "serve_until_signal",
    "stop_on_signals",
]

log = logging.getLogger("scrapejobs_exporter")

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed (a target failed, a port was taken, ...)
EXIT_USAGE = 2  # bad flags or a bad config: nothing was run
# The process must be gone within 5 s of SIGTERM (a rolling update waits for it).
SHUTDOWN_GRACE = 4.0

Reload = Callable[[], Awaitable[object]]


class Service(Protocol):
    """Something that serves between `start()` and `stop()`. `stop()` must also work on one
    that was never started or failed to start (it releases what the constructor took)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@contextlib.contextmanager
def stop_on_signals(reload: Reload | None = None) -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM; meanwhile SIGHUP runs `reload` (if given)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = [signal.SIGINT, signal.SIGTERM]
    for sig in handled:
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Future[object]] = set()
    if reload is not None:

        def on_hup() -> None:
            task = asyncio.ensure_future(reload())
            reloads.add(task)  # keep a reference until it is done
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        handled.append(signal.SIGHUP)
    try:
        yield stop
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def bounded(step: Awaitable[object], seconds: float) -> None:
    """Wait for `step` at most `seconds`; shutdown goes on without it after that."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await step


async def serve_until_signal(
    services: Sequence[Service],
    *,
    reload: Reload | None = None,
    ready: Callable[[], None] | None = None,
    grace: float = SHUTDOWN_GRACE,
) -> int:
    """Start `services` in order, call `ready()`, serve until SIGINT or SIGTERM (SIGHUP runs
    `reload`), then stop them in reverse order, all within `grace`: EXIT_OK.

    A service that cannot start (an OSError: the port is taken, the address is not ours) ends
    it at once with one line naming the culprit and EXIT_FAILED; the services after it are never
    started (so `run` makes no call to a provider when it cannot listen)."""
    try:
        for service in services:
            await service.start()
    except OSError as exc:
        log.error("%s", exc.strerror or exc)
        await bounded(_stop_all(services), grace)
        return EXIT_FAILED
    if ready is not None:
        ready()
    with stop_on_signals(reload) as stop:
        await stop.wait()
    log.info("shutting down")
    await bounded(_stop_all(services), grace)
    return EXIT_OK


async def _stop_all(services: Sequence[Service]) -> None:
    for service in reversed(services):
        await service.stop()
