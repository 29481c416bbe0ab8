"""Record a table of a whole search space, measured once by the real pipeline.

Every point of an enumerable space (plus the baselines) goes through
:class:`~paretoedge.search.PipelineEvaluator`: the fine-tuned teacher, compression with the
study's short recovery budget, validation accuracy, ONNX export and every device's hardware
model. The table (gzip JSON) then replays a search in seconds
(``bench/search_efficiency.py --replay``): the evaluator becomes a table lookup.

Presets:

* ``minilm``: the bundled MiniLM on the sentiment task, a joint space of 300 points
  (heads x FFN x sparsity x bits/scheme, low-rank energy where FFN is whole) plus the two
  baselines, 30 recovery steps, devices rpi4, mali-g76, stm32h7, host-ort. Hours of CPU on
  2 cores. Student depth is not in it: ``distill.steps`` is not a study key yet, so every
  ``distill.layers`` point would pay the default 300 distillation steps.
* ``tiny``: tiny-bert (random 2-layer BERT built from a config) with a 4-step recovery on
  256 training examples, 18 points (FFN x sparsity x bits) plus the baselines, devices
  rpi4 and stm32h7: what a shared, overloaded 2-core machine afforded in half an hour. Its
  accuracies are those of a tiny model and say nothing about MiniLM.

Writing is incremental (``--out`` is rewritten after every point) and a run continues a
partial table, so a long recording can be interrupted and resumed.

Usage: python bench/record_space.py --preset tiny --out bench/data/space_tiny.json.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEVICES = ["rpi4", "mali-g76", "stm32h7", "host-ort"]

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "name": "record-tiny",
        "model": "tiny-bert",
        "task": "sentiment",
        "seed": 0,
        "data": {"train_limit": 256, "validation_limit": 256, "test_limit": 64},
        "teacher": {"epochs": 1.0},
        "space": {
            "heads.keep": [1.0],
            "ffn.keep": [1.0, 0.5],
            "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.3},
            "quant.bits": [32, 8, 4],
        },
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": ["rpi4", "stm32h7"],
        "recovery": {"steps": 4},
    },
    "minilm": {
        "name": "record-minilm",
        "model": "minilm",
        "task": "sentiment",
        "seed": 0,
        "data": {"train_limit": 2048, "validation_limit": 512, "test_limit": 256},
        "space": {
            "heads.keep": [1.0, 0.75, 0.5],
            "ffn.keep": [1.0, 0.75, 0.5, 0.25],
            "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.2},
            "quant.bits": [32, 16, 8, 4],
            "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
            "lowrank.energy": {"choices": [1.0, 0.9], "when": {"ffn.keep": [1.0]}},
        },
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": DEVICES,
        "recovery": {"steps": 30},
    },
}


def points(config: Any) -> list[dict[str, Any]]:
    """The normalised flat spec of every point of the space, and of every baseline."""
    from paretoedge.search import BASELINE_SPECS, candidate_flat, enumerate_space, normalize_flat

    flats = [candidate_flat(config, p) for p in enumerate_space(config.space)]
    flats = [_drop_identity(f) for f in flats]
    flats += [dict(f) for f in BASELINE_SPECS.values()]
    return [normalize_flat(f) for f in flats]


def _drop_identity(flat: dict[str, Any]) -> dict[str, Any]:
    # lowrank.energy 1.0 keeps every singular value: the same model as no factorisation
    if flat.get("lowrank.energy") == 1.0:
        flat = {k: v for k, v in flat.items() if not k.startswith("lowrank.")}
    return flat


def load_table(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


def save_table(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="record at most N new points")
    args = ap.parse_args()

    import logging

    logging.disable(logging.WARNING)
    from paretoedge.search import parse_config
    from paretoedge.search._evaluator import PipelineEvaluator, spec_key

    study = PRESETS[args.preset]
    config = parse_config(study)
    doc: dict[str, Any] = {
        "meta": {
            "preset": args.preset,
            "study": study,
            "command": "python bench/record_space.py " + shlex.join(sys.argv[1:]),
            "record_seconds": 0.0,
        },
        "rows": {},
    }
    if args.out.is_file():
        doc = load_table(args.out)
        doc["meta"]["study"] = study  # the preset may have narrowed: keep its points only
    flats = points(config)
    keep = {spec_key(f) for f in flats}
    rows: dict[str, Any] = {k: v for k, v in doc["rows"].items() if k in keep}
    doc["rows"] = rows
    todo = [f for f in flats if spec_key(f) not in rows]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(f"{len(flats)} points, {len(rows)} recorded, {len(todo)} to do", file=sys.stderr)
    ev = PipelineEvaluator(config)
    t_prepare = time.perf_counter()
    ev.prepare()
    doc["meta"]["record_seconds"] += time.perf_counter() - t_prepare
    with tempfile.TemporaryDirectory() as tmp:
        for i, flat in enumerate(todo):
            t0 = time.perf_counter()
            res = ev.evaluate(flat, devices=config.devices, onnx_path=Path(tmp) / "m.onnx")
            e = res.evaluation
            wall = time.perf_counter() - t0
            rows[spec_key(flat)] = {
                "spec": flat,
                "accuracy": e.accuracy,
                "size_bytes": e.size_bytes,
                "parameters": e.parameters,
                "sparsity": e.sparsity,
                "wall_s": round(wall, 2),
                "devices": {
                    d: m.__dict__ | {"violations": list(m.violations)} for d, m in e.devices.items()
                },
            }
            doc["meta"]["record_seconds"] += wall
            doc["meta"]["points"] = len(rows)
            save_table(args.out, doc)
            print(
                f"  {i + 1}/{len(todo)} {wall:5.1f} s acc {e.accuracy:.3f}: {spec_key(flat)}",
                file=sys.stderr,
            )
    print(
        f"{len(rows)} points in {args.out}; {doc['meta']['record_seconds']:.0f} s of recording",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
