"""Which of our side's poll cycles count as steady in the benchmark."""

from __future__ import annotations

from typing import Any

from bench.measure_ours import MAX_CATCH_UP, _steady


def _flags(rows: list[tuple[int, int]]) -> list[bool]:
    """(polled, reports) per cycle -> whether each is steady, as measure_scale flags them."""
    cycles: list[dict[str, Any]] = []
    for index, (polled, reports) in enumerate(rows):
        cycles.append({"steady": _steady(index, cycles, polled, reports)})
    return [c["steady"] for c in cycles]


def test_the_first_cycle_and_the_report_catch_up_are_not_steady() -> None:
    # As measured at 50,000 jobs: two cycles after discovery read ~9,000 and ~2,700 reports.
    assert _flags([(815, 9010), (917, 8953), (876, 2727), (847, 39), (834, 40)]) == [
        False, False, False, True, True,
    ]  # fmt: skip
    # As at 10,000: the first cycle alone reads the backlog.
    assert _flags([(163, 4140), (178, 9), (164, 9)]) == [False, True, True]


def test_once_steady_a_later_burst_of_reports_still_counts() -> None:
    assert _flags([(10, 500), (10, 1), (10, 50), (10, 2)]) == [False, True, True, True]


def test_the_catch_up_is_bounded() -> None:
    flags = _flags([(1, 100)] * (MAX_CATCH_UP + 3))
    assert flags[: MAX_CATCH_UP + 1] == [False] * (MAX_CATCH_UP + 1)
    assert all(flags[MAX_CATCH_UP + 1 :])
