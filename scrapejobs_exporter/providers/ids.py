"""What a provider's string may be before we keep it: ids of a documented shape, text safe to print.

A provider's reply is input like any other (README, "Hostile input"). Ids go into URL
paths, label values and log lines, so one that does not look like the documented kind (prefix,
characters, length) is refused; other strings are kept, with lone surrogates (valid JSON, not
encodable as UTF-8) replaced and the length capped, so that no reply can break a render.
"""

from __future__ import annotations

import re

__all__ = [
    "ID_CHARS",
    "ID_SHAPES",
    "MAX_ID_LENGTH",
    "MAX_TEXT_LENGTH",
    "REFUSED_REASONS",
    "check_id",
    "safe_text",
]

MAX_ID_LENGTH = 200  # real ids are about 20 characters; the config caps its ids the same way
MAX_TEXT_LENGTH = 512
# The characters every documented id is made of (base36 after a prefix); also the config's rule.
ID_CHARS = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_TAIL = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
# Documented prefixes (docs/api.md 1.3): both `j_` and `vj_` (and `hp_`) are real Studio jobs.
ID_SHAPES: dict[str, re.Pattern[str]] = {
    "job": re.compile(rf"(?:j|vj|hp)_{_TAIL}"),
    "collector": re.compile(rf"c_{_TAIL}"),
    "snapshot": re.compile(rf"s_{_TAIL}"),
    "dataset": re.compile(rf"(?:gd|ds)_{_TAIL}"),  # gd_ documented; ds_ in a seed example
    "ai_job": re.compile(rf"ia_{_TAIL}"),
    "aitronos_job": re.compile(rf"job_{_TAIL}"),
}
# The fixed vocabulary of `scrapejobs_exporter_refused_ids_total{reason}`.
REFUSED_REASONS = ("too_long", "bad_shape", "mismatch", "duplicate")
_SURROGATES = re.compile("[\ud800-\udfff]")


def check_id(kind: str, value: str) -> str | None:
    """None when `value` is a well-formed id of `kind`, else the reason it is refused."""
    if len(value) > MAX_ID_LENGTH:
        return "too_long"
    if ID_SHAPES[kind].fullmatch(value) is None:
        return "bad_shape"
    return None


def safe_text(value: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """`value` encodable as UTF-8 (lone surrogates become U+FFFD) and at most `limit` long."""
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = _SURROGATES.sub("\ufffd", value)
    return value


def preview(value: str, limit: int = 40) -> str:
    """A short, printable rendering of a refused value for a log line."""
    shown = safe_text(value, limit)
    return ascii(shown) if len(value) <= limit else ascii(shown) + f" ({len(value)} characters)"
