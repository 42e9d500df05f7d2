"""Tolerant field access for provider JSON.

The providers' docs and live APIs disagree on key casing (`Status` vs `status`) and sometimes on
types, so every parser reads through `Fields`: keys are matched case-insensitively, a value of the
wrong type is dropped (and remembered in `invalid`), and a missing value stays `None`, never 0.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from scrapejobs_exporter.providers.ids import check_id, safe_text

__all__ = ["Fields", "ParseError", "parse_timestamp"]


class ParseError(ValueError):
    """A response body is not the JSON object an endpoint documents."""


class Fields:
    """Case-insensitive, type-tolerant view of one JSON object."""

    __slots__ = ("_data", "invalid", "refused")

    def __init__(self, body: Any, what: str) -> None:
        if not isinstance(body, dict):
            raise ParseError(f"{what}: expected a JSON object, got {_json_type(body)}")
        data: dict[str, Any] = {}
        for key, value in body.items():
            lowered = str(key).lower()
            # The exact lower-case key wins over a Capitalised duplicate.
            if lowered not in data or key == lowered:
                data[lowered] = value
        self._data = data
        self.invalid: list[str] = []
        # (field, reason) of ids refused (see `ids.check_id`), counted by the HTTP client.
        self.refused: list[tuple[str, str]] = []

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def raw(self, key: str) -> Any:
        return self._data.get(key)

    def _bad(self, key: str) -> None:
        self.invalid.append(key)

    def text(self, key: str) -> str | None:
        """A string, made safe to print (surrogates replaced, length capped)."""
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return safe_text(value)
        self._bad(key)
        return None

    def ident(self, key: str, kind: str, asked: str | None = None) -> str | None:
        """An id of `kind` (see `ids.ID_SHAPES`), or None when it is missing or refused.

        With `asked` (the id we requested), that id is the answer: a body naming another one is
        refused as a `mismatch` (labels never come from the body)."""
        value = self._data.get(key)
        if value is None or value == "":
            return asked
        if not isinstance(value, str):
            self._bad(key)
            return asked
        if asked is not None:
            if value != asked:
                self.refused.append((key, "mismatch"))
            return asked
        reason = check_id(kind, value)
        if reason is not None:
            self.refused.append((key, reason))
            return None
        return value

    def number(self, key: str) -> float | None:
        value = self._data.get(key)
        if value is None:
            return None
        number = _to_number(value)
        if number is None:
            self._bad(key)
        return number

    def integer(self, key: str) -> int | None:
        number = self.number(key)
        if number is None:
            return None
        if number != int(number):
            self._bad(key)
            return None
        return int(number)

    def boolean(self, key: str) -> bool | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        self._bad(key)
        return None

    def timestamp(self, key: str) -> float | None:
        value = self._data.get(key)
        if value is None or value == "":
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            self._bad(key)
        return parsed

    def text_list(self, key: str) -> list[str] | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        self._bad(key)
        return None


def _to_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float: as good as infinite
            return None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


_NAIVE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


def parse_timestamp(value: Any) -> float | None:
    """ISO-8601 (with `Z`, an offset, or none meaning UTC) to Unix seconds."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # fromisoformat accepts 1-6 fraction digits on 3.11; longer fractions are truncated.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        if not _NAIVE_ISO.match(text):
            return None
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
