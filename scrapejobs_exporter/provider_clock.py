"""A provider's clock against ours, read off the times in its list rows.

A job counts if it finished after the exporter started watching (`Store.observe`): our start
on the *provider's* clock. That clock need not agree with ours, nor run at our rate (the
simulator's runs `--speed` times faster), and the first read of a list comes seconds after our
start (minutes for a jobs list found through the collectors list on a busy budget). Taking the
provider's clock to run at our rate puts the start too late by (rate - 1) x that wait: jobs that
finished in between are never counted.

So the rate is measured: the newest time in a list read is a lower bound of the provider's "now"
at the read, close to it on a busy account. The freshest reading of the first `EARLY` seconds
and the first new high at least `RATE_AFTER` seconds later give the rate; then our start on the
provider's clock is the tightest of the early readings' lower bounds, `newest - rate x (read -
start)`. Until the rate is known, a first read decides with rate 1 and holds the finishes that a
faster clock (up to `MAX_RATE`) would put after our start: `undecided_after`.

A real provider's clock runs at ours and agrees with it to a second or two, and on a quiet
account the newest row lags "now" by minutes, which would pass for a fast clock. So a measured
rate is believed only if the provider's rows ever ran more than `AHEAD` seconds ahead of our
clock. The clocks are taken to agree (the rate is 1, and our start is our own start time, or
the newest row if older: a clock behind ours) only when none has after `AGREE_AFTER` seconds:
a quiet list's new high can come `RATE_AFTER` seconds in and still lag a fast clock by as much
as it ran ahead, and taking its clocks to agree put the start of a shard watching quiet lists
seconds late (a job finishing then was never counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

EARLY = 10.0  # seconds after the first reading whose readings place our start
RATE_AFTER = 30.0  # seconds of our clock the rate is measured over, at least: the lags of
# the newest rows (about a second on a busy account) make it uncertain by their difference over it
MAX_RATE = 10.0  # how much faster than ours a provider's clock is taken to run, at most
AHEAD = 2.0  # seconds a provider's rows may run ahead of our clock with the clocks agreeing
AGREE_AFTER = 120.0  # seconds after the first reading before the clocks are taken to agree


@dataclass(slots=True)
class ProviderClock:
    """The readings (our time, newest provider time) of one provider's lists."""

    early: list[tuple[float, float]] = field(default_factory=list)
    high: float | None = None  # the newest provider time of every reading so far
    ahead: float = 0.0  # how far a reading ran ahead of our clock, at most
    rate: float | None = None  # provider seconds per second of ours, once measured

    def observe(self, at: float, newest: float) -> None:
        """A list read begun at `at` (our clock) whose newest row time is `newest`."""
        new_high = self.high is None or newest > self.high
        self.high = newest if new_high else self.high
        self.ahead = max(self.ahead, newest - at)
        since_first = at - self.early[0][0] if self.early else 0.0
        if not self.early or since_first <= EARLY:
            self.early.append((at, newest))
        elif self.rate is None and self.ahead <= AHEAD:
            if since_first >= AGREE_AFTER:
                self.rate = 1.0
        elif self.rate is None and new_high and since_first >= RATE_AFTER:
            # The freshest early reading against a new high: both about the provider's "now".
            t0, n0 = max(self.early, key=lambda reading: reading[1])
            if at > t0:
                self.rate = min(MAX_RATE, max(1.0, (newest - n0) / (at - t0)))

    def start_up(self, added: float) -> bool:
        """Whether a list watched from `added` was watched since before the first reading."""
        return not self.early or added <= self.early[0][0]

    def start(self, added: float) -> float | None:
        """Our `added` on the provider's clock, for lists watched since before the first
        reading (the start-up ones); None until the rate is known, or for a list added later
        (a reload: its own first read places it, see `start_of_watching`)."""
        if self.rate is None or not self.early or not self.start_up(added):
            return None
        rate = self.rate
        bound = max(newest - rate * max(0.0, at - added) for at, newest in self.early)
        if rate > 1.0:
            return bound
        # The clocks agree: our own start, but never later than the newest row (a clock
        # behind ours: a replayed or manual world).
        return max(bound, min(max(n for _, n in self.early), added))


def start_of_watching(
    newest: float | None, added: float, read_at: float, rate: float
) -> float | None:
    """When watching a list began (`added`, our clock), on the provider's clock, from its first
    read (started at `read_at`, our clock) whose newest timestamp is `newest`, the provider's
    clock running `rate` times as fast as ours.

    On a busy list the newest row is about the provider's "now" at the read, so the start was
    `rate x (read_at - added)` before it: jobs that finish while the exporter starts up (or
    while a source added by a reload waits for its first read) count. On a quiet list the
    newest row is older than the start; no job of the list finished between it and the read, so
    it is the start as far as this list can tell, and never later than our own start when the
    clocks agree (`rate` 1): `min(newest, added)`. The later of the two keeps a job that
    finished before we watched from being counted when the provider's clock is ahead of ours.
    """
    if newest is None:
        return None
    bound = newest - rate * max(0.0, read_at - added)
    return bound if rate > 1.0 else max(bound, min(newest, added))
