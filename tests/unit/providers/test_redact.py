"""Issue 17, items 3 and 8: error texts in linear time, credentials redacted before the cut."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote

import pytest

from scrapejobs_exporter.providers.redact import MESSAGE_LIMIT, Redactor, plain_text

TOKEN = "brd_tok_0123456789abcdefghijklmnopqrstuvwxyzAB"  # 46 characters, as in the report


def slices(secret: str, size: int = 20) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def leaks(text: str, secret: str = TOKEN) -> list[str]:
    return [s for s in slices(secret) if s in text]


def test_item3_markup_is_stripped_in_linear_time() -> None:
    """3: 100 KB of `<` took 6 s with the old `<[^>]+>`; a megabyte now takes milliseconds."""
    for body in (b"<" * 1_000_000, b"<a" * 500_000, b"<" + b"a" * 1_000_000):
        started = time.perf_counter()
        plain_text(body)
        assert time.perf_counter() - started < 0.5
    assert plain_text(b"<html><b>Job</b>\n\n not   found</html>") == "Job not found"


def test_item8_a_token_echoed_after_other_text_is_redacted_before_the_cut() -> None:
    """8: with truncation at 120 first, 41 of the token's 46 characters leaked."""
    redact = Redactor([f"Bearer {TOKEN}", TOKEN])
    for prefix in range(0, 160, 7):
        text = "x" * prefix + TOKEN + " tail"
        out = redact(text)
        assert not leaks(out), (prefix, out)
        assert len(out) <= MESSAGE_LIMIT


@pytest.mark.parametrize(
    "echo",
    [
        quote(TOKEN, safe=""),
        base64.b64encode(TOKEN.encode()).decode(),
        base64.b64encode(f"Bearer {TOKEN}".encode()).decode(),
        base64.b64encode(f"user:{TOKEN}".encode()).decode(),
        base64.urlsafe_b64encode(TOKEN.encode()).decode(),
        TOKEN[5:35],  # a partial echo
        TOKEN[:25] + "</b>",
    ],
)
def test_item8_encoded_and_partial_echoes_are_redacted(echo: str) -> None:
    redact = Redactor([TOKEN])
    out = redact(f"invalid credentials: {echo} (request 12)")
    assert "<secret>" in out
    assert not any(part in out for part in slices(echo)), out
    assert not leaks(out)


def test_emails_are_redacted_and_ordinary_text_is_kept() -> None:
    redact = Redactor([TOKEN])
    assert redact("Job not found; ask ops@example.com") == "Job not found; ask <e-mail>"
    assert redact("x" * 500).endswith("…")
