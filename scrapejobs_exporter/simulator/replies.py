"""Provider-specific answers: the `Reply` value, auth checks and error bodies.

Each provider (and each Bright Data API family) words its errors differently;
this module is the single place that knows how.
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scrapejobs_exporter.simulator.timefmt import iso_ms

BRD_RATE_LIMIT_HEADERS = {
    "x-brd-error": "Requests rate from account is too high",
    "x-brd-error-code": "client_10110",
    "x-brd-err-msg": "Requests rate from account is too high, slow down",
}


@dataclass(slots=True)
class Reply:
    """An API answer before faults and serialisation."""

    status: int = 200
    body: Any = None  # JSON value, used when `text` is None
    text: str | None = None  # plain-text body
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_json_ok(self) -> bool:
        return self.status == 200 and self.text is None


def text_reply(status: int, text: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, text=text, headers=headers or {})


def json_reply(status: int, body: Any) -> Reply:
    return Reply(status=status, body=body)


class Family(enum.Enum):
    """How an endpoint authenticates and words its errors."""

    DCA = "dca"  # Scraper Studio: text bodies
    DATASETS = "datasets"  # Datasets v3 list: documented plain-text 401s
    DATASETS_PROGRESS = "datasets_progress"  # Monitor Progress: JSON 401
    AITRONOS = "aitronos"  # {success:false, error:{...}} envelope

    @property
    def is_aitronos(self) -> bool:
        return self is Family.AITRONOS


def check_auth(
    family: Family, headers: Mapping[str, str], brd_token: str, ai_key: str
) -> Reply | None:
    """None when the request is authorised, else the provider's 401."""
    if family.is_aitronos:
        return _check_aitronos(headers, ai_key)
    header = headers.get("Authorization")
    scheme, _, token = (header or "").partition(" ")
    if header and scheme.lower() == "bearer" and token.strip() == brd_token:
        return None
    if family is Family.DCA:
        return text_reply(401, "Unauthorized")
    if family is Family.DATASETS_PROGRESS:
        return json_reply(401, {"error": "User authentication is required"})
    if not header:
        return text_reply(401, "Credentials are missing")
    if scheme.lower() != "bearer":
        return text_reply(401, "Auth method is not supported")
    return text_reply(401, "Invalid credentials")


def _check_aitronos(headers: Mapping[str, str], key: str) -> Reply | None:
    scheme, _, bearer = headers.get("Authorization", "").partition(" ")
    offered = [headers.get("X-API-Key"), headers.get("api-key")]
    if scheme.lower() == "bearer":
        offered.append(bearer.strip())
    if key in offered:
        return None
    if any(offered):
        return aitronos_error(
            401, "INVALID_API_KEY", "Your API key is invalid", "API key not found"
        )
    return aitronos_error(401, "INVALID_API_KEY", "Your API key is invalid", "No API key provided")


def aitronos_error(
    status: int, code: str, message: str, system_message: str, now_ms: int | None = None
) -> Reply:
    """The documented Aitronos error envelope."""
    at_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    timestamp = iso_ms(at_ms)[:19] + "Z"
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "system_message": system_message,
        "type": "client_error" if status < 500 else "server_error",
        "status": status,
        "details": {},
        "trace_id": str(uuid.uuid4()),
        "timestamp": timestamp,
    }
    return json_reply(status, {"success": False, "error": error})


def server_error(family: Family, status: int) -> Reply:
    if family.is_aitronos:
        code = "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE"
        return aitronos_error(status, code, "The server encountered an error", code.lower())
    return text_reply(status, "Internal server error" if status == 500 else "Service Unavailable")


def rate_limited(family: Family, retry_after: float) -> Reply:
    seconds = str(max(0, round(retry_after)))
    if family.is_aitronos:
        reply = aitronos_error(429, "RATE_LIMIT_EXCEEDED", "Too many requests", "rate limit")
        reply.headers.update(
            {"Retry-After": seconds, "X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0"}
        )
        return reply
    return text_reply(429, "Too Many Requests", {"Retry-After": seconds, **BRD_RATE_LIMIT_HEADERS})


def not_found(family: Family, what: str) -> Reply:
    if family.is_aitronos:
        return aitronos_error(404, "RESOURCE_NOT_FOUND", f"{what} not found", f"{what} not found")
    return json_reply(404, {"error": f"{what} not found"})


def validation_failed(family: Family, message: str) -> Reply:
    if family.is_aitronos:
        return aitronos_error(422, "VALIDATION_ERROR", message, message)
    return text_reply(400, message)
