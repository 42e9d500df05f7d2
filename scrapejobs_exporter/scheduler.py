"""One scheduler per provider: what to send next, within that provider's own budget.

Each provider has its own gate (budget, 429 pauses, breaker: `resilience.ProviderGate`), its own
in-flight requests and its own loop, so one provider's budget, slowness or outage never delays
the other. There is no cycle and no barrier between listing and polling: whenever the gate lets
a request out, the scheduler picks the most useful one at that moment:

1. a list sweep that is due (each list is read every `poll_interval`, spaced further when the
   lists alone would take more than `LIST_SHARE` of the budget);
2. a target that no list row keeps current (named in the config, an AI flow, a job that left
   its list): never polled, down and due for a retry, or running with a status `poll_interval`
   old; a finished AI flow's low-rate re-check (it may be triggered again). Their polls are the
   only way their finish is seen and counted, and they are few;
3. a listed target never polled (or down and due for a retry): its row gave its status;
4. the running target whose values are oldest, once they are `poll_interval` old, taking turns
   with finished jobs whose counter still waits for their detail (Aitronos items found; newest
   first, given up after `OWED_FOR`);
5. a finished job's last detail poll that only adds fields, when nothing else is due;
6. a finished target's report (`kinds.ReportRead`: why a job's inputs failed, how a snapshot
   ran), once each, only when nothing else is due and the budget has room to spare (`spare`):
   those that add to a counter first, then the newest; one at a time, and a kind of report
   whose endpoint fails rests (longer after each failure) rather than trip the breaker.

With R running targets and D detail requests a minute left after the lists, every running
target's values are thus at most about R/D minutes old. Nothing is sent when nothing is due,
which keeps a daily quota for when it is needed.

Time and sleeping are injected: tests drive `step()` on a manual clock and never sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field

from scrapejobs_exporter.config import Config
from scrapejobs_exporter.discovery import Discovery, Found, ListSource, owns_static
from scrapejobs_exporter.kinds import REPORT_TRIES, ReportRead, kind_of
from scrapejobs_exporter.providers import Providers
from scrapejobs_exporter.providers.http import ApiError
from scrapejobs_exporter.resilience import RETRYABLE, ProviderGate
from scrapejobs_exporter.sharding import Shard
from scrapejobs_exporter.store import Model, Store, Target, TargetKey
from scrapejobs_exporter.telemetry import Telemetry

__all__ = ["LIST_SHARE", "ProviderScheduler"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# At most this share of the budget goes to list sweeps, when the lists are many (or the budget
# small: Aitronos' daily quota spread is 6.9 a minute). List rows count finished jobs and keep
# statuses current, so they come first; details get the rest ("Count lag" rows of the
# budget-bound bench).
LIST_SHARE = 0.8
IDLE = 5.0  # seconds to look again when nothing can be chosen
# Why a list sweep failed, when it says the provider as a whole is down.
PROVIDER_DOWN = frozenset({*RETRYABLE, "circuit_open"})
# A list row this many list intervals old no longer keeps a running target's status current.
ROW_FRESH = 2.5
OWED_FOR = 3600.0  # seconds a finished job's owed detail poll is still worth sending
# The classes of detail polls, most urgent first.
# A finished AI flow's re-check comes before running jobs: it is rare by construction (once
# per `recheck_finished`), and a budget-bound account always has running jobs due. Listed
# targets never polled come after unlisted ones: on a small budget (Aitronos' daily quota)
# new jobs outnumber the polls, and their rows already tell their status.
BARE, RECHECK, UNLISTED, NEW, RUNNING_RANK, OWED, SPARE = 0, 1, 2, 3, 4, 5, 6


@dataclass(frozen=True, slots=True)
class _Detail:
    target: Target


@dataclass(frozen=True, slots=True)
class _Sweep:
    source: ListSource


@dataclass(frozen=True, slots=True)
class _Report:
    target: Target


_Unit = _Detail | _Sweep | _Report
REPORT_REST_CAP = 3600.0  # seconds at most a kind of report rests after failed reads


@dataclass(eq=False, repr=False)
class ProviderScheduler:
    provider: str
    config: Config
    store: Store
    providers: Providers
    discovery: Discovery
    telemetry: Telemetry
    _: KW_ONLY
    clock: Clock = time.time
    sleep: Sleep = asyncio.sleep
    shard: Shard = field(default_factory=Shard)
    # Set once every list was swept once.
    ready: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _busy: set[object] = field(init=False, default_factory=set)  # target and source keys in flight
    _reports: int = field(init=False, default=0)  # reports in flight
    # Per kind of report: until when it rests, after how many failed reads in a row.
    _report_rest: dict[str, tuple[float, int]] = field(init=False, default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _held_back: bool = field(init=False, default=False)
    _owed_turn: bool = field(init=False, default=False)
    _loop_task: asyncio.Task[None] | None = field(init=False, default=None)
    # The targets named in the config (`Poller.set_static`).
    static_keys: frozenset[tuple[str, str, str]] = field(init=False, default=frozenset())

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def gate(self) -> ProviderGate | None:
        client = getattr(self.providers, self.provider)
        return None if client is None else client.http.gate

    @property
    def interval(self) -> float:
        return self.config.poll_interval

    def start(self) -> None:
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._run(), name=f"scheduler-{self.provider}")

    async def stop(self) -> None:
        """Stop choosing work; requests in flight are cancelled (their connections closed)."""
        task, self._loop_task = self._loop_task, None
        pending = [t for t in (task, *self._tasks) if t is not None]
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def wake(self) -> None:
        """Something changed (new targets, a reload): choose again now."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            self._held_back = False
            try:
                wait = self._dispatch()
            except Exception:  # a bug in choosing must not end the provider's polling
                log.exception("%s: scheduling failed unexpectedly", self.provider)
                wait = IDLE
            before = self.clock()
            await self._nap(wait)
            if self._held_back:  # the budget or a pause held work back this long
                waited = max(0.0, self.clock() - before)
                self.telemetry.rate_limit_wait.labels(self.provider).inc(waited)

    async def _nap(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self.sleep(max(seconds, 0.001)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (sleeper, waker):
                f.cancel()

    async def step(self) -> float:
        """Send everything the budget allows now, wait for the answers; the seconds until
        something more can go out. Tests drive the scheduler with this on a manual clock."""
        while True:
            wait = self._dispatch()
            if not self._tasks:
                return wait
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- choosing ----------------------------------------------------------------------------

    def _dispatch(self) -> float:
        """Start units while the budget and `concurrency` allow; the seconds to wait then."""
        gate = self.gate
        if gate is None:
            return IDLE
        self._check_ready()  # a provider with nothing to list or poll is ready at once
        while len(self._tasks) < self.config.concurrency:
            wait = gate.wait_time()
            if wait > 0:
                self._held_back = True
                return wait
            unit, due_in = self.choose(self.clock())
            if unit is None:
                return due_in
            # The slot is taken now, for the unit's first call: what is sent is decided when
            # the budget allows it, not queued before.
            context = contextvars.copy_context()
            context.run(gate.claim)
            key = _busy_key(unit)
            self._busy.add(key)
            if isinstance(unit, _Report):
                self._reports += 1
            task = asyncio.get_running_loop().create_task(
                self._execute(unit, gate), context=context
            )
            self._tasks.add(task)
            task.add_done_callback(
                functools.partial(self._finished, key, isinstance(unit, _Report))
            )
        return IDLE

    def _finished(self, key: object, report: bool, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._busy.discard(key)
        self._reports -= int(report)
        self._wake.set()

    def choose(self, now: float) -> tuple[_Unit | None, float]:
        """The most useful unit now, or None and the seconds until one is due."""
        next_due = now + IDLE * 12
        sources = self.discovery.sources(self.provider)
        due = [s for s in sources if s.key not in self._busy and s.next_due <= now]
        if due:
            return _Sweep(min(due, key=lambda s: s.next_due)), 0.0
        next_due = min([next_due, *(s.next_due for s in sources if s.key not in self._busy)])
        best: dict[int, tuple[float, Target]] = {}
        report: tuple[tuple[bool, float], Target] | None = None
        # A row older than a few sweeps of the slowest list no longer keeps a status current.
        row_fresh = ROW_FRESH * max(
            [self.interval, *(self._list_interval(s) for s in sources if s.what != "collectors")]
        )
        for target in self.store:
            if target.provider != self.provider or target.key in self._busy:
                continue
            rank, at = self._rank(target, now, row_fresh)
            if at > now:
                next_due = min(next_due, at)
            elif rank not in best or at < best[rank][0]:
                best[rank] = (at, target)
            if target.report is None and target.terminal:
                order = self._report_order(target)
                if order is not None and target.report_retry_at > now:
                    next_due = min(next_due, target.report_retry_at)
                elif order is not None and (report is None or order < report[0]):
                    report = (order, target)
        if OWED in best and RUNNING_RANK in best and min(best) == RUNNING_RANK:
            # Finished jobs whose counter waits for their detail and running jobs due for a
            # refresh take turns: neither starves the other when the budget is short.
            self._owed_turn = not self._owed_turn
            return _Detail(best[OWED if self._owed_turn else RUNNING_RANK][1]), 0.0
        if best:
            return _Detail(best[min(best)][1]), 0.0
        if report is not None:
            gate = self.gate
            # One report at a time: a slow answer holds no more than one slot while a sweep or
            # poll falls due, and a failing endpoint fails one read, not a burst of them.
            if self._reports == 0 and gate is not None and gate.spare():
                return _Report(report[1]), 0.0
            next_due = min(next_due, now + IDLE)  # look again once the window has room
        return None, max(0.001, next_due - now)

    def _report_order(self, target: Target) -> tuple[bool, float] | None:
        """Where a finished target's report comes among those due: the ones that add to a
        counter first, then the newest finish. None: the target has no report to read (or
        its kind of report rests after failures)."""
        kind = kind_of(target.provider, target.kind)
        if not kind.wants_report(target) or kind.report is None:
            return None
        rest = self._report_rest.get(kind.report.what)
        if rest is not None and rest[0] > self.clock():
            return None
        return (not target.owed_report, -(target.finished_at or 0.0))

    def _rank(self, target: Target, now: float, row_fresh: float = 0.0) -> tuple[int, float]:
        """(class, time): the target is due from `time` on; lower classes go first, then
        older times. A time in the future means not due yet; inf, never."""
        kind = kind_of(target.provider, target.kind)
        never = (9, float("inf"))
        if not kind.polled(target):
            return never
        last = target.last_poll
        # A target named in the config, restored finished from the state file, is polled once
        # for its values; a discovered one gets them from its list's rows.
        if target.final and not (target.static and target.model is None):
            recheck = kind.recheck_finished
            if recheck is None:
                return never
            if last is not None:
                return (RECHECK, last + max(recheck, self.interval))
            # Restored from the state file, not checked by this run yet: as a new one (below).
        row = target.last_row
        listed = row is not None and now - row <= max(row_fresh, ROW_FRESH * self.interval)
        if last is None:
            return (NEW if listed else BARE, target.first_seen)
        if target.up is False:
            return (NEW if listed else UNLISTED, last + self.interval)
        if target.terminal:  # finished by its row: the detail poll it still owes
            finished = target.finished_at or now
            if now - finished > OWED_FOR:
                # The budget never got to it: give it up rather than let the backlog grow.
                self.store.give_up_detail(target)
                return never
            # Newest first: when the budget cannot keep up, the recent ones are current.
            rank = OWED if kind.final_detail == "required" else SPARE
            return (rank, -finished)
        if not listed:  # no list row keeps its status current: only this poll sees it finish
            return (UNLISTED, last + self.interval)
        return (RUNNING_RANK, (target.last_detail or target.first_seen) + self.interval)

    # --- doing -------------------------------------------------------------------------------

    async def _execute(self, unit: _Unit, gate: ProviderGate) -> None:
        try:
            if isinstance(unit, _Sweep):
                await self.sweep(unit.source)
            elif isinstance(unit, _Report):
                await self.read_report(unit.target)
            else:
                await self.poll(unit.target)
        except Exception:  # a bug in one unit must not end the provider's polling
            log.exception("%s: unexpected error", self.provider)
        finally:
            gate.release_claim()  # a unit that sent nothing gives its slot back

    async def sweep(self, source: ListSource) -> None:
        """Read one list and apply its rows."""
        started = self.clock()
        began = time.perf_counter()
        first = source.sweeps == 0
        rows = await self.discovery.guarded(
            source, lambda: self.discovery.read(source, self.providers, started)
        )
        now = self.clock()
        if rows is not None:
            held = self.apply_rows(rows, now, source.watermark, first, source.undecided_after)
            source.held += held
            self._settle(now)
        elif source.error is not None and source.error.reason in PROVIDER_DOWN:
            self._provider_down(source.error, now)
        source.sweeps += 1
        source.next_due = started + self._list_interval(source)
        self.telemetry.poll_cycle_duration.observe(time.perf_counter() - began)
        self._check_ready()

    def _list_interval(self, source: ListSource) -> float:
        from scrapejobs_exporter.discovery import COLLECTORS_EVERY

        if source.what == "collectors":
            return max(COLLECTORS_EVERY, self.interval)
        gate = self.gate
        if gate is None:
            return self.interval
        sources = self.discovery.sources(self.provider)
        # The pages of usual sweeps: an occasional full scan reads more, but does not space
        # the sweeps after it.
        pages = sum(s.usual_pages for s in sources if s.what != "collectors")
        # Spaced so that all the lists together stay within their share of the budget.
        return max(self.interval, pages * 60.0 / (LIST_SHARE * gate.sustained_per_minute))

    def apply_rows(
        self,
        rows: list[Found],
        now: float,
        watermark: float | None,
        first: bool,
        undecided_after: float | None = None,
    ) -> list[TargetKey]:
        """Apply a list read's rows; returns the new targets seen finished after
        `undecided_after` and up to `watermark`: taken for finished before we watched, until
        the provider's clock rate says (`_settle`)."""
        store = self.store
        static = self.static_keys
        held: list[TargetKey] = []
        for row in rows:
            key = (row.provider, row.kind, row.target_id)
            if key in store.forgotten:
                continue
            if key in static and not owns_static(self.config, self.shard, *key[::2]):
                continue  # named in the config: the shard owning its id watches it
            target = store.add(*key, row.collector, static=False, now=now)
            if row.model is None:
                continue
            if undecided_after is not None and target.model is None and target.restored is None:
                finished = kind_of(row.provider, row.kind).finished_at(row.model)
                if (
                    row.model.terminal
                    and finished is not None
                    and undecided_after < finished <= (watermark or finished)
                ):
                    held.append(key)  # `Store.observe` takes it for finished before
            try:
                store.observe(
                    target, row.model, now, complete=row.complete, watermark=watermark,
                    first_sweep=first,
                )  # fmt: skip
            except Exception:  # a bug with one row must not cost the others their sweep
                log.exception("%s %s %s: applying a list row failed", *key)
        self.wake()
        return held

    def _settle(self, now: float) -> None:
        """Count the held start-up finishes that the measured clock rate puts after our start."""
        settled = self.discovery.settle(self.provider)
        late = 0
        for start, held in settled:
            for key in held:
                target = self.store.get(key)
                if target is None or target.model is None:
                    continue
                finished = kind_of(target.provider, target.kind).finished_at(target.model)
                if finished is not None and finished > start:
                    self.store.count_late(target, now)
                    late += 1
        if settled:
            log.info(
                "%s: its clock runs %.3g times as fast as ours; of the %d jobs first seen"
                " finished around our start, %d finished after it and count",
                self.provider,
                self.discovery.clocks[self.provider].rate,
                sum(len(held) for _, held in settled),
                late,
            )

    def _provider_down(self, error: ApiError, now: float) -> None:
        """The provider itself fails (or its circuit is open): no target of it has current
        values, whether or not its own poll came round yet."""
        for target in self.store:
            if target.provider == self.provider and not target.final and target.up is not False:
                Store.record_failure(target, error, now)

    def _check_ready(self) -> None:
        """Ready once every list was swept once (seconds), not after every detail poll of a
        busy account (minutes under budget); without lists, once every target was tried (but
        those finished before a restart, that nothing polls: see `_rank`)."""
        if self.ready.is_set():
            return
        sources = self.discovery.sources(self.provider)
        if sources:
            done = all(s.sweeps > 0 for s in sources)
        else:
            done = all(
                t.last_poll is not None or self._rank(t, self.clock())[1] == float("inf")
                for t in self.store
                if t.provider == self.provider
            )
        if done:
            self.ready.set()

    def watermark(self) -> float | None:
        """The provider's clock at the start of watching, from the first sweeps (the earliest:
        a target polled on its own may belong to any of them)."""
        marks = [
            s.watermark for s in self.discovery.sources(self.provider) if s.watermark is not None
        ]
        return min(marks, default=None)

    async def poll(self, target: Target) -> bool:
        """Fetch one target's detail and apply it."""
        kind = kind_of(target.provider, target.kind)
        try:
            model = await kind.fetch(self.providers, target)
        except ApiError as exc:
            self._failed(target, exc)
            self._check_ready()
            return False
        try:
            self._succeeded(target, model)
        except Exception:  # a bug with one target's reply must not cost the others their turn
            log.exception("%s %s %s: applying a reply failed", *target.key)
        self._check_ready()
        return True

    def _succeeded(self, target: Target, model: Model) -> None:
        if target.up is False:
            log.info("%s %s %s: recovered", target.provider, target.kind, target.target_id)
        if model.status == "unknown":
            self.telemetry.unknown_status.labels(target.provider, target.kind).inc()
            previous = getattr(target.model, "raw_status", None)
            if previous != model.raw_status or target.model is None:
                log.warning(
                    "%s %s %s: status %r is not one we know; exported as unknown",
                    target.provider,
                    target.kind,
                    target.target_id,
                    model.raw_status,
                )
        if model.invalid:
            log.debug(
                "%s %s %s: ignored fields with unexpected types: %s",
                target.provider,
                target.kind,
                target.target_id,
                ", ".join(model.invalid),
            )
        self.store.observe(target, model, self.clock(), complete=True, watermark=self.watermark())

    def _failed(self, target: Target, error: ApiError) -> None:
        # Log when a target goes down or the kind of its error changes; repeats go to debug
        # (a pause's message names the seconds left, which change on every refusal).
        changed = target.up is not False or (
            target.last_error_reason,
            target.last_error_status,
        ) != (
            error.reason,
            error.status,
        )
        level = logging.WARNING if changed else logging.DEBUG
        log.log(level, "%s %s %s: %s", target.provider, target.kind, target.target_id, error.short)
        now = self.clock()
        Store.record_failure(target, error, now)
        if error.status == 404 and target.model is not None:
            # The provider forgot a job it showed us before: it expired (16 days for Studio).
            log.info("%s %s %s: expired at the provider; no longer polled",
                     target.provider, target.kind, target.target_id)  # fmt: skip
            self.store.expire_target(target, now)

    async def read_report(self, target: Target) -> bool:
        """Read a finished target's report and hand it to the store (which counts it once).
        A failure leaves the target's own values and `up` alone: the report is extra."""
        read = kind_of(target.provider, target.kind).report
        if read is None:
            return False
        try:
            report = await read.fetch(self.providers, target)
        except ApiError as exc:
            self._report_failed(target, read, exc)
            return False
        self._report_rest.pop(read.what, None)
        try:
            self.store.observe_report(target, report)
        except Exception:  # a bug with one report must not cost the others their turn
            log.exception("%s %s %s: applying its %s failed", *target.key, read.what)
        return True

    def _report_failed(self, target: Target, read: ReportRead, error: ApiError) -> None:
        # Tried again a poll_interval later, REPORT_TRIES times in all (a refusal by our own
        # gate counts too: it may end a call whose first attempts went out). A 4xx other than
        # 429 ends it at once: the endpoint does not cover this target, or its id expired.
        now = self.clock()
        target.report_retry_at = now + self.interval
        final = error.status is not None and 400 <= error.status < 500 and error.status != 429
        target.report_tries = REPORT_TRIES if final else target.report_tries + 1
        if error.reason in RETRYABLE:
            # The endpoint itself is unwell: the next report of its kind waits, longer each
            # time, so that reads back to back (nothing else being due) never trip the
            # provider's breaker and stop its sweeps and polls.
            failures = self._report_rest.get(read.what, (0.0, 0))[1] + 1
            pause = min(REPORT_REST_CAP, self.interval * 2.0 ** min(failures - 1, 20))
            self._report_rest[read.what] = (now + pause, failures)
        log.log(
            logging.INFO if final else logging.DEBUG,
            "%s %s %s: reading its %s failed (%s)%s",
            *target.key,
            read.what,
            error.short,
            "; not tried again" if final else "",
        )

    # --- a whole round at once (`once`, and tests written in cycles) -------------------------

    async def cycle(self) -> tuple[int, int]:
        """Sweep every list, then poll every target that is not final (and finished AI flows
        due for their re-check), within the budget; the gate waits as needed; last, the
        reports due, while the budget has room to spare. Returns the targets polled and how
        many of those polls failed (a failed report is no failed poll: it is extra)."""
        swept: set[str] = set()
        while pending := [s for s in self.discovery.sources(self.provider) if s.key not in swept]:
            for source in pending:  # the collectors list first adds the jobs lists
                swept.add(source.key)
                await self.sweep(source)
        now = self.clock()
        targets = [
            t
            for t in self.store
            if t.provider == self.provider and self._rank(t, now)[1] < float("inf")
            and (not t.final or self._rank(t, now)[1] <= now)
        ]  # fmt: skip
        queue = iter(targets)
        results: list[bool] = []

        async def worker() -> None:
            for target in queue:  # shared: each worker takes the next target
                results.append(await self.poll(target))

        workers = min(self.config.concurrency, len(targets))
        await asyncio.gather(*(worker() for _ in range(workers)))
        self._check_ready()
        await self.read_reports()
        return len(results), results.count(False)

    async def read_reports(self) -> int:
        """After a round's sweeps and polls, the reports due, while the budget has room to
        spare (`ProviderGate.spare`) and lets them out without waiting; the number read."""
        gate = self.gate
        if gate is None:
            return 0
        now = self.clock()
        due = [
            (order, t)
            for t in self.store
            if t.provider == self.provider
            and t.report_retry_at <= now
            and (order := self._report_order(t)) is not None
        ]
        due.sort(key=lambda pair: pair[0])
        queue = iter(t for _, t in due)
        read: list[bool] = []

        async def worker() -> None:
            for target in queue:  # shared: each worker takes the next target
                if not gate.spare() or gate.wait_time() > 0:
                    return
                if self._report_order(target) is None:  # its kind may rest meanwhile
                    continue
                # Only while the gate lets a call out at once, and the slot is taken as that
                # is seen: no worker waits in the gate (on a clock that only moves between
                # rounds, as `once`'s and the benchmark's, it would wait for ever).
                gate.claim()
                try:
                    read.append(await self.read_report(target))
                finally:
                    gate.release_claim()

        await asyncio.gather(*(worker() for _ in range(min(self.config.concurrency, len(due)))))
        return read.count(True)


def _busy_key(unit: _Unit) -> object:
    return unit.source.key if isinstance(unit, _Sweep) else unit.target.key
