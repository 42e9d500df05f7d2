"""Error texts from provider replies: short, plain, in linear time, and without our credentials.

A provider's error body may echo the request, and so our token, in full, in part, URL-encoded or
base64-encoded. Texts end up in logs, on `/`, in `/api/targets` and in `once` output, so every
message quoting a reply is reduced here: markup and whitespace collapsed (no backtracking
regex: a body of `<<<<...` costs one pass), credentials redacted *before* the text is cut short,
then e-mail addresses, then the cut.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MESSAGE_LIMIT", "Redactor", "plain_text"]

MESSAGE_LIMIT = 160  # characters of an error message kept
SCAN_BYTES = 64 * 1024  # of a body looked at for its message; the rest cannot be shown anyway
PLAIN_LIMIT = 4096  # characters of plain text handed to the redactor
PARTIAL = 10  # a run of this many characters of a credential (or an encoding of it) is redacted
MIN_SECRET = 6  # shorter values would redact ordinary words
SECRET = "<secret>"
# `[^<>]*` cannot run past the next `<`: each character is looked at a bounded number of times.
_TAGS = re.compile(r"<[^<>]*>")
_EMAIL = re.compile(r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")


def plain_text(content: bytes) -> str:
    """The start of a body as one line of plain text: tags dropped, whitespace collapsed."""
    text = content[:SCAN_BYTES].decode("utf-8", "replace")
    return " ".join(_TAGS.sub(" ", text).split())[:PLAIN_LIMIT]


def _base64_forms(value: bytes) -> set[str]:
    """Base64 of `value` at each of the three alignments it can have inside a longer encoded
    text (e.g. `Bearer <token>` or `user:<token>`), without the edge characters that depend on
    the neighbouring bytes."""
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value).decode().rstrip("=")
        core = encoded[4 if offset else 0 : len(encoded) - 4 if len(encoded) > 8 else None]
        for form in (core, core.replace("+", "-").replace("/", "_")):
            if len(form) >= MIN_SECRET:
                forms.add(form)
    return forms


def _forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    forms |= _base64_forms(secret.encode())
    return {f for f in forms if len(f) >= MIN_SECRET}


class Redactor:
    """Replaces credentials (whole, partial runs, encoded) and e-mail addresses in a text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET:
                forms |= _forms(secret)
        # Longest first, so a token inside `Bearer token` is not left half-replaced.
        self._forms = sorted(forms, key=len, reverse=True)
        grams = {f[i : i + PARTIAL] for f in self._forms for i in range(len(f) - PARTIAL + 1)}
        self._grams = sorted(grams)

    def __call__(self, text: str, limit: int = MESSAGE_LIMIT) -> str:
        """`text` redacted, then at most `limit` characters long."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, SECRET)
        # Partial runs only matter in what is shown: a bounded window, so the search is cheap.
        window = self._partial(text[: limit + 2 * PARTIAL])
        window = _EMAIL.sub("<e-mail>", window)
        return window if len(window) <= limit else window[: limit - 1] + "…"

    def _partial(self, text: str) -> str:
        if not self._grams or len(text) < PARTIAL:
            return text
        marked = bytearray(len(text))
        for gram in self._grams:
            start = text.find(gram)
            while start >= 0:
                marked[start : start + PARTIAL] = b"\1" * PARTIAL
                start = text.find(gram, start + 1)
        if not any(marked):
            return text
        out, i = [], 0
        while i < len(text):
            if marked[i]:
                while i < len(text) and marked[i]:
                    i += 1
                out.append(SECRET)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)
