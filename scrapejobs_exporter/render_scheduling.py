"""Serving before rendering: a render in progress steps aside while a scrape is being sent.

A render is a few hundred ms of Python in a worker thread (at 50,000 jobs). While it runs, the
event loop shares the GIL with it, and a scrape of a 10 MB page takes two to three times as
long. So the render waits at its chunk boundaries while a scrape is being sent and for a short
while after one (`QUIET_AFTER_SCRAPE`: the next scrape of a client that scrapes back to back
then starts on a loop that has the GIL to itself). The waiting is bounded per render
(`PAUSE_BUDGET`), so clients scraping back to back cannot starve it.

It exists for the benchmark row "Scrape p99 while rendering" (<= 10 ms at 50,000 jobs; see
bench/RESULTS.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["PAUSE_BUDGET", "ServeFirst"]

PAUSE_BUDGET = 2.0  # seconds a render may spend waiting, in all
# After a scrape, the render stays paused this long: the next scrape of a client scraping back
# to back (or of a second Prometheus) then starts on a loop that does not share the GIL. The
# handler ends when the kernel has taken the last bytes, with up to a send buffer (see
# `server.MAX_SEND_BUFFER`) of the page still to reach the client, so the pause covers that
# too. For the benchmark row "Scrape p99 while rendering" at 50,000 jobs: 8 rounds of 200
# scrapes gave a median p99 of 19.7 ms with 5 ms, 12.1 ms with 25 ms (scrapes with no render
# running: 12.2 ms).
QUIET_AFTER_SCRAPE = 0.025


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

    def pause_point(self) -> Callable[[], float]:
        """A function that waits while a scrape is being sent or one has just ended, within
        what is left of the budget, and returns the seconds it waited. Made on the event loop,
        called from the render thread."""
        clock = self.clock
        left = [self.budget]

        def pause() -> float:
            started = clock()
            while (remaining := left[0] - (clock() - started)) > 0:
                if not self._no_scrape.is_set():
                    self._no_scrape.wait(remaining)
                    continue
                quiet = self._last_scrape_end + QUIET_AFTER_SCRAPE - clock()
                if quiet <= 0:
                    break
                time.sleep(min(quiet, remaining))
            waited = clock() - started
            left[0] -= waited
            return waited

        return pause
