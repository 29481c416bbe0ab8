"""``paretoedge export-set``: the models a user times on a board to calibrate its profile.

A calibration set must span what the study searched, or the fitted factors extrapolate:
every value of every searched dimension appears, the kernels the study's candidates use
(int8 QDQ matmuls for 8-bit specs, float ones otherwise, the sizes heads/FFN removal
leaves) are all present, and the FLOPs and weight bytes spread from the smallest to the
largest candidate. Structures are picked from the study's space starting from the
uncompressed teacher: first whichever point adds the most values not yet covered, then by
farthest-point sampling (the point farthest from those already picked, every dimension
scaled to [0, 1]), so a few dozen cover every value, the corners and the middle.

Latency does not depend on the trained weights, so each structure is the study's cached
teacher compressed by the spec without recovery or distillation steps: nothing is
trained. The files are those the device's runtime deploys (``model.int8.onnx``'s static
int8 QDQ for 8-bit specs on onnxruntime, float ONNX with the ``paretoedge.*`` metadata
otherwise), named ``sNN.onnx``, with ``manifest.json`` saying what each one is and how to
measure, calibrate and re-rank.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from paretoedge.search import StudyConfig
    from paretoedge.storage import Storage

_log = logging.getLogger(__name__)

#: Pools larger than this are sampled (seeded) instead of enumerated.
_MAX_POOL = 4000


@dataclass(frozen=True)
class SetMember:
    """One structure of the calibration set."""

    file: str
    params: dict[str, Any]
    spec: dict[str, Any]
    parameters: int
    weight_bytes: int
    linear_macs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "params": self.params,
            "spec": self.spec,
            "parameters": self.parameters,
            "weight_bytes": self.weight_bytes,
            "linear_macs": self.linear_macs,
        }


def _coordinate(p: Any, value: Any) -> float:
    """``value`` of dimension ``p`` scaled to [0, 1] (categoricals by their position)."""
    if p.kind == "categorical":
        choices = list(p.choices)
        numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in choices)
        order = sorted(choices) if numeric else choices
        return order.index(value) / max(1, len(order) - 1)
    low, high = float(p.low), float(p.high)
    if p.log and low > 0:
        low, high, value = math.log(low), math.log(high), math.log(float(value))
    return (float(value) - low) / (high - low) if high > low else 0.0


def _sample(p: Any, rng: random.Random) -> Any:
    if p.kind == "categorical":
        return rng.choice(list(p.choices))
    if p.step is not None:
        return rng.choice(list(p.grid()))
    low, high = float(p.low), float(p.high)
    if p.log and low > 0:
        v = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        v = rng.uniform(low, high)
    return int(round(v)) if p.kind == "int" else v


def _pool(space: Sequence[Any], seed: int) -> list[dict[str, Any]]:
    from paretoedge.search._space import enumerate_space

    try:
        enumerable = all(p.kind == "categorical" or p.step is not None for p in space)
        if enumerable:
            pool = []
            for point in enumerate_space(space):
                pool.append(point)
                if len(pool) > _MAX_POOL:
                    break
            if len(pool) <= _MAX_POOL:
                return pool
    except ConfigError:
        pass
    rng = random.Random(seed)
    out = []
    for _ in range(_MAX_POOL):
        values: dict[str, Any] = {}
        for p in space:
            if p.active(values):
                values[p.key] = _sample(p, rng)
        out.append(values)
    return out


def select_structures(config: StudyConfig, n: int) -> list[dict[str, Any]]:
    """``n`` points of ``config``'s space by farthest-point sampling (module doc).

    The first point is the one closest to the uncompressed teacher. Each next point is
    the one that adds the most values not yet in the set (so every value of every
    dimension appears as soon as ``n`` allows), ties broken by the distance to the set.
    A dimension that is inactive in a point (a ``when`` condition fails) counts as -1.

    Raises:
        ConfigError: ``n < 2`` or the study has no search space.
    """
    from paretoedge.search._space import baseline_params

    if n < 2:
        raise ConfigError("--n", n, "an integer >= 2")
    space = list(config.space)
    if not space:
        raise ConfigError("space", {}, "a study with at least one searched dimension")
    pool = _pool(space, config.seed)

    def coords(point: dict[str, Any]) -> tuple[float, ...]:
        return tuple(_coordinate(p, point[p.key]) if p.key in point else -1.0 for p in space)

    unique: dict[tuple[float, ...], dict[str, Any]] = {}
    for point in pool:
        unique.setdefault(coords(point), point)
    keys = list(unique)
    start = coords(baseline_params("teacher", space))
    first = min(keys, key=lambda k: sum((a - b) ** 2 for a, b in zip(k, start, strict=True)))
    chosen = [first]
    uncovered = {(j, v) for k in keys for j, v in enumerate(k)} - set(enumerate(first))
    dist = {k: sum((a - b) ** 2 for a, b in zip(k, first, strict=True)) for k in keys}
    while len(chosen) < min(n, len(keys)):
        # values of a dimension not yet in the set come first, then the farthest point
        nxt = max(keys, key=lambda k: (len(uncovered & set(enumerate(k))), dist[k], k))
        chosen.append(nxt)
        uncovered -= set(enumerate(nxt))
        for k in keys:
            d = sum((a - b) ** 2 for a, b in zip(k, nxt, strict=True))
            if d < dist[k]:
                dist[k] = d
    return [unique[k] for k in chosen]


def _linear_macs(model: Any, seq_len: int) -> int:
    import torch

    return sum(
        m.in_features * m.out_features * seq_len
        for m in model.modules()
        if isinstance(m, torch.nn.Linear)
    )


def export_set(
    storage: Storage,
    *,
    study: str,
    device: str,
    out: Path,
    n: int = 24,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the calibration set of ``study`` for ``device`` into ``out``; returns the
    manifest (also written as ``out/manifest.json``).

    Raises:
        NotFoundError: No such study.
        ConfigError: ``n < 2``, a study without a space, or ``device`` unknown.
    """
    from paretoedge import storage as st
    from paretoedge.compression import CompressionSpec, model_stats
    from paretoedge.export import export_onnx_files
    from paretoedge.hardware_profiles import load_profile
    from paretoedge.search import build_candidate, config_of
    from paretoedge.search._space import candidate_flat

    record = st.get_study(storage, name=study)
    profile = load_profile(device)
    config = config_of(record.config)
    points = select_structures(config, n)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    members: list[SetMember] = []
    for i, params in enumerate(points):
        flat = candidate_flat(config, params)
        flat["recovery.steps"] = 0  # latency does not depend on trained weights
        if any(k.startswith("distill.") for k in flat):
            flat["distill.steps"] = 0
        spec = CompressionSpec.from_flat(flat)
        built = build_candidate(config, spec)
        model, tokenizer, task = built.model, built.tokenizer, built.task
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            files = export_onnx_files(
                model, Path(tmp), seq_len=config.seq_len, spec=spec, tokenizer=tokenizer, task=task
            )
            int8 = "onnx_int8" in files and profile.runtime == "onnxruntime"
            name = f"s{i:02d}.onnx"
            shutil.move(str(files["onnx_int8" if int8 else "onnx"]), out / name)
        stats = model_stats(model)
        members.append(
            SetMember(
                file=name,
                params=dict(params),
                spec={k: v for k, v in flat.items() if not k.startswith("recovery.")},
                parameters=stats.parameters,
                weight_bytes=stats.stored_bytes,
                linear_macs=_linear_macs(model, config.seq_len),
            )
        )
        if progress is not None:
            progress(i + 1, len(points))
    manifest = build_manifest(record.name, profile, config, members)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def coverage(config: StudyConfig, members: Sequence[SetMember]) -> dict[str, Any]:
    """Per searched dimension: the values the set covers and those of the space it misses
    (a continuous dimension reports its covered range instead)."""
    out: dict[str, Any] = {}
    for p in config.space:
        seen = sorted({m.params[p.key] for m in members if p.key in m.params}, key=str)
        entry: dict[str, Any] = {"covered": seen}
        if p.kind == "categorical" or p.step is not None:
            entry["missing"] = [v for v in p.grid() if v not in seen]
        else:
            entry["range"] = [p.low, p.high]
        out[p.key] = entry
    return out


def build_manifest(
    study: str, profile: Any, config: StudyConfig, members: Sequence[SetMember]
) -> dict[str, Any]:
    def span(key: str) -> dict[str, Any]:
        vals = [getattr(m, key) for m in members]
        return {"min": min(vals), "max": max(vals), "ratio": max(vals) / max(1, min(vals))}

    from paretoedge.measure import RUNTIMES

    threads = profile.cores
    kit_runtime = profile.runtime if profile.runtime in RUNTIMES else None
    measure_step = (
        f"on the board: python -m paretoedge.measure *.onnx --runtime {kit_runtime} "
        f"--threads {threads} --out timings.csv"
        if kit_runtime is not None
        else f"on the board: time each file in {profile.runtime} (the measuring kit has no "
        f"{profile.runtime} adapter) and write timings.csv with columns onnx,latency_ms"
    )
    return {
        "study": study,
        "device": profile.name,
        "runtime": profile.runtime,
        "threads": threads,
        "seq_len": config.seq_len,
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "n": len(members),
        "coverage": coverage(config, members),
        "spread": {k: span(k) for k in ("parameters", "weight_bytes", "linear_macs")},
        "structures": [m.to_dict() for m in members],
        "steps": [
            measure_step,
            f"here: paretoedge calibrate --device {profile.name} --measurements timings.csv "
            "--name MYBOARD",
            f"here: paretoedge add-device {study} --device MYBOARD",
        ],
    }
