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


# --- issue 17, item 10: values with newlines or ANSI codes cannot forge or repaint lines -----

FORGED = "j_1\n2026-11-30 00:00:00 ERROR scrapejobs_exporter: forged\x1b[2J\x1b[31m\r\u2028\x9b"


def test_escape_control() -> None:
    from scrapejobs_exporter.logs import escape_control

    assert escape_control("a\nb\x1b[31mc\r\td\x00\x7f\x9b\u2028") == (
        "a\\nb\\x1b[31mc\\r\\td\\x00\\x7f\\x9b\\u2028"
    )
    assert escape_control("plain ünï €") == "plain ünï €"


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_logged_values_stay_on_one_line(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from scrapejobs_exporter import logs

    stream = io.StringIO()
    monkeypatch.setattr(logs.sys, "stderr", stream)
    logs.setup_logging("info", fmt)
    try:
        logging.getLogger("scrapejobs_exporter.poller").warning("brightdata job %s: down", FORGED)
        try:
            raise ValueError("ours")
        except ValueError:
            logging.getLogger("scrapejobs_exporter").exception("a bug %s", "\x1b[0m")
    finally:
        logging.getLogger().handlers.clear()
    out = stream.getvalue()
    assert "\x1b" not in out and "\u2028" not in out and "\x9b" not in out
    lines = out.splitlines()
    assert len(lines) == 2, out  # the forged line stays inside the first record
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert "forged" in entries[0]["msg"] and "Traceback" in entries[1]["exc"]
