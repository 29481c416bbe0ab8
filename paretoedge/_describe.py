"""One short, human description of a candidate, used by every view (search progress and
summary, ``front``, ``show``, plots, the HTTP API, model cards), and the grouping of twins.

A stored spec lists every field of every transform it enables (``normalize_flat``), so a
description that printed it all would bury the one setting that matters; fields at their
defaults are left out, except each transform's first field, its main setting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paretoedge.storage import FrontEntry

__all__ = ["collapse_twins", "describe_spec"]

_SHORT = {
    "prune.sparsity": "sparsity",
    "heads.keep": "heads",
    "ffn.keep": "ffn",
    "lowrank.rank": "rank",
    "lowrank.energy": "energy",
    "distill.layers": "layers",
}


def _word(key: str, value: Any) -> str:
    if key in _SHORT:
        return f"{_SHORT[key]} {value:g}" if isinstance(value, float) else f"{_SHORT[key]} {value}"
    if key == "quant.bits":
        return "fp32" if value == 32 else "fp16" if value == 16 else f"int{value}"
    if key == "quant.scheme":
        return "k-means" if value == "cluster" else f"{value}"
    if key.startswith("quant.layer_bits."):
        return f"{key.rsplit('.', 1)[1]}:{value}b"
    return f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"


def _is_default(flat: Mapping[str, Any], key: str) -> bool:
    """Whether ``flat[key]`` is its transform's default: the value the key takes when the
    transform is switched on by one of its other keys alone."""
    from paretoedge.compression import CompressionSpec
    from paretoedge.errors import ParetoEdgeError

    section = key.split(".", 1)[0]
    sibling = next((k for k in flat if k != key and k.split(".", 1)[0] == section), None)
    if sibling is None:
        return False
    try:
        default = CompressionSpec.from_flat({sibling: flat[sibling]}).to_flat().get(key)
    except ParetoEdgeError:  # keys of a custom evaluator's own
        return False
    return default is not None and default == flat[key]


def describe_spec(spec: Mapping[str, Any]) -> str:
    """``sparsity 0.3 int8``: what a candidate changes, in the spec's order, without the
    recovery budget and without fields at their defaults ("uncompressed" if nothing)."""
    sections: dict[str, list[str]] = {}
    for key in spec:
        if not key.startswith("recovery."):
            sections.setdefault(key.split(".", 1)[0], []).append(key)
    words: list[str] = []
    for first, *rest in sections.values():
        words.append(_word(first, spec[first]))
        words.extend(_word(k, spec[k]) for k in rest if not _is_default(spec, k))
    return " ".join(w for w in words if w) or "uncompressed"


def collapse_twins(entries: Sequence[FrontEntry]) -> list[tuple[FrontEntry, tuple[int, ...]]]:
    """Front entries with twins folded: each distinct (spec, baseline) once, at its first
    position, with the trial numbers of its later twins (``also trials 11, 14``).

    Twins are trials that proposed a configuration already evaluated and reused its result,
    so their metrics are the same; a table that listed each would repeat one point.
    """
    first: dict[str, int] = {}
    out: list[tuple[FrontEntry, list[int]]] = []
    for e in entries:
        c = e.candidate
        key = json.dumps([c.baseline_name, c.flat, e.rank], sort_keys=True, default=str)
        if key in first:
            out[first[key]][1].append(c.trial_number)
            continue
        first[key] = len(out)
        out.append((e, []))
    return [(e, tuple(also)) for e, also in out]
