"""logfmt and JSON log lines."""

from __future__ import annotations

import json
import logging

import pytest

from scrapejobs_exporter.logs import JsonFormatter, LogfmtFormatter, logfmt


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ("a=b", '"a=b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("tab\there", '"tab\\there"'),
        ("https://x/y?z=1", '"https://x/y?z=1"'),
        (42, "42"),
        (None, '""'),
    ],
)
def test_logfmt_quotes_only_what_needs_it(value: object, shown: str) -> None:
    assert logfmt({"k": value}) == f"k={shown}"


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("scrapejobs_exporter.poller", level, __file__, 1, msg, (), None)


def test_logfmt_formatter_line() -> None:
    line = LogfmtFormatter().format(_record(logging.WARNING, 'target "j_1" failed: HTTP 503'))
    ts, rest = line.split(" ", 1)
    assert ts.startswith("ts=") and ts.endswith("Z")
    assert (
        rest
        == 'level=warn logger=scrapejobs_exporter.poller msg="target \\"j_1\\" failed: HTTP 503"'
    )


def test_json_formatter_uses_the_same_level_names() -> None:
    entry = json.loads(JsonFormatter().format(_record(logging.WARNING, "x")))
    assert entry["level"] == "warn" and entry["msg"] == "x"
