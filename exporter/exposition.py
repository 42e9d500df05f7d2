"""Rendering families to the Prometheus text format and OpenMetrics, and caching the bytes.

The exposition is rendered once per poll cycle, off the event loop, and a scrape only picks the
cached bytes (gzipped or not) for the format the client asked for.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable
from dataclasses import dataclass

from exporter.metrics import Family

__all__ = [
    "OPENMETRICS_TYPE",
    "TEXT_TYPE",
    "Exposition",
    "choose_format",
    "format_value",
    "render_openmetrics",
    "render_text",
    "wants_gzip",
]

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
GZIP_LEVEL = 1  # a fast level: the bytes are re-made every cycle, and scrapes are local traffic


def format_value(value: float) -> str:
    """Integers without a decimal point (`13`, not `13.0`); Go's spellings for the specials."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", r"\\").replace("\n", r"\n")
    return text.replace('"', r"\"") if openmetrics else text


def _render(families: Iterable[Family], openmetrics: bool) -> bytes:
    lines: list[str] = []
    append = lines.append
    for family in families:
        spec = family.spec
        kind = spec.exposition_type
        # OpenMetrics names a counter family without `_total`; the text format with it.
        name = spec.name.removesuffix("_total") if openmetrics and kind == "counter" else spec.name
        append(f"# HELP {name} {_escape_help(spec.help, openmetrics)}")
        append(f"# TYPE {name} {kind}")
        for sample_name, names, values, value in family.samples:
            if names:
                pairs = ",".join(
                    f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True)
                )
                append(f"{sample_name}{{{pairs}}} {format_value(value)}")
            else:
                append(f"{sample_name} {format_value(value)}")
    if openmetrics:
        append("# EOF")
    return ("\n".join(lines) + "\n").encode("utf-8")


def render_text(families: Iterable[Family]) -> bytes:
    return _render(families, openmetrics=False)


def render_openmetrics(families: Iterable[Family]) -> bytes:
    return _render(families, openmetrics=True)


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
    content_type: str
    body: bytes
    gzipped: bytes


@dataclass(frozen=True, slots=True)
class Exposition:
    """Both formats, plain and gzipped, made in one go from one list of families."""

    text: RenderedFormat
    openmetrics: RenderedFormat

    @classmethod
    def build(cls, families: list[Family]) -> Exposition:
        text = render_text(families)
        om = render_openmetrics(families)
        return cls(
            RenderedFormat(TEXT_TYPE, text, gzip.compress(text, GZIP_LEVEL, mtime=0)),
            RenderedFormat(OPENMETRICS_TYPE, om, gzip.compress(om, GZIP_LEVEL, mtime=0)),
        )

    def pick(self, accept: str | None) -> RenderedFormat:
        return self.openmetrics if choose_format(accept) == "openmetrics" else self.text
