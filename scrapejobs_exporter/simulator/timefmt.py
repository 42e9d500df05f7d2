"""Timestamps, ids and the waiting/working/ended timeline shared by every entity.

All simulated instants are integer milliseconds since the epoch, so that
`queue_time == started - created` holds exactly in the rendered JSON.
"""

from __future__ import annotations

import datetime as dt
import random

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DAY_MS = 86_400_000


def ms_to_datetime(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def iso_ms(ms: int) -> str:
    """Bright Data style: `2026-08-23T11:12:40.114Z`."""
    d = ms_to_datetime(ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def iso_micro(ms: int) -> str:
    """Aitronos style: `2026-01-12T07:19:20.123000+00:00`."""
    return ms_to_datetime(ms).isoformat(timespec="microseconds")


def stage(t: int, start: int, end: int, waiting: str, working: str, outcome: str) -> str:
    """The status at `t` of an entity that waits until `start`, works until `end`, then keeps
    its outcome."""
    if t < start:
        return waiting
    return working if t < end else outcome


def day_start_ms(ms: int) -> int:
    return ms - ms % DAY_MS


def parse_date_ms(text: str) -> int | None:
    """Parse a strict `YYYY-MM-DD` into the day's first millisecond (UTC)."""
    if len(text) != 10:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1000


def base36(n: int, width: int) -> str:
    chars = []
    for _ in range(width):
        n, r = divmod(n, 36)
        chars.append(_BASE36[r])
    return "".join(reversed(chars))


def make_id(prefix: str, at_ms: int, rng: random.Random, tail: int = 10) -> str:
    """Ids look like the real ones: a base36 time part, then random characters."""
    return prefix + base36(at_ms, 8) + "".join(rng.choice(_BASE36) for _ in range(tail))
