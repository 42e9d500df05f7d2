"""Horizontal sharding: each replica owns the targets whose id hashes to its shard."""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass

__all__ = ["Shard", "ShardError", "shard_from"]

_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ValueError):
    """The shard flags (or the pod name they rely on) do not make sense."""


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    def owns(self, target_id: str) -> bool:
        # crc32 is stable across processes and Python versions (unlike hash()).
        return self.count == 1 or zlib.crc32(target_id.encode()) % self.count == self.index

    def __str__(self) -> str:
        return f"shard {self.index} of {self.count}"


def shard_from(index: int | None, count: int, env: dict[str, str] | None = None) -> Shard:
    """From `--shard-index`/`--shard-count`; without an index, from a StatefulSet pod name
    (`POD_NAME`, else `HOSTNAME`, e.g. `scrapejobs-exporter-2` -> 2)."""
    if count < 1:
        raise ShardError(f"--shard-count must be at least 1, not {count}")
    if index is None:
        if count == 1:
            return Shard()
        env = dict(os.environ) if env is None else env
        name = env.get("POD_NAME") or env.get("HOSTNAME") or ""
        match = _ORDINAL.search(name)
        if match is None:
            raise ShardError(
                f"--shard-index is not given and the pod name {name!r} has no ordinal suffix"
            )
        index = int(match.group(1))
    if not 0 <= index < count:
        raise ShardError(f"--shard-index {index} is outside 0..{count - 1}")
    return Shard(index, count)
