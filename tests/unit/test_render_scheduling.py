"""The render steps aside for the event loop and for scrapes (`scrapejobs_exporter.render_scheduling`)."""

from __future__ import annotations

import threading

import pytest

from scrapejobs_exporter import render_scheduling
from scrapejobs_exporter.render_scheduling import QUIET_AFTER_SCRAPE, ServeFirst


def _pause_in_thread(pause: object) -> tuple[threading.Thread, list[float]]:
    waited: list[float] = []
    thread = threading.Thread(target=lambda: waited.append(pause()))  # type: ignore[operator]
    thread.start()
    return thread, waited


def test_nothing_served_no_wait() -> None:
    serve = ServeFirst(clock=lambda: 100.0)
    assert serve.pause_point()() == 0.0


def test_render_waits_until_the_scrape_is_sent() -> None:
    serve = ServeFirst()
    pause = serve.pause_point()
    with serve.serving():
        assert serve.serving_now
        thread, waited = _pause_in_thread(pause)
        thread.join(0.05)
        assert thread.is_alive()  # still waiting: the scrape is not done
    thread.join(5)
    assert not thread.is_alive() and not serve.serving_now
    assert waited[0] >= 0.05 + QUIET_AFTER_SCRAPE * 0.9


def test_overlapping_scrapes_keep_the_render_waiting() -> None:
    serve = ServeFirst()
    first, second = serve.serving(), serve.serving()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert serve.serving_now  # one is still being sent
    second.__exit__(None, None, None)
    assert not serve.serving_now


def test_waiting_is_bounded_by_the_budget() -> None:
    serve = ServeFirst(budget=0.05)
    pause = serve.pause_point()
    with serve.serving():
        assert 0.04 <= pause() < 2
        assert pause() < 0.01  # the budget is spent: the render goes on


def test_a_render_pauses_briefly_after_a_scrape() -> None:
    now = [10.0]
    serve = ServeFirst(clock=lambda: now[0])
    with serve.serving():
        pass
    slept: list[float] = []

    def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(render_scheduling.time, "sleep", fake_sleep)
        assert serve.pause_point()() == pytest.approx(QUIET_AFTER_SCRAPE)
    assert slept == [pytest.approx(QUIET_AFTER_SCRAPE)]
