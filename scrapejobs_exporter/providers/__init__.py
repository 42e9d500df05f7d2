"""Provider clients: one module per provider, each endpoint a method plus a pure parser."""

from __future__ import annotations

from dataclasses import dataclass

from scrapejobs_exporter.providers.aitronos import AitronosClient
from scrapejobs_exporter.providers.brightdata import BrightDataClient

__all__ = ["Providers"]


@dataclass(slots=True)
class Providers:
    """The configured providers' clients; a provider left out of the config is None."""

    brightdata: BrightDataClient | None = None
    aitronos: AitronosClient | None = None

    async def aclose(self) -> None:
        for client in (self.brightdata, self.aitronos):
            if client is not None:
                await client.http.aclose()
