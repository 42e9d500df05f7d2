"""YAML configuration: loading, `${ENV}` substitution, secret files and validation.

Every problem in a file is reported at once, one line each, with the field path
(`brightdata.jobs[2]: ...`), so a user fixes a config in one round trip.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from scrapejobs_exporter.providers.ids import ID_CHARS, MAX_ID_LENGTH
from scrapejobs_exporter.yamlfile import FileProblem, YamlProblem, load_yaml, read_text_file

__all__ = [
    "AitronosConfig",
    "BrightDataConfig",
    "Config",
    "ConfigError",
    "load_config",
    "parse_config",
    "parse_duration",
]


class ConfigError(Exception):
    """A config file cannot be used; `problems` holds one line per mistake."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {p}" for p in self.problems))


# --- units -----------------------------------------------------------------------------------

MAX_CONFIG_BYTES = 1024 * 1024
MAX_SECRET_BYTES = 64 * 1024
MAX_DURATION = 366 * 86400.0  # a year: anything longer is a typo, and inf is not a duration
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Parse `30s`, `5m`, `1h30m`, `500ms` or a bare number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"invalid duration {value!r}: use a number with a unit, e.g. 30s, 5m, 1h"
                ) from None
        else:
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if math.isnan(seconds):
        raise ValueError("expected a duration such as 30s, 5m or 1h, not NaN")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION:
        raise ValueError("a duration must be at most 366d")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

# Ids go into URL paths, so anything that could change the path is rejected up front.
_ID_PATTERN = rf"^{ID_CHARS}$"
TargetId = Annotated[str, Field(pattern=_ID_PATTERN, max_length=MAX_ID_LENGTH)]


class _Strict(BaseModel):
    # No inf or NaN in any number: `request_timeout: .inf` or a `.inf` bucket is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _read_secret_file(path: Path) -> SecretStr:
    try:
        text = read_text_file(path, MAX_SECRET_BYTES).strip()
    except FileProblem as exc:
        raise ValueError(f"cannot read {_quoted(str(path))}: {exc}") from None
    if not text:
        raise ValueError(f"{str(path)!r} is empty")
    return SecretStr(text)


def _check_secret_file(path: Path | None) -> Path | None:
    if path is not None:
        _read_secret_file(path)
    return path


def _check_base_url(value: str) -> str:
    problem = f"invalid URL {_quoted(value)}: expected http(s)://host[:port]"
    if len(value) > 2048 or not _BASE_URL.match(value):
        raise ValueError(problem)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError(problem) from None
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError(f"invalid URL {_quoted(value)}: the port must be 1-65535")
    return value.rstrip("/")


_BASE_URL = re.compile(r"^https?://[^\s/?#\x00-\x1f\x7f]+(/[^\s\x00-\x1f\x7f]*)?$")


def _quoted(value: str, limit: int = 60) -> str:
    """A user's value in a message: quoted, control characters escaped, cut short."""
    text = repr(value[:limit])
    return text if len(value) <= limit else text + f" ({len(value)} characters)"


_PROXY_URL = re.compile(
    r"^https?://(?:[^\s/@]+@)?(?:\[[0-9A-Fa-f:.]+\]|[^\s/@:\[\]]+)(?::\d{1,5})?/?$"
)


def _check_proxy_url(value: str | None) -> str | None:
    """An HTTP forward proxy; https:// proxies are spoken to over TLS. No path, no query."""
    if value is not None and not _PROXY_URL.match(value):
        raise ValueError(
            "invalid proxy URL: expected http(s)://[user:password@]host[:port], e.g."
            " http://proxy.example:3128"
        )
    return value


class RetentionConfig(_Strict):
    """How long finished targets keep their series, and how many targets are tracked at most."""

    finished_ttl: Duration = 86400.0
    max_tracked: int = Field(default=20000, ge=1, le=10_000_000)


class DiscoveryConfig(_Strict):
    # The jobs list filters by whole days, so the window is widened to whole UTC days.
    lookback: Duration = Field(default=86400.0, ge=86400.0)
    # Between full scans, paging stops at the first page with no new id (lists are newest first).
    full_scan_every: int = Field(default=10, ge=1, le=1_000_000)


class StallConfig(_Strict):
    no_worker_after: Duration = Field(default=600.0, gt=0)
    no_progress_after: Duration = Field(default=900.0, gt=0)


def _check_buckets(bounds: list[float]) -> list[float]:
    # +Inf is always added by the exposition; finite is checked by allow_inf_nan.
    if not bounds or any(b <= 0 for b in bounds) or bounds != sorted(set(bounds)):
        raise ValueError("buckets must be positive and strictly increasing")
    if len(bounds) > 60:
        raise ValueError("at most 60 buckets")
    return bounds


Buckets = Annotated[list[float], AfterValidator(_check_buckets)]
# Seconds to hours: Studio jobs run from a minute to many hours, queues from none to hours.
DURATION_BUCKETS = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
                    14400.0, 28800.0, 86400.0]  # fmt: skip
QUEUE_BUCKETS = [0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0]
PROCESSING_BUCKETS = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0]


SNAPSHOT_BUCKETS = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
                    14400.0, 28800.0, 86400.0]  # fmt: skip


class BucketsConfig(_Strict):
    job_duration: Buckets = DURATION_BUCKETS
    job_queue: Buckets = QUEUE_BUCKETS
    aitronos_processing: Buckets = PROCESSING_BUCKETS
    snapshot_duration: Buckets = SNAPSHOT_BUCKETS


class _ProviderSection(_Strict):
    """What both providers' sections have: the request budget, the proxy, the base URL's
    check."""

    # Every call, retries included, in any 60 s; 100 is Bright Data's trial accounts' limit
    # across all products and Aitronos Standard's. The account's budget: shards split it (see
    # shard_max_requests_per_minute).
    max_requests_per_minute: int = Field(default=100, ge=2, le=100_000)
    # This shard's own share; by default the budget divided by --shard-count.
    shard_max_requests_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    shard_max_requests_per_day: int | None = Field(default=None, ge=1, le=100_000_000)
    # Unset: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY from the environment apply.
    proxy_url: str | None = None

    _check_url = field_validator("base_url", check_fields=False)(_check_base_url)
    _check_proxy = field_validator("proxy_url")(_check_proxy_url)

    # The name of the field with the account's secret; `<name>_file` reads it from a file.
    _secret: ClassVar[str]

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        """Exactly one of the secret and its file: a file's text takes the secret's place."""
        name = self._secret
        secret = _pick_secret(getattr(self, name), getattr(self, f"{name}_file"), name)
        object.__setattr__(self, name, secret)
        return self

    def _secret_value(self) -> str:
        secret: SecretStr = getattr(self, self._secret)  # never None after _one_secret
        return secret.get_secret_value()


class BrightDataConfig(_ProviderSection):
    api_token: SecretStr | None = None
    api_token_file: Path | None = None
    base_url: str = "https://api.brightdata.com"
    jobs: list[TargetId] = []
    snapshots: list[TargetId] = []
    ai_flows: list[TargetId] | Literal["all"] = []
    # Discovery: Scraper Studio jobs of these collectors (or of every collector), and the
    # snapshots of these datasets.
    collectors: list[TargetId] | Literal["all"] = []
    datasets: list[TargetId] = []
    max_requests_per_day: int | None = Field(default=None, ge=2, le=100_000_000)

    _secret = "api_token"
    _check_file = field_validator("api_token_file")(_check_secret_file)

    def token(self) -> str:
        return self._secret_value()


AitronosAuthHeader = Literal["X-API-Key", "api-key", "Authorization"]


class AitronosConfig(_ProviderSection):
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    base_url: str = "https://api.aitronos.com"
    path_prefix: str = "/v1"
    auth_header: AitronosAuthHeader = "X-API-Key"
    jobs: list[TargetId] = []
    discover: bool = False  # follow every job of the account through the jobs list
    # The Standard plan allows 10,000 a day (spread evenly over the day: about 6.9 a minute).
    # null: no daily quota.
    max_requests_per_day: int | None = Field(default=10_000, ge=2, le=100_000_000)

    _secret = "api_key"
    _check_file = field_validator("api_key_file")(_check_secret_file)

    @field_validator("path_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        segments = value.rstrip("/").split("/")[1:]
        if not re.match(r"^(/[A-Za-z0-9_.\-]+)*$", value.rstrip("/")) or any(
            s in (".", "..") for s in segments
        ):
            raise ValueError(f"invalid path prefix {value!r}: expected e.g. /v1 or /api/v1")
        return value.rstrip("/")

    def key(self) -> str:
        return self._secret_value()


def _pick_secret(value: SecretStr | None, path: Path | None, name: str) -> SecretStr:
    if value is not None and path is not None:
        raise ValueError(f"give either {name} or {name}_file, not both")
    if path is not None:
        return _read_secret_file(path)
    if value is None or not value.get_secret_value().strip():
        raise ValueError(f"{name} (or {name}_file) is required")
    return value


class Config(_Strict):
    # At least a second: a provider allows about 100 calls a minute in all.
    poll_interval: Duration = Field(default=30.0, ge=1.0)
    request_timeout: Duration = Field(default=10.0, gt=0, le=600.0)
    concurrency: int = Field(default=16, ge=1, le=1024)
    # Larger bodies are refused.
    max_response_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=1024**3)
    brightdata: BrightDataConfig | None = None
    aitronos: AitronosConfig | None = None
    retention: RetentionConfig = RetentionConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    stall: StallConfig = StallConfig()
    histogram_buckets: BucketsConfig = BucketsConfig()
    per_job_metrics: bool = True  # false: only the aggregates, for bounded cardinality
    # Remembers the targets and the finished aggregates across restarts (SQLite); relative to
    # the config file. None: everything lives in memory only.
    state_file: Path | None = None

    @field_validator("state_file")
    @classmethod
    def _check_state_file(cls, value: Path | None) -> Path | None:
        if value is not None and (not str(value).strip() or value.is_dir()):
            raise ValueError(f"{str(value)!r} is a directory: give a file path, e.g. state.db")
        return value


# --- loading ---------------------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute_env(node: Any, path: str, env: dict[str, str], errors: dict[str, str]) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; note unset variables by path."""
    if isinstance(node, dict):
        return {k: _substitute_env(v, _join(path, str(k)), env, errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_env(v, f"{path}[{i}]", env, errors) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors[path] = f"environment variable {name} is not set"
        # Keep the reference: a placeholder avoids a second, misleading error for the field.
        return match.group(0)

    return _ENV_REF.sub(replace, node)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _resolve_paths(data: Any, base_dir: Path) -> None:
    """Make `*_file` paths relative to the config file, as Prometheus does."""
    if not isinstance(data, dict):
        return
    state_file = data.get("state_file")
    if isinstance(state_file, str) and state_file and not os.path.isabs(state_file):
        data["state_file"] = str(base_dir / state_file)
    for section in ("brightdata", "aitronos"):
        block = data.get(section)
        if not isinstance(block, dict):
            continue
        for key in ("api_token_file", "api_key_file"):
            value = block.get(key)
            if isinstance(value, str) and value and not os.path.isabs(value):
                block[key] = str(base_dir / value)


def _field_model(annotation: Any) -> type[BaseModel] | None:
    """The settings block a field holds (`BrightDataConfig | None` -> BrightDataConfig)."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _split_location(loc: tuple[int | str, ...], extra: bool) -> tuple[str, str | None, str | None]:
    """(where, the union branch an error came from, where that union is) for a pydantic
    location: its parts are checked against the models' fields, and anything else (pydantic's
    names for union branches and validators, e.g. `literal['all']`) is left out."""
    out, branch, union_at = "", None, None
    model: type[BaseModel] | None = Config
    for index, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        last = index == len(loc) - 1
        if model is not None and part in model.model_fields:
            out = _join(out, part)
            model = _field_model(model.model_fields[part].annotation)
        elif extra and last:
            out = _join(out, _quoted(part, 40).strip("'\""))  # the unknown key itself
        else:
            branch, union_at = branch or part, union_at if union_at is not None else out
    return out or "(top level)", branch, union_at


def _describe_branch(tag: str) -> str:
    """`literal['all']` -> `'all'`, `list[...]` -> `a list of ids`."""
    if tag.startswith("literal["):
        return tag.removeprefix("literal[").removesuffix("]")
    if tag.startswith("list["):
        return "a list of ids"
    return tag


_MESSAGES = {
    "model_type": "expected a mapping of settings",
    "model_attributes_type": "expected a mapping of settings",
    "dict_type": "expected a mapping of settings",
    "finite_number": "must be a finite number (not .inf or .nan)",
}


def _format_validation_error(exc: ValidationError, skip: set[str]) -> list[str]:
    """One line per mistake, in plain words: a value that fits no branch of a union (e.g.
    `ai_flows`, a list of ids or `all`) is one line, not one per branch."""
    lines: list[str] = []
    unions: dict[str, list[tuple[str, str, str]]] = {}
    for err in exc.errors():
        where, branch, union_at = _split_location(err["loc"], err["type"] == "extra_forbidden")
        if where in skip:
            continue
        message = _MESSAGES.get(err["type"]) or err["msg"].removeprefix("Value error, ")
        message = message.replace("Input should be", "must be")
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "string_pattern_mismatch":
            message = (
                f"invalid id {_quoted(str(err['input']))}: letters, digits, '_', '.', '-' only"
            )
        elif err["type"] == "string_too_long" and where.endswith("]"):
            message = f"invalid id: longer than {MAX_ID_LENGTH} characters"
        if branch is not None and union_at is not None:
            unions.setdefault(union_at or "(top level)", []).append((where, branch, message))
            continue
        lines.append(f"{where}: {message}")
    for union_at, errors in unions.items():
        deeper = [(w, m) for w, _, m in errors if w != union_at]
        if deeper:  # the value had one branch's shape: only that branch's complaints matter
            lines += [f"{w}: {m}" for w, m in dict.fromkeys(deeper)]
        else:
            choices = " or ".join(dict.fromkeys(_describe_branch(b) for _, b, _ in errors))
            lines.append(f"{union_at}: expected {choices}")
    return lines


def parse_config(
    text: str,
    source: str = "<config>",
    env: dict[str, str] | None = None,
    base_dir: Path | None = None,
) -> Config:
    """Validate YAML text; raise ConfigError listing every problem found."""
    try:
        raw = load_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(source, [str(exc)]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(source, ["(top level): expected a mapping of settings"])
    env_errors: dict[str, str] = {}
    data = _substitute_env(raw, "", dict(os.environ) if env is None else env, env_errors)
    _resolve_paths(data, base_dir or Path.cwd())
    problems = [f"{path}: {msg}" for path, msg in env_errors.items()]
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        # A field whose env var is unset already has its own error; skip the echo it causes.
        problems += _format_validation_error(exc, skip=set(env_errors))
        raise ConfigError(source, problems) from None
    if problems:
        raise ConfigError(source, problems)
    return config


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    """Read and validate a config file."""
    path = Path(path)
    try:
        text = read_text_file(path, MAX_CONFIG_BYTES)
    except FileProblem as exc:
        raise ConfigError(str(path), [f"cannot read config file: {exc}"]) from None
    return parse_config(text, source=str(path), env=env, base_dir=path.parent)
