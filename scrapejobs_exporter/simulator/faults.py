"""Fault injection rules and the body mutations they apply.

Fault decisions draw from their own seeded RNG so that switching faults on never
changes the simulated world, and a run with the same faults is reproducible.
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass
from typing import Any

# Faults answered instead of the real handler.
TRANSPORT_FAULTS = ("http_500", "http_503", "http_429", "timeout", "reset", "html")
# Faults that change a normal 200 JSON answer.
BODY_FAULTS = (
    "bad_json",
    "wrong_types",
    "missing_fields",
    "unknown_status",
    "capitalised_keys",
    "huge_body",
    "brd_error_header",
)
FAULT_KINDS = (*TRANSPORT_FAULTS, "slow", *BODY_FAULTS)
DEFAULT_RETRY_AFTER = 1.0
DEFAULT_SLOW_DELAY = 5.0
HUGE_BODY_BYTES = 20 * 1024 * 1024
UNKNOWN_STATUS = "mystery_state"
# The legacy /dca/log example kept these keys lower-case.
LEGACY_LOWER_KEYS = frozenset({"dup_inputs", "created", "started", "finished", "trigger"})
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>\n"
)


class FaultSpecError(ValueError):
    """A POST /_sim/faults body that cannot be turned into a rule."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    fault: str
    rate: float
    path: str | None
    retry_after: float
    delay: float

    def matches(self, path: str) -> bool:
        return self.path is None or re.search(self.path, path) is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "fault": self.fault,
            "rate": self.rate,
            "path": self.path,
            "retry_after": self.retry_after,
            "delay": self.delay,
        }


def parse_rule(spec: Any) -> FaultRule:
    if not isinstance(spec, dict):
        raise FaultSpecError("body must be a JSON object")
    fault = spec.get("fault")
    if fault not in FAULT_KINDS:
        raise FaultSpecError(f"fault must be one of {', '.join(FAULT_KINDS)}")
    rate = _number(spec, "rate", 1.0)
    if not 0.0 <= rate <= 1.0:
        raise FaultSpecError("rate must be between 0 and 1")
    path = spec.get("path")
    if path is not None:
        if not isinstance(path, str):
            raise FaultSpecError("path must be a regular expression string")
        try:
            re.compile(path)
        except re.error as exc:
            raise FaultSpecError(f"path is not a valid regular expression: {exc}") from exc
    return FaultRule(
        fault=fault,
        rate=rate,
        path=path,
        retry_after=_number(spec, "retry_after", DEFAULT_RETRY_AFTER),
        delay=_number(spec, "delay", DEFAULT_SLOW_DELAY),
    )


def _number(spec: dict[str, Any], key: str, default: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultSpecError(f"{key} must be a non-negative number")
    return float(value)


class FaultInjector:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"{seed}:faults")
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def clear(self) -> None:
        self.rules.clear()

    def pick(self, path: str) -> FaultRule | None:
        """The first matching rule whose dice roll fires, if any."""
        for rule in self.rules:
            if rule.matches(path) and self.rng.random() < rule.rate:
                return rule
        return None


# ----- body mutations -------------------------------------------------------


def truncated_json(body: Any) -> bytes:
    text = json.dumps(body).encode()
    return text[: max(1, len(text) // 2)]


def with_wrong_types(body: Any, rng: random.Random) -> Any:
    """Numbers become strings or wrapper objects; statuses become numbers."""
    if isinstance(body, dict):
        return {
            k: (
                rng.randint(0, 9)
                if k == "status" and isinstance(v, str)
                else with_wrong_types(v, rng)
            )
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [with_wrong_types(v, rng) for v in body]
    if isinstance(body, int | float) and not isinstance(body, bool):
        return str(body) if rng.random() < 0.7 else {"value": body}
    return body


def with_missing_fields(body: Any, rng: random.Random) -> Any:
    """Drop random keys from every object; `status` goes half of the time."""
    if isinstance(body, dict):
        kept = {}
        for k, v in body.items():
            drop_p = 0.5 if k == "status" else 0.2
            if k in ("data", "jobs") or rng.random() >= drop_p:
                kept[k] = with_missing_fields(v, rng)
        return kept
    if isinstance(body, list):
        return [with_missing_fields(v, rng) for v in body]
    return body


def with_unknown_status(body: Any) -> Any:
    if isinstance(body, dict):
        return {
            k: UNKNOWN_STATUS if k == "status" else with_unknown_status(v) for k, v in body.items()
        }
    if isinstance(body, list):
        return [with_unknown_status(v) for v in body]
    return body


def legacy_log_keys(body: dict[str, Any]) -> dict[str, Any]:
    """The old /dca/log casing: `Id, Status, ..., Queue_time` but `created`, `trigger`..."""
    return {(k if k in LEGACY_LOWER_KEYS else k[:1].upper() + k[1:]): v for k, v in body.items()}


def capitalised_keys(body: Any) -> Any:
    if isinstance(body, dict):
        return {k[:1].upper() + k[1:]: capitalised_keys(v) for k, v in body.items()}
    if isinstance(body, list):
        return [capitalised_keys(v) for v in body]
    return body


@functools.cache
def _padding() -> bytes:
    return b"x" * HUGE_BODY_BYTES


def huge_json(body: Any) -> bytes:
    """The normal body plus ~20 MB of padding, still valid JSON."""
    text = json.dumps(body).encode()
    if isinstance(body, dict) and body:
        return text[:-1] + b',"padding":"' + _padding() + b'"}'
    # Whitespace between array items is valid JSON and keeps the items intact.
    return text[:1] + b" " * HUGE_BODY_BYTES + text[1:]
