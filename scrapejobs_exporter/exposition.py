"""Rendering families to the Prometheus text format and OpenMetrics, and caching the bytes.

The exposition is rendered once per poll cycle, off the event loop, and a scrape only picks the
cached bytes (gzipped or not) for the format the client asked for.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class RenderedFormat:
    """One format, kept gzipped only (at 50,000 jobs the plain text is ~120 MB, gzipped
    ~10 MB), as the parts of one gzip member: Prometheus always asks for gzip, other clients get
    it inflated on demand. The big middle part is the same object in both formats."""

    content_type: str
    parts: tuple[bytes, ...]

    @property
    def gzipped(self) -> bytes:
        return b"".join(self.parts)

    @property
    def size(self) -> int:
        return sum(len(part) for part in self.parts)

    @property
    def body(self) -> bytes:
        return zlib.decompress(self.gzipped, wbits=31)


@dataclass(frozen=True, slots=True)
class Exposition:
    """Both formats, made in one go."""

    text: RenderedFormat
    openmetrics: RenderedFormat

    @classmethod
    def build(
        cls,
        registry: Collector,
        shared: Iterable[str] = (),
        pause: Callable[[], object] | None = None,
    ) -> Exposition:
        """`shared` chunks (the per-target families, identical in both formats) come first and
        are compressed once; then the `registry`'s metrics, collected once and rendered by
        client_python in each format. `pause` is called before each chunk is made (see
        `scrapejobs_exporter.render_scheduling`)."""
        body = _SharedDeflate()
        for chunk in _encoded(shared, pause):
            body.add(chunk)
        if pause is not None:
            pause()
        collected = _Collected(list(registry.collect()))
        text = body.gzip_member([generate_latest(collected)])
        openmetrics = body.gzip_member(
            [openmetrics_exposition.generate_latest(collected)]  # type: ignore[no-untyped-call]
        )
        return cls(RenderedFormat(TEXT_TYPE, text), RenderedFormat(OPENMETRICS_TYPE, openmetrics))

    def pick(self, accept: str | None) -> RenderedFormat:
        return self.openmetrics if choose_format(accept) == "openmetrics" else self.text


@dataclass(frozen=True, slots=True)
class _Collected:
    """Metric families collected once, rendered in both formats."""

    families: list[Metric]

    def collect(self) -> list[Metric]:
        return self.families


def _encoded(chunks: Iterable[str], pause: Callable[[], object] | None) -> Iterator[bytes]:
    """Each chunk as UTF-8, with `pause()` called before each one is made."""
    source = iter(chunks)
    while True:
        if pause is not None:
            pause()
        chunk = next(source, None)
        if chunk is None:
            return
        yield chunk.encode("utf-8", "replace")  # see _render


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0


class _SharedDeflate:
    """Raw deflate of the shared chunks, fed one at a time (no whole plain copy is ever held)
    and ended with a full flush: byte-aligned, no final block, no back-references past it, so
    that each format's tail can follow it in a single valid gzip member (RFC 1952)."""

    def __init__(self) -> None:
        self._compressor = _deflate_compressor()
        self._parts: list[bytes] = []
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._crc = 0
        self._size = 0
        self._segment: tuple[bytes, ...] | None = None

    def add(self, data: bytes) -> None:
        self._collect(self._compressor.compress(data))
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)

    def _collect(self, compressed: bytes) -> None:
        # Small outputs are joined into parts of about PART_SIZE: few writes per scrape, and no
        # join of the whole page (a join holds the GIL, and scrapes wait on it during a render).
        self._pending.append(compressed)
        self._pending_size += len(compressed)
        if self._pending_size >= PART_SIZE:
            self._parts.append(b"".join(self._pending))
            self._pending, self._pending_size = [], 0

    def gzip_member(self, tail: Iterable[bytes]) -> tuple[bytes, ...]:
        """The shared segment followed by `tail`, as the parts of one gzip member."""
        if self._segment is None:
            self._collect(self._compressor.flush(zlib.Z_FULL_FLUSH))
            self._segment = (*self._parts, b"".join(self._pending))
            self._parts, self._pending = [], []
        finish = _deflate_compressor()
        end, crc, size = [], self._crc, self._size
        for chunk in tail:
            end.append(finish.compress(chunk))
            crc, size = zlib.crc32(chunk, crc), size + len(chunk)
        end.append(finish.flush())
        end.append(struct.pack("<II", crc, size & MASK))
        return (_GZIP_HEADER, *self._segment, b"".join(end))


MASK = 0xFFFFFFFF
PART_SIZE = 1 << 20


def _deflate_compressor() -> Any:
    # ISA-L compresses these pages about five times faster than zlib's fastest level, and its
    # level 2 was both faster and smaller than its level 1 on them; zlib remains the fallback
    # where ISA-L has no wheel.
    if isal_zlib is not None:
        return isal_zlib.compressobj(ISAL_LEVEL, isal_zlib.DEFLATED, -15)
    return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)


# --- fast rendering of the per-target families -----------------------------------------------


def render_per_target(store: Store) -> Iterator[str]:
    """The non-empty per-target families in chunks of bounded size, from the same `PER_TARGET`
    declarations; the escaped label string of each target is cached on
    it."""
    groups = group_targets(store)
    for per in PER_TARGET:
        targets = groups.get(per.kind, [])
        head = f"# HELP {per.spec.name} {_escape_help(per.spec.help)}\n"
        head += f"# TYPE {per.spec.name} gauge\n"
        # In slices of targets: joining and encoding hold the GIL, and a whole family (megabytes
        # at 50,000 jobs) would hold it for tens of ms; a render can also pause between slices.
        for start in range(0, len(targets), CHUNK_TARGETS):
            lines = _lines(per, targets[start : start + CHUNK_TARGETS])
            if lines:
                yield head + "".join(lines)
                head = ""


CHUNK_TARGETS = 512


def _labels(target: Target, own: bool) -> str:
    if own:  # two series per target: not worth a cached string per target
        provider, kind, target_id = target_labels(target)
        return f'provider="{provider}",kind="{kind}",target="{_escape_label(target_id)}"'
    if target.label_text is not None and target.label_model is target.model:
        return target.label_text
    names = _BASE_NAMES[(target.provider, target.kind)]
    text = ",".join(
        f'{n}="{_escape_label(v)}"' for n, v in zip(names, base_labels(target), strict=True)
    )
    target.label_text, target.label_model = text, target.model
    return text


def _lines(per: PerTarget, targets: list[Target]) -> list[str]:
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
    p.kind: p.spec.labels[:-1] if (p.states or p.current) else p.spec.labels
    for p in PER_TARGET
    if p.kind is not None
}
