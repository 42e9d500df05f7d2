"""The one place where the exporter talks HTTP to a provider.

Every call is measured (`api_requests_total`, `api_request_duration_seconds`) and every failure is
turned into an `ApiError` whose `reason` comes from a small fixed set, so that errors become metric
label values without exploding cardinality. Every call, retries included, passes the provider's
`ProviderGate` (token bucket, 429 pauses, circuit breaker; see `exporter.resilience`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import zlib
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from scrapejobs_exporter import __version__
from scrapejobs_exporter.providers.fields import ParseError
from scrapejobs_exporter.providers.ids import REFUSED_REASONS, preview
from scrapejobs_exporter.providers.redact import Redactor, plain_text
from scrapejobs_exporter.resilience import (
    MAX_PAUSE,
    RETRYABLE,
    Policy,
    ProviderGate,
    Refused,
    Turn,
)

if TYPE_CHECKING:  # telemetry -> metrics -> providers -> here: only a type
    from scrapejobs_exporter.telemetry import Telemetry

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "ApiError",
    "HttpClient",
    "Params",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_ERROR_HEADERS = ("x-brd-error", "x-luminati-error")
T = TypeVar("T")
# A request's query parameters.
Params = dict[str, str | int]


class ApiError(Exception):
    """A provider call that did not yield a usable body.

    `reason` is one of `telemetry.ERROR_REASONS`, or `circuit_open` / `rate_limited` when the
    gate refused the call without sending it (`sent` is then False, and no error is counted);
    `status` is the HTTP status when there was one.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.sent = sent

    @property
    def short(self) -> str:
        """`HTTP 404: Job not found`, or `timeout: ...` for transport errors."""
        head = f"HTTP {self.status}" if self.status is not None else self.reason
        return f"{head}: {self}"


class HttpClient:
    """A thin wrapper around one shared `httpx.AsyncClient` per provider. Every call passes the
    provider's gate, which also names the provider and holds its telemetry and policy: a client
    built around a gate handed over from a replaced one cannot disagree with it."""

    def __init__(
        self,
        gate: ProviderGate,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        *,
        max_connections: int = 16,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        proxy: str | None = None,
    ) -> None:
        self.gate = gate
        self.base_url = base_url
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._redact = Redactor(_secret_values(headers))
        self._refusals_seen: set[tuple[str, str, str]] = set()
        for reason in REFUSED_REASONS:  # present from the start, so increase() sees the first
            gate.telemetry.refused_ids.labels(gate.provider, reason)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._client = httpx.AsyncClient(
            headers={
                "User-Agent": f"scrapejobs-exporter/{__version__}",
                "Accept": "application/json",
                # No compression asked for: a small compressed body can inflate to gigabytes.
                "Accept-Encoding": "identity",
                **headers,
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=limits,
            transport=transport,
            # An explicit proxy, else httpx's trust_env rules: HTTPS_PROXY, HTTP_PROXY,
            # ALL_PROXY and NO_PROXY from the environment, as curl and Go programs read them.
            proxy=proxy,
            trust_env=True,
        )

    @property
    def provider(self) -> str:
        return self.gate.provider

    @property
    def telemetry(self) -> Telemetry:
        return self.gate.telemetry

    @property
    def policy(self) -> Policy:
        return self.gate.policy

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(
        self,
        endpoint: str,
        path: str,
        parse: Callable[[Any], T],
        params: Params | None = None,
    ) -> T:
        """GET `path` and parse it; a body the parser rejects counts as a `bad_body` error."""
        body = await self.get_json(endpoint, path, params)
        try:
            result = parse(body)
        except ParseError as exc:
            self._count_error(endpoint, "bad_body")
            raise ApiError("bad_body", self._redact(str(exc))) from None
        self._note_refusals(endpoint, getattr(result, "refused", ()))
        return result

    def _note_refusals(self, endpoint: str, refused: tuple[tuple[str, str], ...]) -> None:
        """Count ids a reply named that the parser refused; log each kind of refusal once."""
        for field, reason in refused:
            self.telemetry.refused_ids.labels(self.provider, reason).inc()
            seen = (endpoint, field, reason)
            if seen not in self._refusals_seen:
                self._refusals_seen.add(seen)
                log.warning(
                    "%s %s: refused the `%s` a reply named (%s); further ones are counted in "
                    "scrapejobs_exporter_refused_ids_total",
                    self.provider,
                    endpoint,
                    field,  # one of our parsers' key names, not the refused value
                    reason.replace("_", " "),
                )

    async def get_json(self, endpoint: str, path: str, params: Params | None = None) -> Any:
        """GET `path` and return its decoded JSON; `endpoint` is the path template for labels."""
        return await self.request_json("GET", endpoint, path, params=params)

    async def request_json(
        self,
        method: Literal["GET", "POST"],
        endpoint: str,
        path: str,
        *,
        params: Params | None = None,
        body: Any = None,
    ) -> Any:
        """Send with retries: timeouts, dropped connections and 5xx only, with jittered backoff.

        Only GETs are retried: a POST that timed out may have reached the provider (a second
        AI-flow trigger would start a second flow)."""
        attempts = self.policy.attempts if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._through_gate(method, endpoint, path, params, body)
            except ApiError as exc:
                if exc.reason not in RETRYABLE or attempt >= attempts:
                    raise
                delay = self.policy.retry_delay(attempt)
                log.debug(
                    "%s %s: %s; retry %d in %.2fs",
                    self.provider,
                    endpoint,
                    exc.short,
                    attempt,
                    delay,
                )
                self.telemetry.api_retries.labels(self.provider, endpoint).inc()
                await self.gate.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _through_gate(
        self, method: str, endpoint: str, path: str, params: Params | None, body: Any
    ) -> Any:
        try:
            async with self.gate.turn() as turn:
                try:
                    return await self._attempt(method, endpoint, path, params, body)
                except ApiError as exc:
                    _report(turn, exc)
                    raise
        except Refused as exc:
            raise ApiError(exc.reason, str(exc), sent=False) from None

    async def _attempt(
        self, method: str, endpoint: str, path: str, params: Params | None, body: Any
    ) -> Any:
        started = time.perf_counter()
        code = "error"
        try:
            async with asyncio.timeout(self.timeout):
                response, content = await self._send(method, path, params, body)
            code = str(response.status_code)
            self._note_rate_limit_headers(response)
            _raise_for_response(response, content)
            return _decode_json(response, content)
        except ApiError as exc:
            code = str(exc.status) if exc.status is not None else exc.reason
            self._count_error(endpoint, exc.reason)
            exc.args = (self._redact(str(exc)),)
            raise
        except TimeoutError:
            code = "timeout"
            self._count_error(endpoint, "timeout")
            raise ApiError("timeout", f"no answer within {self.timeout:g}s") from None
        except httpx.TimeoutException as exc:
            code = "timeout"
            self._count_error(endpoint, "timeout")
            raise ApiError("timeout", _describe(exc)) from None
        except httpx.TransportError as exc:
            code = "connect"
            self._count_error(endpoint, "connect")
            raise ApiError("connect", _describe(exc)) from None
        finally:
            elapsed = time.perf_counter() - started
            self.telemetry.api_requests.labels(self.provider, endpoint, code).inc()
            self.telemetry.api_request_duration.labels(self.provider, endpoint).observe(elapsed)

    async def _send(
        self, method: str, path: str, params: Params | None, body: Any
    ) -> tuple[httpx.Response, bytes]:
        request = self._client.build_request(method, self.base_url + path, params=params, json=body)
        response = await self._client.send(request, stream=True)
        try:
            content = await self._read_capped(response)
        finally:
            await response.aclose()
        return response, content

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The body, inflated as it arrives if it came compressed anyway; the size cap holds
        for the bytes on the wire and for the inflated ones."""
        cap = self.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and len(declared) < 20 and int(declared) > cap:
            raise _too_large(response, cap)
        inflate = _Inflater.for_response(response, cap)
        chunks, size, wire = [], 0, 0
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            if wire > cap:
                raise _too_large(response, cap)
            if inflate is not None:
                chunk = inflate.feed(chunk)
            size += len(chunk)
            if size > cap:
                raise _too_large(response, cap)
            chunks.append(chunk)
        if inflate is not None:
            chunks.append(inflate.finish())
        return b"".join(chunks)

    def _count_error(self, endpoint: str, reason: str) -> None:
        self.telemetry.api_errors.labels(self.provider, endpoint, reason).inc()

    def _note_rate_limit_headers(self, response: httpx.Response) -> None:
        headers = response.headers
        limit = headers.get("x-ratelimit-limit") or headers.get("x-ratelimit-limit-requests")
        remaining = headers.get("x-ratelimit-remaining") or headers.get(
            "x-ratelimit-remaining-requests"
        )
        for value, gauge in (
            (limit, self.telemetry.rate_limit_limit),
            (remaining, self.telemetry.rate_limit_remaining),
        ):
            number = _to_float(value)
            if number is not None:
                gauge.labels(self.provider).set(number)
        left = _to_float(remaining)
        if left is not None:
            reset = headers.get("x-ratelimit-reset") or headers.get("x-ratelimit-reset-requests")
            reset_in = _reset_in(reset, headers.get("date"))
            if reset_in is None and response.status_code == 429:
                # A refusal without a reset time: its (capped) Retry-After says when to ask
                # again; the announced 0 must not outlast it.
                reset_in = _retry_after(response)
            self.gate.announce(left, reset_in)


def _report(turn: Turn, exc: ApiError) -> None:
    """Tell the gate what a failure says about the provider."""
    if exc.reason == "rate_limited":
        turn.rate_limited(exc.retry_after)
    elif exc.reason in RETRYABLE:
        turn.failure()
    # Anything else is an answer from a working API: the call counts as a success for the breaker.


def _secret_values(headers: dict[str, str]) -> tuple[str, ...]:
    values = {v for v in headers.values() if v}
    values |= {v.split(" ", 1)[1] for v in values if v.startswith("Bearer ") and len(v) > 7}
    return tuple(values)


def _too_large(response: httpx.Response, cap: int) -> ApiError:
    return ApiError(
        "too_large", f"response body exceeds {cap} bytes; refused", status=response.status_code
    )


class _Inflater:
    """Streamed gzip/deflate decoding that never makes more than `cap` + 1 bytes: a body sent
    compressed although we asked for `identity` is inflated under the same size cap."""

    def __init__(self, encoding: str, wbits: int, cap: int, status: int) -> None:
        self.encoding = encoding
        self._decoder = zlib.decompressobj(wbits)
        self._room = cap + 1  # one byte past the cap is enough to know it is too large
        self._status = status

    @classmethod
    def for_response(cls, response: httpx.Response, cap: int) -> _Inflater | None:
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding in ("", "identity"):
            return None
        if encoding in ("gzip", "x-gzip", "deflate"):
            # 32 + MAX_WBITS: a gzip or zlib header, whichever comes (RFC 9110's deflate is zlib).
            return cls(encoding, 32 + zlib.MAX_WBITS, cap, response.status_code)
        raise ApiError(
            "bad_body",
            f"unsupported Content-Encoding {preview(encoding)} (identity was asked for)",
            status=response.status_code,
        )

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._decoder.decompress(data, self._room)
        except zlib.error as exc:
            raise ApiError(
                "bad_body", f"cannot decode {self.encoding} body: {exc}", status=self._status
            ) from None
        self._room -= len(out)
        if self._room <= 0 or self._decoder.unconsumed_tail:
            # More output than the cap allows: stop here, without inflating the rest.
            raise ApiError("too_large", "inflated response body exceeds the size cap; refused",
                           status=self._status)  # fmt: skip
        return out

    def finish(self) -> bytes:
        if not self._decoder.eof:
            raise ApiError(
                "bad_body", f"truncated {self.encoding} body", status=self._status
            ) from None
        return b""


def _raise_for_response(response: httpx.Response, content: bytes) -> None:
    status = response.status_code
    headers = response.headers
    error_header = next((headers[h] for h in _ERROR_HEADERS if h in headers), None)
    if status == 429:
        raise ApiError(
            "rate_limited",
            _snippet(content) or "Too Many Requests",
            status=status,
            retry_after=_retry_after(response),
        )
    if status >= 500:
        raise ApiError("http_5xx", _snippet(content) or response.reason_phrase, status=status)
    if status >= 400:
        raise ApiError("http_4xx", _snippet(content) or response.reason_phrase, status=status)
    if error_header is not None:
        # Bright Data flags refusals in headers, sometimes on a 2xx; the body is then meaningless.
        code = response.headers.get("x-brd-error-code", "")
        rate = "rate" in error_header.lower() or code == "client_10110"
        detail = _one_line(error_header)
        extra = [x for x in (code, _one_line(headers.get("x-brd-err-msg", ""))) if x]
        if extra:
            detail += f" ({'; '.join(extra)})"
        # Not cut short here: the message is redacted first, then shortened (`_attempt`).
        raise ApiError(
            "rate_limited" if rate else "http_4xx",
            f"provider error header on HTTP {status}: {detail}",
            status=status,
            retry_after=_retry_after(response),
        )
    if status >= 300:
        raise ApiError("http_4xx", f"unexpected redirect ({status})", status=status)


def _decode_json(response: httpx.Response, content: bytes) -> Any:
    if not content.strip():
        raise ApiError("bad_body", "empty response body", status=response.status_code)
    try:
        return json.loads(content)
    # ValueError also covers integers past Python's digit limit; RecursionError, deep nesting.
    except (ValueError, RecursionError):
        kind = response.headers.get("content-type", "unknown type").split(";")[0]
        raise ApiError(
            "bad_body", f"response is not JSON ({kind}): {_snippet(content)}", response.status_code
        ) from None


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait, from `Retry-After` (seconds or an HTTP date), capped at `MAX_PAUSE`.

    The one place a provider's wish becomes a number: every pause built from it is bounded
    (`Retry-After: 99999999999` must not silence a provider for three thousand years)."""
    value = response.headers.get("retry-after") or response.headers.get("x-ratelimit-retry-after")
    if not value:
        return None
    number = _to_float(value)
    if number is None:
        try:
            number = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if math.isnan(number):
        return None
    return min(MAX_PAUSE, max(0.0, number))


def _reset_in(value: str | None, date: str | None) -> float | None:
    """Seconds until an `X-RateLimit-Reset`: epoch seconds (measured against the response's
    `Date`, the provider's own clock, when it sends one), or a small number of seconds."""
    number = _to_float(value)
    if number is None:
        return None
    if number < 1e9:  # not a timestamp: seconds from now
        return number
    now = time.time()
    if date:
        with contextlib.suppress(TypeError, ValueError):
            now = parsedate_to_datetime(date).timestamp()
    return number - now


def _to_float(value: str | None) -> float | None:
    if value is None or len(value) > 64:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _snippet(content: bytes) -> str:
    # Plain text only; `_attempt` redacts credentials and then shortens it.
    return plain_text(content)


def _one_line(text: str) -> str:
    return " ".join(text[:4096].split())


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
