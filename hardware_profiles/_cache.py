"""On-disk cache of compiled-cost results, keyed by graph structure and target.

A search visits the same shapes many times (quantisation and sparsity change weight values
and metadata, not the graph), so the kernel table of one (structure, target) pair is built
once. Entries are JSON files written to a temporary file in the same directory and moved
into place with :func:`os.replace`, which is atomic on POSIX: several processes may read
and write the cache at the same time, and a reader sees a whole entry or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from ._lower import LoweredGraph

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    from paretoedge.settings import get_settings

    return Path(get_settings().cost_cache)


def cache_key(structure_hash: str, target_key: str) -> str:
    return hashlib.sha256(f"{structure_hash}|{target_key}".encode()).hexdigest()[:32]


def cache_get(key: str) -> LoweredGraph | None:
    path = cache_dir() / f"{key}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError, ValueError):
        log.warning("ignoring unreadable cost-cache entry %s", path)
        return None
    try:
        return LoweredGraph.from_json(data)
    except (KeyError, TypeError, ValueError):
        log.warning("ignoring stale cost-cache entry %s", path)
        return None


def cache_put(key: str, lowered: LoweredGraph) -> Path:
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(lowered.to_json(), fh)
        final = directory / f"{key}.json"
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final
