"""Serving before rendering: a render in progress steps aside while the event loop has work.

A render is a few hundred ms of Python in a worker thread (at 50,000 jobs). While it runs, the
event loop shares the GIL and the CPU with it: every GIL hand-over costs the loop a switch
interval, and a scrape of a 10 MB page takes two to three times as long. So the render waits at
its chunk boundaries while the loop is awake (it has I/O or callbacks to handle), while a scrape
is being sent and for a few ms after one (the next scrape of a client that scrapes back to back
then starts on a loop that has the GIL to itself); it runs while the loop sleeps. The waiting is
bounded per render (`PAUSE_BUDGET`), so a loop that never sleeps, or clients scraping back to
back, cannot starve it.

The loop reports when it sleeps through its selector: `run()` runs a coroutine on a
`ServingLoop`. On any other loop only the scrape signal is used. The render thread itself runs at
the lowest CPU priority (`background_executor()`), so that on a small machine the scheduler
hands a core to the event loop and to the scraping client first.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

__all__ = [
    "BACKGROUND_NICE",
    "PAUSE_BUDGET",
    "ServeFirst",
    "ServingLoop",
    "background_executor",
    "run",
]

PAUSE_BUDGET = 2.0  # seconds a render may spend waiting, in all
# After a scrape, the render stays paused this long: the next scrape of a client scraping back
# to back (or of a second Prometheus) then starts on a loop that does not share the GIL.
QUIET_AFTER_SCRAPE = 0.005
BACKGROUND_NICE = 19

T = TypeVar("T")


class _SleepSignallingSelector(selectors.DefaultSelector):
    """Sets `asleep` while the event loop waits for I/O with nothing else to do."""

    def __init__(self, asleep: threading.Event) -> None:
        super().__init__()
        self.asleep = asleep

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:  # a zero timeout: callbacks are ready, not asleep
            self.asleep.set()
        try:
            return super().select(timeout)
        finally:
            self.asleep.clear()


class ServingLoop(asyncio.SelectorEventLoop):
    """An ordinary selector event loop that tells other threads when it is asleep."""

    def __init__(self) -> None:
        self.asleep = threading.Event()
        super().__init__(_SleepSignallingSelector(self.asleep))


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` on a `ServingLoop`."""
    with asyncio.Runner(loop_factory=ServingLoop) as runner:
        return runner.run(main)


class ServeFirst:
    """`serving()` is entered on the event loop around each scrape; `pause_point()` gives the
    render thread a function to call between chunks."""

    def __init__(
        self, budget: float = PAUSE_BUDGET, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget
        self.clock = clock
        self._in_flight = 0  # only touched on the event loop
        self._no_scrape = threading.Event()
        self._no_scrape.set()
        self._last_scrape_end = -QUIET_AFTER_SCRAPE

    @property
    def serving_now(self) -> bool:
        return not self._no_scrape.is_set()

    @contextmanager
    def serving(self) -> Iterator[None]:
        self._in_flight += 1
        self._no_scrape.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._last_scrape_end = self.clock()
                self._no_scrape.set()

    def pause_point(self, loop_asleep: threading.Event | None = None) -> Callable[[], float]:
        """A function that waits while the loop is awake, a scrape is being sent or one has
        just ended, within what is left of the budget, and returns the seconds it waited. Made
        on the event loop, called from the render thread."""
        clock = self.clock
        signals = [self._no_scrape] if loop_asleep is None else [self._no_scrape, loop_asleep]
        left = [self.budget]

        def pause() -> float:
            started = clock()
            while (remaining := left[0] - (clock() - started)) > 0:
                pending = next((s for s in signals if not s.is_set()), None)
                if pending is not None:
                    pending.wait(remaining)
                    continue
                quiet = self._last_scrape_end + QUIET_AFTER_SCRAPE - clock()
                if quiet <= 0:
                    break
                time.sleep(min(quiet, remaining))
            waited = clock() - started
            left[0] -= waited
            return waited

        return pause

    @staticmethod
    def loop_asleep() -> threading.Event | None:
        """The running loop's sleep signal, if it is a `ServingLoop`."""
        return getattr(asyncio.get_running_loop(), "asleep", None)


def background_executor(name: str) -> ThreadPoolExecutor:
    """One worker thread at the lowest CPU priority (nice 19; on Linux a nice value is per
    thread). Not SCHED_IDLE: the thread holds the GIL while it runs, and a thread that gets no
    CPU at all on a saturated host would hold up the event loop with it."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=_lower_priority)


def _lower_priority() -> None:
    with suppress(AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
