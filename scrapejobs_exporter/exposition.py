"""Rendering families to the Prometheus text format and OpenMetrics, and caching the bytes.

The exposition is rendered once per poll cycle, off the event loop, and a scrape only picks the
cached bytes (gzipped or not) for the format the client asked for.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from types import ModuleType
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.registry import Collector

from scrapejobs_exporter.metrics import (
    PER_TARGET,
    PerTarget,
    base_labels,
    group_targets,
    target_labels,
)
from scrapejobs_exporter.store import Store, Target

isal_zlib: ModuleType | None
try:
    from isal import isal_zlib
except ImportError:  # pragma: no cover - platforms without an ISA-L wheel
    isal_zlib = None

__all__ = [
    "OPENMETRICS_TYPE",
    "TEXT_TYPE",
    "Exposition",
    "FamilyCache",
    "PerTargetCache",
    "Piece",
    "RenderedFormat",
    "choose_format",
    "render_per_target",
    "wants_gzip",
]

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
GZIP_LEVEL = 1  # zlib's fastest: the bytes are re-made every cycle
ISAL_LEVEL = 2


_SPECIALS = {"inf": "+Inf", "-inf": "-Inf", "nan": "NaN"}


def _number(value: float) -> str:
    """A sample value as client_python writes it (`floatToGoString`: `+Inf`, `1e+20`), but
    integers without the `.0`, as Prometheus itself does; fast for the common cases (this runs a
    million times at 50,000 jobs)."""
    if type(value) is int:
        return str(value)
    if value.is_integer() and -1e15 < value < 1e15:
        return str(int(value))
    text = repr(value)
    return _SPECIALS.get(text, text)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    # The text format's escaping; the per-target help texts have no `"`, so it is OpenMetrics'
    # too (a test keeps them so).
    return text.replace("\\", r"\\").replace("\n", r"\n")


def choose_format(accept: str | None) -> str:
    """`openmetrics` when the client accepts OpenMetrics 1.0.0/0.0.1, else `text`."""
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media != "application/openmetrics-text":
            continue
        version = next((p.split("=", 1)[1] for p in params if p.startswith("version=")), "")
        q = next((p.split("=", 1)[1] for p in params if p.startswith("q=")), "1")
        if version in ("", "1.0.0", "0.0.1") and _q(q) > 0:
            return "openmetrics"
    return "text"


def _q(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


def wants_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding.lower() in ("gzip", "*"):
            q = next((p.split("=", 1)[1] for p in params if p.startswith("q=")), "1")
            return _q(q) > 0
    return False


Buffer = bytes | memoryview


@dataclass(frozen=True, slots=True)
class RenderedFormat:
    """One format, kept gzipped only (at 50,000 jobs the plain text is ~120 MB, gzipped
    ~10 MB), as one gzip member: a small `head`, the `segment` of the per-target families (the
    same object in both formats), and a `tail` of the other families and the gzip trailer.
    Prometheus always asks for gzip; other clients get it inflated on demand.

    The segment's parts are views of a few anonymous memory regions of about `REGION_SIZE`. A
    scrape writes each part whole: the mapped pages are the page (counted in the process's RSS,
    and freed when the last view of a region is gone), so no scrape copies it first."""

    content_type: str
    head: bytes
    segment: tuple[Buffer, ...]
    tail: bytes

    @property
    def parts(self) -> tuple[Buffer, ...]:
        return (self.head, *self.segment, self.tail)

    @property
    def gzipped(self) -> bytes:
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(len(part) for part in self.parts)

    @property
    def body(self) -> bytes:
        return zlib.decompress(self.gzipped, wbits=31)


@dataclass(slots=True)
class Piece:
    """A run of page text, deflated on its own and ended with a full flush: byte-aligned and
    referring to nothing before it, so pieces can follow one another in any order inside one
    gzip member (RFC 1951/1952). `size` and `crc` are those of the text."""

    data: bytes | memoryview
    crc: int
    size: int

    @classmethod
    def of(cls, text: str) -> Piece:
        data = text.encode("utf-8", "replace")  # label values come from replies: never fail
        compressor = _deflate_compressor()
        deflated = compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        return cls(deflated, zlib.crc32(data), len(data))


@dataclass(frozen=True, slots=True)
class Exposition:
    """Both formats, made in one go."""

    text: RenderedFormat
    openmetrics: RenderedFormat

    @classmethod
    def build(
        cls,
        registry: Collector,
        shared: Iterable[Piece] = (),
        pause: Callable[[], object] | None = None,
        families: FamilyCache | None = None,
    ) -> Exposition:
        """`shared` pieces (the per-target families, identical in both formats) come first and
        are stored once; then the `registry`'s metrics, collected once and rendered by
        client_python in each format (through `families`, which keeps what did not change).
        `pause` is called before the registry is collected and between its families (see
        `scrapejobs_exporter.render_scheduling`)."""
        segment, crc, size = _join(shared)
        if pause is not None:
            pause()
        text, openmetrics = (families or FamilyCache()).render(registry.collect(), pause)
        return cls(
            RenderedFormat(TEXT_TYPE, _GZIP_HEADER, segment, _gzip_end(crc, size, text)),
            RenderedFormat(
                OPENMETRICS_TYPE, _GZIP_HEADER, segment, _gzip_end(crc, size, openmetrics)
            ),
        )

    def pick(self, accept: str | None) -> RenderedFormat:
        return self.openmetrics if choose_format(accept) == "openmetrics" else self.text


_EOF = b"# EOF\n"


class FamilyCache:
    """client_python's text of each collected family in both formats, kept while the family
    (name, help, type, unit and samples) stays equal: most aggregates do not change between two
    renders, and client_python takes ~12 us a sample in the text format and ~14 in OpenMetrics
    (with allow-utf-8 escaping; 37 with the default), measured on a histogram of 1,500 samples.

    It exists for the benchmark row "Render per cycle (ms)" at 10,000 jobs (<= 150 ms, see
    bench/RESULTS.md): rendering all 1,900 samples in both formats took 90 of its ms."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Metric, bytes, bytes]] = {}

    def clear(self) -> None:
        """Forget every family: the next render makes all of them."""
        self._kept.clear()

    def render(
        self, families: Iterable[Metric], pause: Callable[[], object] | None = None
    ) -> tuple[bytes, bytes]:
        """The text format and OpenMetrics of `families`, in their order; `pause` is called
        after each family is taken from `families` (a registry's collect(), collecting as it
        goes: at 50,000 jobs collecting the aggregates takes ~150 ms, and a scrape should not
        wait on all of it; benchmark row "Scrape p99 while rendering")."""
        kept: dict[str, tuple[Metric, bytes, bytes]] = {}
        text: list[bytes] = []
        openmetrics: list[bytes] = []
        for family in families:
            if pause is not None:
                pause()
            entry = self._kept.get(family.name)
            if entry is None or entry[0] != family:
                entry = (family, *_both_formats(family))
            kept[family.name] = entry
            text.append(entry[1])
            openmetrics.append(entry[2])
        self._kept = kept
        return b"".join(text), b"".join(openmetrics) + _EOF


def _openmetrics(family: Metric) -> bytes:
    """client_python's OpenMetrics of one family: its lines, without the page's end marker.

    allow-utf-8 gives the default's bytes for names of the legacy character set (all of ours:
    tests/unit/test_metrics.py; FamilyCache's test compares with the default), and the default
    rebuilds each sample's name a character at a time, ~23 us a sample more: most of the row
    "Render per cycle (ms)" at 10,000 jobs."""
    page: bytes = openmetrics_exposition.generate_latest(  # type: ignore[no-untyped-call]
        _Collected([family]), escaping=openmetrics_exposition.ALLOWUTF8
    )
    return page.removesuffix(_EOF)


def _both_formats(family: Metric) -> tuple[bytes, bytes]:
    """The text format and OpenMetrics of one family, each as client_python writes it.

    client_python writes a sample's line the same in both formats unless the sample has a
    timestamp, an exemplar or a native histogram, or is one the text format moves to a family
    of its own (`_created`, `_gsum`, `_gcount`); only the HELP/TYPE/UNIT lines differ. So for
    such a family the text format is client_python's text head (of the family without samples)
    and the OpenMetrics sample lines, and client_python renders the samples once, not twice:
    ~45% of the families' time in the benchmark row "Render per cycle (ms)" at 50,000 jobs.
    tests/unit/test_exposition.py compares the result with client_python's text format."""
    openmetrics = _openmetrics(family)
    moved = {family.name + suffix for suffix in ("_created", "_gsum", "_gcount")}
    if not any(
        s.timestamp is not None or s.exemplar or s.native_histogram or s.name in moved
        for s in family.samples
    ):
        bare = Metric(family.name, family.documentation, family.type, family.unit)
        head = _openmetrics(bare)
        if openmetrics.startswith(head):  # else not seen: a format change would land there
            return generate_latest(_Collected([bare])) + openmetrics[len(head) :], openmetrics
    return generate_latest(_Collected([family])), openmetrics


@dataclass(frozen=True, slots=True)
class _Collected:
    """Metric families collected once, rendered in both formats."""

    families: list[Metric]

    def collect(self) -> list[Metric]:
        return self.families


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0
MASK = 0xFFFFFFFF
# Reserved, not used: a region's pages exist once written. A scrape writes a region at a time;
# writes of 4 MB were the fastest way to move the 11 MB page over loopback (p50 3.7 to 5.1 ms,
# against 4.2 to 5.5 in writes of 1 MB, 5.8 to 8.2 of 256 KB and 5.3 to 6.4 of the whole page
# at once; sendfile() from a memory file took 6.9 to 10.4 ms on the same machine, 2 cores of
# AMD EPYC). Benchmark row "Scrape p50" at 50,000 jobs (bench/RESULTS.md).
REGION_SIZE = 4 << 20


def _join(pieces: Iterable[Piece]) -> tuple[tuple[memoryview, ...], int, int]:
    """The pieces copied one after the other into regions of about REGION_SIZE, with the CRC
    and size of their text.

    Few regions make few writes per scrape (thousands of small ones cost milliseconds), and each
    piece is copied on its own, never the whole page in one go (a copy holds the GIL, and scrapes
    wait on it during a render). Each piece is then pointed at its bytes inside its region, so
    that the cache holds no second copy of the page."""
    regions = _Regions()
    crc, size = 0, 0
    for piece in pieces:
        crc, size = _crc32_combine(crc, piece.crc, piece.size), size + piece.size
        piece.data = regions.add(piece.data)
    return regions.segment(), crc, size


class _Regions:
    """Writes a segment's pieces into anonymous memory regions."""

    def __init__(self) -> None:
        self._parts: list[memoryview] = []
        self._region: memoryview | None = None
        self._fill = 0  # bytes written in the region

    def add(self, data: Buffer) -> memoryview:
        """Copies `data` and returns the view of the copy."""
        if self._region is None or self._fill + len(data) > len(self._region):
            self._close_region()
            self._region = memoryview(mmap.mmap(-1, max(REGION_SIZE, len(data))))
        start, end = self._fill, self._fill + len(data)
        self._region[start:end] = data
        self._fill = end
        return self._region[start:end]

    def segment(self) -> tuple[memoryview, ...]:
        self._close_region()
        return tuple(self._parts)

    def _close_region(self) -> None:
        if self._region is not None and self._fill:
            self._parts.append(self._region[: self._fill])
        self._region, self._fill = None, 0


def _gzip_end(crc: int, size: int, tail: bytes) -> bytes:
    """`tail` deflated, ending the member, and the gzip trailer of the segment and `tail`."""
    finish = _deflate_compressor()
    end: bytes = finish.compress(tail) + finish.flush()
    crc, size = zlib.crc32(tail, crc), size + len(tail)
    return end + struct.pack("<II", crc, size & MASK)


def _deflate_compressor() -> Any:
    # ISA-L compresses these pages about five times faster than zlib's fastest level, and its
    # level 2 was both faster and smaller than its level 1 on them; zlib remains the fallback
    # where ISA-L has no wheel.
    if isal_zlib is not None:
        return isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, -15)
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)


def _crc32_combine(crc1: int, crc2: int, size2: int) -> int:
    """The CRC-32 of two texts one after the other, from the CRC of each (zlib's
    `crc32_combine`, which Python's zlib does not offer; ISA-L's binding does)."""
    if isal_zlib is not None:
        return int(isal_zlib.crc32_combine(crc1, crc2, size2))
    # CRC-32 is affine: crc(B, start) = crc(B, 0) ^ crc(zeros, start) ^ crc(zeros, 0).
    zeros = bytes(size2)
    return crc2 ^ zlib.crc32(zeros, crc1) ^ zlib.crc32(zeros)


# --- fast rendering of the per-target families -----------------------------------------------

# A chunk of targets ends after a target whose id hashes to 0 under this mask (128 targets on
# average): cut by content, not by position, adding or dropping a target changes only its own
# chunk, and the others stay cached.
CHUNK_MASK = 127


@dataclass(slots=True)
class _Chunk:
    """Consecutive targets of one group, the newest `Target.version` among them when their
    pieces were made, and each family's piece (None: no lines) by its index in PER_TARGET."""

    members: tuple[Target, ...]
    version: int
    pieces: dict[int, Piece | None] = field(default_factory=dict)


class PerTargetCache:
    """The per-target families, rendered by chunks of targets and kept compressed: a chunk whose
    targets are the same objects, none with a newer version, is not made again. Between two
    renders most targets change nothing (finished jobs), so a render after a poll cycle makes
    only the chunks holding what changed.

    It exists for the benchmark rows "Render per cycle (ms)" at 10,000 and 50,000 jobs (<= 150
    and <= 800 ms, see bench/RESULTS.md): rendering every line anew took 250 and 1,800 ms."""

    def __init__(self) -> None:
        self._chunks: dict[tuple[tuple[str, str] | None, Target], _Chunk] = {}
        # Each group's order at the last render, and the newest version it had seen.
        self._orders: dict[tuple[str, str] | None, list[Target]] = {}
        self._newest = 0

    def clear(self) -> None:
        """Forget every chunk: the next render makes all of them."""
        self._chunks.clear()
        self._orders.clear()
        self._newest = 0

    def render(self, store: Store, pause: Callable[[], object] | None = None) -> Iterator[Piece]:
        """The non-empty per-target families, in `PER_TARGET` order, piece by piece: each is
        joined into the page before the next is made, so the pieces of a render are never all
        held at once (the heap kept that room: RSS per tracked job at 50,000). `pause` is
        called before each chunk is looked at and each piece is made."""
        wait = pause or _no_pause
        chunks = self._chunked(store, wait)
        for index, per in enumerate(PER_TARGET):
            head = True
            for chunk in chunks.get(per.kind, ()):
                if index in chunk.pieces:
                    piece = chunk.pieces[index]
                else:
                    wait()
                    lines = _lines(per, chunk.members)
                    piece = chunk.pieces[index] = Piece.of("".join(lines)) if lines else None
                if piece is None:
                    continue
                if head:  # made anew: a kept piece points into the page it was last joined into
                    yield Piece.of(_head(per))
                    head = False
                yield piece

    def _chunked(
        self, store: Store, wait: Callable[[], object]
    ) -> dict[tuple[str, str] | None, list[_Chunk]]:
        """Each group's targets cut into chunks, the ones unchanged since the last render
        taken from it (with their pieces)."""
        chunks: dict[tuple[str, str] | None, list[_Chunk]] = {}
        kept: dict[tuple[tuple[str, str] | None, Target], _Chunk] = {}
        version = attrgetter("version")
        orders: dict[tuple[str, str] | None, list[Target]] = {}
        newest_seen = self._newest
        for group, targets in group_targets(store).items():
            wait()
            targets = orders[group] = self._ordered(group, targets, newest_seen)
            chunks[group] = []
            for members in _cut(targets):
                wait()
                newest = max(map(version, members))  # before any value is read: see Target
                self._newest = max(self._newest, newest)
                key = (group, members[0])
                chunk = self._chunks.get(key)
                if chunk is None or chunk.members != members or newest > chunk.version:
                    chunk = _Chunk(members, newest)
                kept[key] = chunk
                chunks[group].append(chunk)
        self._chunks, self._orders = kept, orders
        return chunks

    def _ordered(
        self, group: tuple[str, str] | None, targets: list[Target], newest_seen: int
    ) -> list[Target]:
        """The last render's order with the targets changed since then moved to the end, the
        final ones among them first: the targets that change (running ones) gather in the last
        chunks, and the finished ones before them keep their chunks from render to render (the
        order of series within a family means nothing to Prometheus). In a first render every
        target is changed: without the final ones first, the running ones would be spread over
        every chunk, and the next render, moving them to the end, would re-make nearly all
        (benchmark row "Render per cycle (ms)": its first steady cycle at 10,000 took 386 ms).
        Not a sort by version: a sort of all 50,000 (a first render, or one after `clear()`)
        holds the GIL for tens of ms, and scrapes wait on it (benchmark row "Scrape p99 while
        rendering").

        A target made after the last render has a newer version than it saw (`Target` takes
        one when made), so every target of `targets` is either changed or in the last order;
        the last order holds more only when targets left the store. Then alone a set of
        `targets` is needed: two passes over 50,000 targets took ~30 ms, sets of them another
        ~60 (benchmark row "Render per cycle (ms)" at 50,000)."""
        changed = [t for t in targets if t.version > newest_seen]
        before = [t for t in self._orders.get(group, ()) if t.version <= newest_seen]
        if len(before) + len(changed) != len(targets):  # some left; drop them
            current = set(targets)
            before = [t for t in before if t in current]
            unchanged = set(before)
            changed = [t for t in targets if t not in unchanged]
        return before + [t for t in changed if t.final] + [t for t in changed if not t.final]


def render_per_target(store: Store) -> list[Piece]:
    """The per-target families of `store`, every chunk made anew."""
    return list(PerTargetCache().render(store))


def _head(per: PerTarget) -> str:
    return f"# HELP {per.spec.name} {_escape_help(per.spec.help)}\n# TYPE {per.spec.name} gauge\n"


def _no_pause() -> None:
    return None


def _cut(targets: list[Target]) -> Iterator[tuple[Target, ...]]:
    start = 0
    for end, target in enumerate(targets, 1):
        if not hash(target.target_id) & CHUNK_MASK:
            yield tuple(targets[start:end])
            start = end
    if start < len(targets):
        yield tuple(targets[start:])


def _labels(target: Target, own: bool) -> str:
    if own:  # two series per target: not worth a cached string per target
        provider, kind, target_id = target_labels(target)
        return f'provider="{provider}",kind="{kind}",target="{_escape_label(target_id)}"'
    if target.label_text is not None:
        return target.label_text
    names = _BASE_NAMES[(target.provider, target.kind)]
    text = ",".join(
        f'{n}="{_escape_label(v)}"' for n, v in zip(names, base_labels(target), strict=True)
    )
    target.label_text = text
    return text


def _lines(per: PerTarget, targets: Sequence[Target]) -> list[str]:
    open_ = per.spec.name + "{"
    own = per.kind is None
    lines: list[str] = []
    append = lines.append
    if per.states:
        tails = _state_tails(per)
        current = per.current
        assert current is not None
        for t in targets:
            state = current(t if per.of_target else t.model)
            if state is None:
                continue
            # Every line of the set starts with the same name and labels: one C-level join.
            head = open_ + _labels(t, own)
            append(head + head.join(tails.get(state) or tails[None]))
    elif per.current is not None:
        extra = per.spec.labels[-1]
        for t in targets:
            label = per.current(t if per.of_target else t.model)
            if label is not None:
                append(f'{open_}{_labels(t, own)},{extra}="{_escape_label(label)}"}} 1\n')
    elif per.by_label is not None:
        extra, by_label = per.spec.labels[-1], per.by_label
        for t in targets:
            head = f"{open_}{_labels(t, own)},{extra}="
            for label, count in by_label(t if per.of_target else t.model) or ():
                append(f'{head}"{_escape_label(label)}"}} {_number(count)}\n')
    elif per.value is not None:
        value_of = per.value
        for t in targets:
            value = value_of(t if per.of_target else t.model)
            if value is not None:
                append(f"{open_}{_labels(t, own)}}} {_number(value)}\n")
    return lines


def _state_tails(per: PerTarget) -> dict[str | None, list[str]]:
    """For each possible current state, the line endings of the whole set (None: no state
    matches, every line 0)."""
    extra = per.spec.labels[-1]
    suffixes = [(s, f',{extra}="{_escape_label(s)}"}} ') for s in per.states]
    tails: dict[str | None, list[str]] = {
        current: [f"{suffix}{'1' if s == current else '0'}\n" for s, suffix in suffixes]
        for current in per.states
    }
    tails[None] = [f"{suffix}0\n" for _, suffix in suffixes]
    return tails


# A state set's or info metric's last label is its own; the ones before identify the target.
_BASE_NAMES = {
    p.kind: p.spec.labels[:-1] if (p.states or p.current or p.by_label) else p.spec.labels
    for p in PER_TARGET
    if p.kind is not None
}
