"""`scrapejobs-exporter healthcheck`: probe the running exporter's `/-/healthy` (Docker's
HEALTHCHECK), on the address and with the scheme it actually serves.

Without flags the probe reads the flags of the exporter itself from `/proc/<pid>/cmdline`
(PID 1 in a container), so a `docker run ... run --web.listen-address :9000
--web.config.file web.yml` is checked on port 9000 over TLS with nothing else to change.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from scrapejobs_exporter.server import ListenAddress
from scrapejobs_exporter.webconfig import load_web_config

__all__ = ["HEALTH_PATH", "exporter_flags", "probe", "probe_url"]

HEALTH_PATH = "/-/healthy"


def exporter_flags(pid: int, proc: Path = Path("/proc")) -> list[str] | None:
    """The arguments after `run` of the process `pid`, or None if it is no exporter `run`."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in argv if a]
    if not any("scrapejobs" in a for a in args[:3]) or "run" not in args:
        return None
    return args[args.index("run") + 1 :]


def probe_url(listen: ListenAddress, tls: bool) -> str:
    """A wildcard listen address is probed on the loopback of its family."""
    host = listen.host
    if host in (None, "", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{listen.port}{HEALTH_PATH}"


def probe(listen: ListenAddress, web_config_file: str | None, timeout: float) -> str | None:
    """None when the exporter answers 200, else what went wrong (one line)."""
    tls = web_config_file is not None and load_web_config(web_config_file).tls
    url = probe_url(listen, tls)
    # The exporter's own certificate need not name the loopback address; the probe checks
    # liveness, not identity. A client certificate, if the web config requires one, is not
    # presented: such set-ups need their own probe.
    verify: ssl.SSLContext | bool = False
    try:
        # trust_env=False: an HTTP(S)_PROXY meant for the providers must not carry the probe.
        response = httpx.get(url, verify=verify, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"{url}: HTTP {response.status_code}"
    return None
