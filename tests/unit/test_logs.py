"""Issue 17, item 10: values with newlines or ANSI codes cannot forge or repaint log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from scrapejobs_exporter import logs
from scrapejobs_exporter.logs import escape_control

FORGED = "j_1\n2026-11-30 00:00:00 ERROR scrapejobs_exporter: forged\x1b[2J\x1b[31m\r\u2028\x9b"


def test_escape_control() -> None:
    assert escape_control("a\nb\x1b[31mc\r\td\x00\x7f\x9b\u2028") == (
        "a\\nb\\x1b[31mc\\r\\td\\x00\\x7f\\x9b\\u2028"
    )
    assert escape_control("plain ünï €") == "plain ünï €"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logged_values_stay_on_one_line(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
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
    lines = out.splitlines()
    assert "\x1b" not in out and "\u2028" not in out and "\x9b" not in out
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert len(entries) == 2 and "\\n" in entries[0]["msg"]
    else:
        assert lines[0].endswith("down") and "forged" in lines[0]
        assert "Traceback" in out  # our own traceback keeps its lines
