"""Logging to stderr as logfmt (the default) or one JSON object per line, with the official
exporters' flag values: `--log.level debug|info|warn|error`, `--log.format logfmt|json`."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "LogfmtFormatter", "logfmt", "setup_logging"]

LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("logfmt", "json")
# The spellings of the release before, accepted (hidden) for one more release.
OLD_LOG_LEVELS = {"warning": "warn"}
OLD_LOG_FORMATS = {"text": "logfmt"}

_LEVEL_NAMES = {"warning": "warn", "critical": "error"}
# A bare logfmt value: no space, quote, equals sign or control character, and not empty.
_BARE = re.compile(r'[^\s"=\\\x00-\x1f\x7f]+')


def logfmt(pairs: dict[str, Any]) -> str:
    """`key=value ...`, values quoted (with `\\"`, `\\\\`, `\\n` escapes) when they need it."""
    out = []
    for key, value in pairs.items():
        text = "" if value is None else str(value)
        if not _BARE.fullmatch(text):
            text = json.dumps(text, ensure_ascii=False)
        out.append(f"{key}={text}")
    return " ".join(out)


def _timestamp(record: logging.LogRecord) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z"
    )


def _level(record: logging.LogRecord) -> str:
    name = record.levelname.lower()
    return _LEVEL_NAMES.get(name, name)


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": _level(record),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    if record.exc_info:
        fields["exc"] = formatter.formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return logfmt(_fields(record, self))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record, self), ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    level = OLD_LOG_LEVELS.get(level, level)
    fmt = OLD_LOG_FORMATS.get(fmt, fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": "WARNING"}.get(level, level.upper()))
    # httpx logs every request with its full URL at INFO; ours are enough.
    for noisy in ("httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
