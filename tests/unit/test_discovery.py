"""When watching a list began, on the provider's clock (`discovery.start_of_watching`)."""

from __future__ import annotations

from scrapejobs_exporter.discovery import start_of_watching

START = 1_700_000_000.0


def test_busy_list_same_clocks_gives_our_start() -> None:
    # Read 3 s after the start; the newest row is 0.5 s old at the read.
    assert start_of_watching(START + 2.5, START, START + 3) == START


def test_quiet_list_gives_its_newest_row() -> None:
    # Nothing happened in the last hour: no job of this list finished between then and now.
    assert start_of_watching(START - 3600, START, START + 3) == START - 3600


def test_provider_clock_ahead_gives_its_time_at_our_start() -> None:
    # The provider's clock runs 600 s ahead (a sped-up simulator): a job that finished 100 s
    # before we started, on its clock, is from before.
    watermark = start_of_watching(START + 603, START, START + 3)
    assert watermark == START + 600
    assert watermark >= START + 500  # its finish is not after the start: not counted


def test_provider_clock_behind_never_goes_past_its_newest_row() -> None:
    assert start_of_watching(START - 58, START, START + 3) == START - 58


def test_list_added_later_starts_at_its_addition() -> None:
    # A collector added by a reload an hour after the exporter started: jobs of it that
    # finished before then are not counted (no jump of increase()).
    added = START + 3600
    assert start_of_watching(added + 9.5, added, added + 10) == added


def test_rows_without_times_give_no_watermark() -> None:
    assert start_of_watching(None, START, START + 3) is None
