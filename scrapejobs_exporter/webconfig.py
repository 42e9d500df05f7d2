"""`--web.config.file`: TLS and basic auth in the exporter-toolkit format of official exporters.

```yaml
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt                     # optional
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS12
basic_auth_users:
  alice: $2b$12$...                          # bcrypt hash
```

Relative paths are relative to the web config file. Python's TLS stack cannot ask for a client
certificate without verifying it, so `RequestClientCert` and `RequireAnyClientCert` are refused
with a clear error rather than silently weakened or strengthened.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import os
import re
import ssl
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from scrapejobs_exporter.yamlfile import FileProblem, YamlProblem, load_yaml, read_text_file

__all__ = ["BasicAuth", "WebConfig", "WebConfigError", "load_web_config"]

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_TLS_KEYS = frozenset(
    {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"}
)
MAX_WEB_CONFIG_BYTES = 1024 * 1024
MAX_PEM_BYTES = 1024 * 1024
_BCRYPT_HASH = re.compile(r"^\$2[aby]?\$\d{2}\$[./A-Za-z0-9]{53}$")


class WebConfigError(Exception):
    """The web config cannot be used; the message is one line naming the field."""


@dataclass(frozen=True, slots=True)
class WebConfig:
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.ssl_context is not None


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    try:
        raw = load_yaml(read_text_file(path, MAX_WEB_CONFIG_BYTES))
    except FileProblem as exc:
        raise WebConfigError(f"{path}: cannot read web config: {exc}") from None
    except YamlProblem as exc:
        raise WebConfigError(f"{path}: {exc}") from None
    try:
        return parse_web_config(raw, path.parent)
    except WebConfigError as exc:
        raise WebConfigError(f"{path}: {exc}") from None


def parse_web_config(raw: Any, base_dir: Path) -> WebConfig:
    data = _mapping(raw or {}, "(top level)")
    unknown = sorted(set(data) - {"tls_server_config", "basic_auth_users"})
    if unknown:
        raise WebConfigError(f"{unknown[0]}: unknown key")
    tls = data.get("tls_server_config")
    context = None if tls is None else _ssl_context(_mapping(tls, "tls_server_config"), base_dir)
    users = _users(data.get("basic_auth_users"))
    return WebConfig(context, users)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise WebConfigError(f"{where}: expected a mapping")
    return value


def _text(tls: dict[str, Any], key: str) -> str:
    value = tls.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WebConfigError(f"tls_server_config.{key}: expected a string")
    return value


def _ssl_context(tls: dict[str, Any], base_dir: Path) -> ssl.SSLContext:
    unknown = sorted(set(tls) - _TLS_KEYS)
    if unknown:
        raise WebConfigError(f"tls_server_config.{unknown[0]}: unknown key")
    cert, key = _text(tls, "cert_file"), _text(tls, "key_file")
    if not cert:
        raise WebConfigError("tls_server_config.cert_file: required")
    if not key:
        raise WebConfigError("tls_server_config.key_file: required")
    auth = _text(tls, "client_auth_type") or "NoClientCert"
    ca = _text(tls, "client_ca_file")
    _check_client_auth(auth, ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _set_versions(context, tls)
    for key_name, name in (("cert_file", cert), ("key_file", key), ("client_ca_file", ca)):
        if name:
            _regular_file(base_dir / name, key_name)
    try:
        context.load_cert_chain(base_dir / cert, base_dir / key)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(
            f"tls_server_config.cert_file/key_file: cannot load {cert!r} and {key!r}: "
            f"{_ssl_reason(exc)}"
        ) from None
    if ca:
        try:
            context.load_verify_locations(cafile=base_dir / ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"tls_server_config.client_ca_file: cannot load {ca!r}: {_ssl_reason(exc)}"
            ) from None
    context.verify_mode = _VERIFY_MODES[auth]
    return context


def _regular_file(path: Path, key: str) -> None:
    """OpenSSL would wait forever on a FIFO and read /dev/zero without end: refuse both."""
    try:
        read_text_file(path, MAX_PEM_BYTES)
    except FileProblem as exc:
        raise WebConfigError(f"tls_server_config.{key}: cannot read {str(path)!r}: {exc}") from None


def _check_client_auth(auth: str, ca: str) -> None:
    if auth not in CLIENT_AUTH_TYPES:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: invalid {auth!r}; "
            f"expected one of {', '.join(CLIENT_AUTH_TYPES)}"
        )
    if auth not in _VERIFY_MODES:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {auth} is not supported here (Python's TLS "
            "cannot accept a client certificate without verifying it); use "
            "VerifyClientCertIfGiven or RequireAndVerifyClientCert with a client_ca_file"
        )
    if ca and auth == "NoClientCert":
        raise WebConfigError(
            "tls_server_config.client_ca_file: set without a client_auth_type that checks "
            "client certificates"
        )
    if not ca and auth != "NoClientCert":
        raise WebConfigError(f"tls_server_config.client_ca_file: required by {auth}")


def _set_versions(context: ssl.SSLContext, tls: dict[str, Any]) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # exporter-toolkit's default
    for key in ("min_version", "max_version"):
        name = _text(tls, key)
        if not name:
            continue
        if name not in TLS_VERSIONS:
            raise WebConfigError(
                f"tls_server_config.{key}: invalid {name!r}; expected one of "
                f"{', '.join(TLS_VERSIONS)}"
            )
        if key == "min_version":
            context.minimum_version = TLS_VERSIONS[name]
        else:
            context.maximum_version = TLS_VERSIONS[name]
    # MAXIMUM_SUPPORTED is a negative sentinel, so only an explicit maximum is compared.
    explicit_max = context.maximum_version != ssl.TLSVersion.MAXIMUM_SUPPORTED
    if explicit_max and context.maximum_version < context.minimum_version:
        raise WebConfigError("tls_server_config.max_version: lower than min_version")


def _ssl_reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def _users(raw: Any) -> dict[str, bytes]:
    if raw is None:
        return {}
    users = _mapping(raw, "basic_auth_users")
    out: dict[str, bytes] = {}
    for name, hashed in users.items():
        if not name or ":" in name:
            raise WebConfigError(f"basic_auth_users.{name}: invalid user name")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.match(hashed):
            raise WebConfigError(f"basic_auth_users.{name}: expected a bcrypt hash ($2b$...)")
        out[name] = hashed.encode()
    return out


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes.

    bcrypt is slow on purpose, so checks run in worker threads (bcrypt releases the GIL), in
    parallel, never on the event loop and without a lock. Answers are remembered under a
    SHA-256 of user, hash and password (never the password itself): a valid login is checked
    once, a wrong password sent again is refused without another run, and identical checks in
    flight share one run. Checks waiting for a thread are taken newest first, and past
    `MAX_WAITING` the oldest is refused unchecked: under a flood of wrong passwords a login
    that just arrived waits for about one check, not for the whole queue (a flood's requests
    only come back after their answers, so they arrive after it). An unknown user is checked
    against a dummy hash of the configured users' highest cost, so that a wrong name takes as
    long as a wrong password (and a remembered refusal is as quick for both).
    """

    CACHE_SIZE = 1024
    MAX_WAITING = 64

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._answers: OrderedDict[bytes, bool] = OrderedDict()
        self._running: dict[bytes, asyncio.Future[bool]] = {}
        self.workers = max(2, os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="bcrypt")
        self._busy = 0
        self._waiting: list[tuple[bytes, bytes, bytes, asyncio.Future[bool]]] = []
        self._dummy = _dummy_hash(max((_cost(h) for h in users.values()), default=10))

    async def check(self, header: str | None) -> bool:
        credentials = _parse_basic(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed or b"", password))).digest()
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
            return answer
        result = self._running.get(key)
        if result is None:
            result = asyncio.get_running_loop().create_future()
            self._running[key] = result
            self._waiting.append((key, password, hashed or self._dummy, result))
            if len(self._waiting) > self.MAX_WAITING:
                self._refuse(self._waiting.pop(0))
            self._start_next()
        # Shielded: a client hanging up must not cancel a run other requests wait for.
        ok = await asyncio.shield(result)
        return ok and hashed is not None

    def _refuse(self, item: tuple[bytes, bytes, bytes, asyncio.Future[bool]]) -> None:
        key, _, _, result = item
        self._running.pop(key, None)
        if not result.done():
            result.set_result(False)  # unchecked, so not remembered

    def _start_next(self) -> None:
        loop = asyncio.get_running_loop()
        while self._busy < self.workers and self._waiting:
            key, password, hashed, result = self._waiting.pop()  # the newest
            self._busy += 1
            run = loop.run_in_executor(self._pool, _bcrypt_check, password, hashed)
            run.add_done_callback(functools.partial(self._finished, key, result, hashed))

    def _finished(
        self, key: bytes, result: asyncio.Future[bool], hashed: bytes, run: asyncio.Future[bool]
    ) -> None:
        self._busy -= 1
        self._running.pop(key, None)
        ok = False if run.cancelled() or run.exception() is not None else run.result()
        if not result.done():
            result.set_result(ok)
        if not run.cancelled() and run.exception() is None:
            self._answers[key] = ok and hashed != self._dummy
            if len(self._answers) > self.CACHE_SIZE:
                self._answers.popitem(last=False)
        self._start_next()


def _cost(hashed: bytes) -> int:
    """The work factor of a `$2b$12$...` hash."""
    return int(hashed.split(b"$")[2])


@functools.cache
def _dummy_hash(cost: int) -> bytes:
    """Checked when the user is unknown, so a wrong name costs as long as a wrong password."""
    return bcrypt.hashpw(b"scrapejobs-exporter", bcrypt.gensalt(rounds=min(max(cost, 4), 31)))


def _bcrypt_check(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def _parse_basic(header: str | None) -> tuple[str, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    try:
        return user.decode("utf-8"), password
    except UnicodeDecodeError:
        return None
