"""The provider's clock against ours (`provider_clock`): where our start falls on it."""

from __future__ import annotations

import pytest

from scrapejobs_exporter.provider_clock import (
    AGREE_AFTER,
    EARLY,
    MAX_RATE,
    RATE_AFTER,
    ProviderClock,
    start_of_watching,
)

START = 1_700_000_000.0


def test_busy_list_same_clocks_gives_our_start() -> None:
    # Read 3 s after the start; the newest row is 0.5 s old at the read.
    assert start_of_watching(START + 2.5, START, START + 3, 1.0) == START


def test_quiet_list_gives_its_newest_row() -> None:
    # Nothing happened in the last hour: no job of this list finished between then and now.
    assert start_of_watching(START - 3600, START, START + 3, 1.0) == START - 3600


def test_provider_clock_ahead_gives_its_time_at_our_start() -> None:
    # The provider's clock runs 600 s ahead (a sped-up simulator): a job that finished 100 s
    # before we started, on its clock, is from before.
    watermark = start_of_watching(START + 603, START, START + 3, 1.0)
    assert watermark == START + 600


def test_provider_clock_behind_never_goes_past_its_newest_row() -> None:
    assert start_of_watching(START - 58, START, START + 3, 1.0) == START - 58


def test_a_faster_clock_puts_the_start_further_back() -> None:
    # Twice our rate: 3 s of ours before the read are 6 of the provider's.
    assert start_of_watching(START + 1000, START, START + 3, 2.0) == START + 994


def test_list_added_later_starts_at_its_addition() -> None:
    # A collector added by a reload an hour after the exporter started: jobs of it that
    # finished before then are not counted (no jump of increase()).
    added = START + 3600
    assert start_of_watching(added + 9.5, added, added + 10, 1.0) == added


def test_rows_without_times_give_no_watermark() -> None:
    assert start_of_watching(None, START, START + 3, 1.0) is None


def sped_up(clock: ProviderClock, rate: float, lag: float, reads: list[float]) -> None:
    """Readings of a provider whose clock is `rate` times ours (and at START at our START),
    each list's newest row `lag` provider seconds old."""
    for at in reads:
        clock.observe(at, START + rate * (at - START) - lag)


@pytest.mark.parametrize("rate", [2.0, 7.5])
def test_the_rate_is_measured_after_rate_after_seconds(rate: float) -> None:
    clock = ProviderClock()
    sped_up(clock, rate, 0.3, [START + 1, START + 2, START + 4, START + RATE_AFTER - 1])
    assert clock.rate is None and clock.start(START) is None  # not yet: too short a span
    sped_up(clock, rate, 0.3, [START + RATE_AFTER + 2])
    assert clock.rate == pytest.approx(rate)
    # Our start on its clock: the newest rows are lower bounds, short of it by their lag.
    start = clock.start(START)
    assert start == pytest.approx(START - 0.3)


def test_the_clocks_agree_when_no_row_ran_ahead_for_agree_after_seconds() -> None:
    clock = ProviderClock()
    sped_up(clock, 1.0, 0.3, [START + 1, START + 2, START + RATE_AFTER + 2])
    assert clock.rate is None  # a fast clock may yet show
    sped_up(clock, 1.0, 0.3, [START + AGREE_AFTER + 2])
    assert clock.rate == 1.0
    assert clock.start(START) == pytest.approx(START)  # our own start


def test_a_quiet_lists_new_high_does_not_make_a_fast_clock_agree() -> None:
    # Seen live with three shards on a simulator at --speed 2: a shard's first reading was
    # tight, its first new high RATE_AFTER later came from a quiet list lagging the provider's
    # "now" by as much as its clock ran ahead of ours, and the clocks were taken to agree.
    clock = ProviderClock()
    sped_up(clock, 2.0, 0.5, [START + 1])
    clock.observe(START + RATE_AFTER + 1, START + RATE_AFTER + 1.5)  # lags 30 s
    assert clock.rate is None
    sped_up(clock, 2.0, 0.5, [START + 2 * RATE_AFTER])  # a busy list: 60 s ahead of ours
    assert clock.rate == pytest.approx(2.0)
    assert clock.start(START) == pytest.approx(START - 0.5)


def test_a_stale_late_reading_does_not_set_the_rate() -> None:
    # A quiet list read late shows an old newest row: no new high, no rate from it.
    clock = ProviderClock()
    sped_up(clock, 2.0, 0.0, [START + 1, START + 5])
    clock.observe(START + RATE_AFTER + 5, START + 4)
    assert clock.rate is None
    sped_up(clock, 2.0, 0.0, [START + RATE_AFTER + 6])
    assert clock.rate == pytest.approx(2.0)


def test_the_rate_stays_within_bounds() -> None:
    slow, fast = ProviderClock(), ProviderClock()
    sped_up(slow, 0.5, 0.0, [START + 1, START + AGREE_AFTER + 2])
    sped_up(fast, 40.0, 0.0, [START + 1, START + RATE_AFTER + 2])
    assert slow.rate == 1.0  # a provider's clock does not run slow; noise does
    assert fast.rate == MAX_RATE


def test_the_start_uses_only_the_early_readings() -> None:
    clock = ProviderClock()
    sped_up(clock, 2.0, 0.0, [START + 3, START + EARLY + 4])  # the second is not early
    assert clock.early == [(START + 3, START + 6)]
    sped_up(clock, 2.0, 0.0, [START + RATE_AFTER + 10])
    assert clock.start(START) == pytest.approx(START)


def test_lists_added_after_the_first_reading_are_not_placed_by_the_clock() -> None:
    clock = ProviderClock()
    sped_up(clock, 2.0, 0.0, [START + 3, START + RATE_AFTER + 10])
    assert clock.start_up(START) and not clock.start_up(START + 10)
    assert clock.start(START + 10) is None  # its own first read places it


def test_a_clock_behind_ours_never_starts_after_its_newest_row() -> None:
    clock = ProviderClock()
    for at in (START + 1, START + AGREE_AFTER + 2):
        clock.observe(at, at - 3600 * 24)  # a world replaying yesterday
    assert clock.start(START) == pytest.approx(START + 1 - 3600 * 24 - 1)
