"""aiohttp wiring: routes, auth, latency, faults, request accounting, /_sim/*."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from scrapejobs_exporter.simulator import faults as fx
from scrapejobs_exporter.simulator.api import ENDPOINTS, INVALID_JSON, Call, Handler
from scrapejobs_exporter.simulator.clock import Clock, RealClock
from scrapejobs_exporter.simulator.config import SimulatorConfig
from scrapejobs_exporter.simulator.faults import (
    FaultInjector,
    FaultRule,
    FaultSpecError,
    parse_rule,
)
from scrapejobs_exporter.simulator.ratelimits import AccountLimits
from scrapejobs_exporter.simulator.replies import (
    Family,
    Reply,
    check_auth,
    rate_limited,
    server_error,
)
from scrapejobs_exporter.simulator.world import World

REQUEST_LOG_SIZE = 100_000
TIMER_SLACK = 0.0005  # seconds: half of the event loop's timer resolution (epoll's 1 ms)
AioHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SimulatorApp:
    """Owns the HTTP side; the world itself knows nothing about HTTP."""

    def __init__(
        self,
        config: SimulatorConfig,
        world: World,
        clock: Clock,
        shutdown: asyncio.Event,
    ) -> None:
        self.config = config
        self.world = world
        self.clock = clock
        self.shutdown = shutdown
        self.faults = FaultInjector(config.seed)
        self.requests: Counter[str] = Counter()
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.limits = AccountLimits(config.limit_settings(), clock.quota_now())

    def build(self) -> web.Application:
        app = web.Application()
        for method, path, family, handler in ENDPOINTS:
            app.router.add_route(method, path, self._endpoint(method, path, family, handler))
        app.router.add_get("/_sim/state", self._sim_state)
        app.router.add_get("/_sim/requests", self._sim_requests)
        app.router.add_get("/_sim/faults", self._sim_faults_list)
        app.router.add_post("/_sim/faults", self._sim_faults_add)
        app.router.add_delete("/_sim/faults", self._sim_faults_clear)
        app.router.add_post("/_sim/advance", self._sim_advance)
        app.router.add_post("/_sim/fail", self._sim_fail)
        app.router.add_post("/_sim/unblock", self._sim_unblock)
        app.router.add_post("/_sim/speed", self._sim_speed)
        app.router.add_route("*", "/{tail:.*}", self._unmatched)
        return app

    def sync_world(self) -> None:
        self.world.advance_to(int(self.clock.now() * 1000))

    # ----- API requests ----------------------------------------------------

    def _endpoint(self, method: str, path: str, family: Family, handler: Handler) -> AioHandler:
        endpoint = f"{method} {path}"

        async def serve(request: web.Request) -> web.StreamResponse:
            arrival = asyncio.get_running_loop().time()
            entry = self._record(request.method, endpoint, family)
            response = await self._answer(request, family, handler)
            if self.config.latency > 0:
                await self._pause_until(arrival + self.config.latency)
            entry["status"] = response.status if response is not None else 0
            return response if response is not None else web.Response(status=499)

        return serve

    def _record(self, method: str, endpoint: str, family: Family | None) -> dict[str, Any]:
        self.requests[endpoint] += 1
        entry: dict[str, Any] = {"t": time.time(), "method": method, "endpoint": endpoint}
        if family is not None:
            entry["provider"] = "aitronos" if family.is_aitronos else "brightdata"
        entry["status"] = 0
        self.request_log.append(entry)
        return entry

    async def _answer(
        self, request: web.Request, family: Family, handler: Handler
    ) -> web.StreamResponse | None:
        """The response, or None when the connection was dropped or held."""
        rule = self.faults.pick(request.path)
        if rule is not None and rule.fault in fx.TRANSPORT_FAULTS:
            return await self._transport_fault(request, family, rule)
        if rule is not None and rule.fault == "slow":
            await self._pause(rule.delay)
        self.sync_world()
        denied = check_auth(
            family, request.headers, self.config.brightdata_token, self.config.aitronos_key
        )
        if denied is not None:
            return render(denied)
        refused, limit_headers = self.limits.check(family, self.clock.quota_now())
        if refused is not None:
            return render(refused)
        body = await _read_json(request) if request.method == "POST" else None
        call = Call(
            world=self.world,
            path=request.match_info,
            query=request.query,
            body=body,
            legacy_capitalised=self.config.legacy_capitalised,
        )
        reply = handler(call)
        reply.headers.update(limit_headers)
        if rule is not None and reply.is_json_ok and rule.fault in fx.BODY_FAULTS:
            return self._body_fault(rule, reply, request.path)
        return render(reply)

    async def _transport_fault(
        self, request: web.Request, family: Family, rule: FaultRule
    ) -> web.StreamResponse | None:
        if rule.fault == "http_500":
            return render(server_error(family, 500))
        if rule.fault == "http_503":
            return render(server_error(family, 503))
        if rule.fault == "http_429":
            return render(rate_limited(family, rule.retry_after))
        if rule.fault == "html":
            return web.Response(status=200, text=fx.HTML_PAGE, content_type="text/html")
        if rule.fault == "reset":
            _reset_connection(request)
            return None
        await self._hold(request)
        # Stopping: drop the held connection rather than answer it.
        _reset_connection(request)
        return None

    async def _hold(self, request: web.Request) -> None:
        """The `timeout` fault: never answer, until the client leaves or we stop."""
        while not self.shutdown.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await self._pause(0.2)

    async def _pause_until(self, deadline: float) -> None:
        """Sleep until `deadline` (the loop's clock), so that the latency asked for is the time
        from a request's arrival to its answer, the work in between included. The loop wakes on
        whole milliseconds, half a millisecond late on average: it is asked that much early."""
        seconds = deadline - TIMER_SLACK - asyncio.get_running_loop().time()
        if seconds > 0:
            await self._pause(seconds)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server is stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.shutdown.wait(), timeout=seconds)

    def _body_fault(self, rule: FaultRule, reply: Reply, path: str) -> web.StreamResponse:
        rng, body = self.faults.rng, reply.body
        if rule.fault == "bad_json":
            return _json_bytes(fx.truncated_json(body), reply.headers)
        if rule.fault == "huge_body":
            return _json_bytes(fx.huge_json(body), reply.headers)
        if rule.fault == "brd_error_header":
            reply.headers["x-brd-error"] = "Internal error, please retry"
        elif rule.fault == "wrong_types":
            reply.body = fx.with_wrong_types(body, rng)
        elif rule.fault == "missing_fields":
            reply.body = fx.with_missing_fields(body, rng)
        elif rule.fault == "unknown_status":
            reply.body = fx.with_unknown_status(body)
        elif path.startswith("/dca/log/") and isinstance(body, dict):
            reply.body = fx.legacy_log_keys(body)
        else:
            reply.body = fx.capitalised_keys(body)
        return render(reply)

    async def _unmatched(self, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith("/_sim/"):
            self._record(request.method, f"{request.method} <unmatched>", None)["status"] = 404
        return web.Response(status=404, text="Not Found")

    # ----- /_sim control endpoints -------------------------------------------

    def state(self, compact: bool = False, finished_since: float = 0.0) -> dict[str, Any]:
        """Ground truth; `compact` leaves out the per-object bodies (every job's /dca/log...),
        `finished_since` (unix seconds) the objects that finished before it."""
        self.sync_world()
        state = self.world.state(compact=compact, finished_since_ms=int(finished_since * 1000))
        state["speed"] = self.clock.speed if isinstance(self.clock, RealClock) else None
        state["requests"] = dict(self.requests)
        state["rate_limits"] = self.limits.state(self.clock.quota_now())
        return state

    async def _sim_state(self, request: web.Request) -> web.StreamResponse:
        compact = request.query.get("compact", "") not in ("", "0", "false")
        try:
            since = float(request.query.get("finished_since", "0") or 0)
        except ValueError:
            return web.json_response({"error": "finished_since must be unix seconds"}, status=400)
        state = self.state(compact=compact, finished_since=since)
        return _json_bytes(json.dumps(state, separators=(",", ":")).encode(), {})

    async def _sim_requests(self, request: web.Request) -> web.StreamResponse:
        since = float(request.query.get("since", "0") or 0)
        return web.json_response([e for e in self.request_log if e["t"] >= since])

    async def _sim_faults_list(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([r.to_json() for r in self.faults.rules])

    async def _sim_faults_add(self, request: web.Request) -> web.StreamResponse:
        try:
            rule = parse_rule(await _read_json(request))
        except FaultSpecError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.faults.add(rule)
        return web.json_response([r.to_json() for r in self.faults.rules])

    async def _sim_faults_clear(self, request: web.Request) -> web.StreamResponse:
        self.faults.clear()
        return web.json_response([])

    async def _sim_advance(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            return web.json_response({"error": "seconds must be a non-negative number"}, status=400)
        self.clock.advance(float(seconds))
        self.sync_world()
        return web.json_response({"now": self.world.now_ms / 1000})

    async def _sim_fail(self, request: web.Request) -> web.StreamResponse:
        body = await _read_json(request)
        job_id = body.get("job_id") if isinstance(body, dict) else None
        if not isinstance(job_id, str):
            return web.json_response({"error": "job_id (a string) is required"}, status=400)
        self.sync_world()
        if not self.world.fail_job(job_id):
            return web.json_response({"error": "no such running job"}, status=409)
        return web.json_response({"job_id": job_id, "status": "failed"})

    async def _sim_unblock(self, request: web.Request) -> web.StreamResponse:
        """Lift Bright Data's IP block (upstream, support does it) and forget recent 429s."""
        self.limits.brightdata.unblock()
        return web.json_response(self.limits.state(self.clock.quota_now())["brightdata"])

    async def _sim_speed(self, request: web.Request) -> web.StreamResponse:
        """Change the world's speed while running; 0 freezes it (rate limits keep real time)."""
        body = await _read_json(request)
        speed = body.get("speed") if isinstance(body, dict) else None
        if isinstance(speed, bool) or not isinstance(speed, int | float) or speed < 0:
            return web.json_response({"error": "speed must be a non-negative number"}, status=400)
        if not isinstance(self.clock, RealClock):
            return web.json_response({"error": "the manual clock has no speed"}, status=409)
        self.sync_world()
        self.clock.set_speed(float(speed))
        return web.json_response({"now": self.world.now_ms / 1000, "speed": float(speed)})


def render(reply: Reply) -> web.StreamResponse:
    if reply.text is not None:
        return web.Response(status=reply.status, text=reply.text, headers=reply.headers)
    data = json.dumps(reply.body, separators=(",", ":")).encode()
    return _json_bytes(data, reply.headers, reply.status)


def _json_bytes(data: bytes, headers: dict[str, str], status: int = 200) -> web.Response:
    return web.Response(status=status, body=data, headers=headers, content_type="application/json")


async def _read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError):
        return INVALID_JSON


def _reset_connection(request: web.Request) -> None:
    """Close with SO_LINGER 0, so the client sees a reset, not a clean EOF."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
