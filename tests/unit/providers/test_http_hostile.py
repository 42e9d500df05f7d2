"""Issue 17, items 2, 3, 4, 7 and 8 through the HTTP client, against a scripted transport."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import Callable

import httpx
import pytest

from scrapejobs_exporter.providers.brightdata import BrightDataClient
from scrapejobs_exporter.providers.http import ApiError, HttpClient, _retry_after
from scrapejobs_exporter.resilience import MAX_PAUSE, Policy, ProviderGate
from scrapejobs_exporter.telemetry import Telemetry
from tests.helpers import reply, value

BD = "https://api.brightdata.test"
TOKEN = "brd_tok_0123456789abcdefghijklmnopqrstuvwxyzAB"
ONE_TRY = Policy(attempts=1)


def client(
    handler: Callable[[httpx.Request], httpx.Response], telemetry: Telemetry | None = None
) -> BrightDataClient:
    http = HttpClient(
        ProviderGate("brightdata", 100, telemetry or Telemetry(), ONE_TRY),
        BD,
        {"Authorization": f"Bearer {TOKEN}"},
        5,
        transport=httpx.MockTransport(handler),
    )
    return BrightDataClient(http)


def gzip_bomb(inflated: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"0" * (1 << 20)
    parts = [compressor.compress(block) for _ in range(inflated >> 20)]
    return b"".join(parts) + compressor.flush()


async def test_item4_no_compression_is_asked_and_a_gzip_bomb_is_refused_streamed() -> None:
    """4: 522 KB of gzip became 512 MB (RSS 1.5 GB); now inflation stops at the cap."""
    bomb = gzip_bomb(256 << 20)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["accept-encoding"])
        return reply(200, bomb, {"content-encoding": "gzip"})

    bd = client(handler)
    tracemalloc.start()
    try:
        with pytest.raises(ApiError) as info:
            await bd.job_log("j_1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        await bd.http.aclose()
    assert seen == ["identity"]
    assert info.value.reason == "too_large"
    assert peak < 40 << 20, peak  # the 4 MB cap, a chunk and the compressed body; not 256 MB


async def test_a_small_compressed_body_sent_anyway_is_read() -> None:
    body = gzip.compress(b'{"id": "j_1", "status": "done", "lines": 3}')

    def handler(request: httpx.Request) -> httpx.Response:
        return reply(200, body, {"content-encoding": "gzip"})

    bd = client(handler)
    job = await bd.job_log("j_1")
    await bd.http.aclose()
    assert (job.status, job.lines) == ("done", 3)


@pytest.mark.parametrize(
    ("encoding", "content", "reason"),
    [("gzip", b"not gzip at all", "bad_body"), ("br", b"\x00", "bad_body"),
     ("gzip", gzip.compress(b'{"status": "done"}', mtime=0)[:-12], "bad_body")],
    # Named, not by their bytes: every xdist worker must collect the same test ids.
    ids=["not-gzip", "brotli-unsupported", "gzip-truncated"],
)  # fmt: skip
async def test_undecodable_or_unsupported_encodings_are_bad_bodies(
    encoding: str, content: bytes, reason: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return reply(200, content, {"content-encoding": encoding})

    bd = client(handler)
    with pytest.raises(ApiError) as info:
        await bd.job_log("j_1")
    await bd.http.aclose()
    assert info.value.reason == reason


async def test_item3_a_huge_markup_error_body_costs_milliseconds() -> None:
    """3: a 100 KB body of `<` took 6 s of event-loop CPU on every poll."""

    def handler(request: httpx.Request) -> httpx.Response:
        return reply(400, b"<" * 3_000_000)

    bd = client(handler)
    started = time.perf_counter()
    with pytest.raises(ApiError) as info:
        await bd.job_log("j_1")
    elapsed = time.perf_counter() - started
    await bd.http.aclose()
    assert info.value.reason == "http_4xx"
    assert elapsed < 0.5, elapsed


@pytest.mark.parametrize("prefix", [0, 60, 100, 119])
async def test_item8_an_error_body_echoing_the_token_leaks_no_part_of_it(prefix: int) -> None:
    """8: redaction after truncation at 120 characters leaked up to 41 of 46 characters."""

    def handler(request: httpx.Request) -> httpx.Response:
        text = "e" * prefix + f" invalid token {request.headers['authorization']} for you"
        return reply(401, text.encode(), {"x-brd-err-msg": "key " + TOKEN})

    bd = client(handler)
    with pytest.raises(ApiError) as info:
        await bd.job_log("j_1")
    await bd.http.aclose()
    message = info.value.short
    assert "<secret>" in message or len(message) < prefix + 20
    assert not any(TOKEN[i : i + 20] in message for i in range(len(TOKEN) - 19)), message


async def test_item8_the_error_header_path_redacts_before_shortening() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return reply(200, {}, {"x-brd-error": "denied " + "x" * 150, "x-brd-err-msg": TOKEN})

    bd = client(handler)
    with pytest.raises(ApiError) as info:
        await bd.job_log("j_1")
    await bd.http.aclose()
    assert not any(TOKEN[i : i + 20] in str(info.value) for i in range(len(TOKEN) - 19))


@pytest.mark.parametrize(
    "text",
    ["99999999999", "1e400", "inf", "Fri, 31 Dec 9999 23:59:59 GMT", "300.5", "9" * 5000],
)
def test_item7_retry_after_is_capped_where_it_is_parsed(text: str) -> None:
    """7: `Retry-After: 99999999999` kept the provider paused for 99999999520 s."""
    seconds = _retry_after(httpx.Response(429, headers={"retry-after": text}))
    assert seconds is None or 0 <= seconds <= MAX_PAUSE


def test_retry_after_nan_and_garbage_are_ignored() -> None:
    for text in ("nan", "soon", "-5"):
        seconds = _retry_after(httpx.Response(429, headers={"retry-after": text}))
        assert seconds is None or seconds == 0.0


async def test_item2_refused_ids_are_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """2: a discovered 64 KB id aborted every cycle; now it is refused, counted, logged once."""

    def handler(request: httpx.Request) -> httpx.Response:
        rows = [{"id": "j_" + "a" * 65_536}, {"id": "j_\ud800"}, {"id": "j_ok"}]
        return reply(200, {"data": rows})

    telemetry = Telemetry()
    bd = client(handler, telemetry)
    for _ in range(3):
        page = await bd.list_collector_jobs("c_1", "2026-01-01", "2026-01-02", 0, 500)
        assert [j.job_id for j in page.items] == ["j_ok"]
    await bd.http.aclose()
    assert value(telemetry.refused_ids, "brightdata", "too_long") == 3
    assert value(telemetry.refused_ids, "brightdata", "bad_shape") == 3
    assert value(telemetry.refused_ids, "brightdata", "duplicate") == 0  # present from the start
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 2  # once per kind of refusal
    assert all(len(r.getMessage()) < 300 for r in warnings)
