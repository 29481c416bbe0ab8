"""Record a table of a whole search space, measured once by the real pipeline.

Every point of an enumerable space (plus the baselines) goes through
:class:`~paretoedge.search.PipelineEvaluator`: the fine-tuned teacher, compression with the
study's short recovery budget, validation accuracy, ONNX export and every device's hardware
model. The table (gzip JSON) then replays a search in seconds
(``bench/search_efficiency.py --replay``): the evaluator becomes a table lookup.

Presets:

* ``minilm``: the bundled MiniLM on the sentiment task, a joint space of 432 points
  (student depth 6/4/3 x heads x FFN, low-rank energy where FFN is whole x sparsity x
  bits/scheme) plus the two baselines, 30 recovery steps (a shallower student first pays the
  default 300 distillation steps), devices rpi4, mali-g76, stm32h7, host-ort. Hours of CPU on
  2 cores; recorded in two phases (below).
* ``tiny``: tiny-bert (random 2-layer BERT built from a config) with a 4-step recovery on
  256 training examples, 18 points (FFN x sparsity x bits) plus the baselines, devices
  rpi4 and stm32h7: what a shared, overloaded 2-core machine afforded in half an hour. Its
  accuracies are those of a tiny model and say nothing about MiniLM.

Writing is incremental (``--out`` is rewritten after every point) and a run continues a
partial table, so a long recording can be interrupted and resumed.

Phases. ``--phase all`` (the default) runs the whole pipeline per point. The training half
and the hardware half can also run apart, on different machines:

* ``--phase accuracy [--shard I/N] [--torch-device cuda]``: compression, recovery and
  validation accuracy, plus stored size, parameters and sparsity of the *trained*
  candidate; no ONNX export, no TVM. Each shard writes its own file. ``--torch-device``
  makes every tensor of the run live on that device (``torch.set_default_device``, the
  teacher moved there): a recording convenience for a machine with an accelerator, the
  library itself trains on the CPU.
* ``--merge FILE...``: joins shard files into ``--out``.
* ``--phase devices``: fills every row's device metrics from the candidate's structure
  (:meth:`PipelineEvaluator.structural_metrics`: compression without training, ONNX, the
  hardware models). The structure equals the trained candidate's except where global
  magnitude pruning or low-rank energy follows distillation (see
  :mod:`paretoedge.search._cheap_metrics`); the row keeps the trained size and sparsity and
  records the structural ones beside them, so the difference is visible.

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
            "distill.layers": [6, 4, 3],
            "heads.keep": [1.0, 0.75, 0.5],
            "ffn.keep": [1.0, 0.5, 0.25],
            "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.3},
            "quant.bits": [32, 8, 4],
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


#: MiniLM's depth: a student of that many layers is the teacher's own depth.
_TEACHER_DEPTH = 6


def _drop_identity(flat: dict[str, Any]) -> dict[str, Any]:
    # lowrank.energy 1.0 keeps every singular value: the same model as no factorisation;
    # a student as deep as the teacher is the teacher
    if flat.get("lowrank.energy") == 1.0:
        flat = {k: v for k, v in flat.items() if not k.startswith("lowrank.")}
    if flat.get("distill.layers") == _TEACHER_DEPTH:
        flat = {k: v for k, v in flat.items() if not k.startswith("distill.")}
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


def _parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected I/N, e.g. 0/8") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--shard {text!r}: expected 0 <= I < N")
    return i, n


def _new_doc(preset: str, study: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": {
            "preset": preset,
            "study": study,
            "command": "python bench/record_space.py " + shlex.join(sys.argv[1:]),
            "record_seconds": 0.0,
        },
        "rows": {},
    }


def _merge(out: Path, parts: list[Path]) -> None:
    """Join shard tables into ``out``: rows by spec key, the shards' commands listed.

    ``record_seconds`` becomes the sum of the rows' own ``wall_s`` (shards started from a
    common partial table would otherwise count its seconds once per shard)."""
    doc: dict[str, Any] | None = load_table(out) if out.is_file() else None
    for part in parts:
        piece = load_table(part)
        meta = piece["meta"]
        commands = list(meta.pop("commands", []))
        if "command" in meta:
            commands.append(meta.pop("command"))
        if doc is None:
            doc = piece
            doc["meta"]["commands"] = []
        for key, row in piece["rows"].items():
            # a device-phase shard carries every row, with device metrics on its own only
            known_row = doc["rows"].get(key)
            if known_row is None or row.get("devices") or not known_row.get("devices"):
                doc["rows"][key] = row
        seconds = meta.get("devices_seconds", 0.0)
        if piece is not doc and seconds:
            doc["meta"]["devices_seconds"] = doc["meta"].get("devices_seconds", 0.0) + seconds
        known = doc["meta"]["commands"]
        known.extend(c for c in commands if c not in known)
        for key in ("torch_device", "host"):
            if key in meta:
                doc["meta"][key] = meta[key]
    assert doc is not None
    doc["meta"]["points"] = len(doc["rows"])
    doc["meta"]["record_seconds"] = round(sum(r["wall_s"] for r in doc["rows"].values()), 1)
    save_table(out, doc)
    print(f"{len(doc['rows'])} points in {out}", file=sys.stderr)


def _device_metrics(m: Any) -> dict[str, Any]:
    return m.__dict__ | {"violations": list(m.violations)}


def _architecture(flat: dict[str, Any]) -> str:
    """The part of a point that decides its graph: everything but training, pruning and
    quantisation (those change weight values and metadata, not the ONNX structure)."""
    skip = ("recovery.", "prune.", "quant.")
    return json.dumps({k: v for k, v in flat.items() if not k.startswith(skip)}, sort_keys=True)


def _fill_devices(
    ev: Any,
    config: Any,
    doc: dict[str, Any],
    out: Path,
    limit: int | None,
    shard: tuple[int, int] = (0, 1),
) -> None:
    """The device phase: every row without device metrics gets them from its structure."""
    from paretoedge.compression import CompressionSpec

    rows = doc["rows"]
    todo = [k for k, r in rows.items() if not r.get("devices")]
    # a shard takes whole architectures (every sparsity and bit-width of one), so shards
    # running side by side do not lower the same graph twice (the lowering cache is shared)
    archs = sorted({_architecture(rows[k]["spec"]) for k in todo})
    mine = set(archs[shard[0] :: shard[1]])
    todo = sorted(
        (k for k in todo if _architecture(rows[k]["spec"]) in mine),
        key=lambda k: _architecture(rows[k]["spec"]),
    )
    if limit is not None:
        todo = todo[:limit]
    print(f"{len(rows)} rows, {len(todo)} without device metrics in this shard", file=sys.stderr)
    command = "python bench/record_space.py " + shlex.join(sys.argv[1:])
    commands = doc["meta"].setdefault("commands", [])
    if command not in commands:
        commands.append(command)
    ev.prepare()
    for i, key in enumerate(todo):
        row = rows[key]
        t0 = time.perf_counter()
        sm = ev.structural_metrics(CompressionSpec.from_flat(row["spec"]), list(config.devices))
        row["devices"] = {d: _device_metrics(m) for d, m in sm.devices.items()}
        row["structural"] = {
            "size_bytes": sm.size_bytes,
            "parameters": sm.parameters,
            "sparsity": sm.sparsity,
        }
        wall = time.perf_counter() - t0
        doc["meta"]["devices_seconds"] = doc["meta"].get("devices_seconds", 0.0) + wall
        save_table(out, doc)
        print(f"  {i + 1}/{len(todo)} {wall:5.1f} s: {key}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="record at most N new points")
    ap.add_argument("--phase", choices=["all", "accuracy", "devices"], default="all")
    ap.add_argument(
        "--shard",
        type=_parse_shard,
        default=(0, 1),
        help="I/N: every N-th point (accuracy phase) or architecture (devices phase)",
    )
    ap.add_argument("--torch-device", default=None, help="e.g. cuda (accuracy phase only)")
    ap.add_argument("--merge", type=Path, nargs="+", default=None, help="shard files to join")
    args = ap.parse_args()

    if args.merge:
        _merge(args.out, args.merge)
        return

    import logging

    logging.disable(logging.WARNING)
    from paretoedge.compression import CompressionSpec
    from paretoedge.search import parse_config
    from paretoedge.search._evaluator import PipelineEvaluator, spec_key

    study = PRESETS[args.preset]
    config = parse_config(study)
    doc = load_table(args.out) if args.out.is_file() else _new_doc(args.preset, study)
    doc["meta"]["study"] = study  # the preset may have narrowed: keep its points only
    flats = points(config)
    keep = {spec_key(f) for f in flats}
    rows: dict[str, Any] = {k: v for k, v in doc["rows"].items() if k in keep}
    doc["rows"] = rows
    ev = PipelineEvaluator(config)
    if args.phase == "devices":
        _fill_devices(ev, config, doc, args.out, args.limit, args.shard)
        return

    shard, shards = args.shard
    todo = [f for f in flats if spec_key(f) not in rows][shard::shards]
    if args.limit is not None:
        todo = todo[: args.limit]
    print(f"{len(flats)} points, {len(rows)} recorded, {len(todo)} to do", file=sys.stderr)
    t_prepare = time.perf_counter()
    ev.prepare()
    if args.torch_device:
        import platform

        import torch

        torch.set_default_device(args.torch_device)
        ev.move_teacher(args.torch_device)
        doc["meta"]["torch_device"] = args.torch_device
        if args.torch_device.startswith("cuda"):
            doc["meta"]["host"] = torch.cuda.get_device_name()
        else:
            doc["meta"]["host"] = platform.processor() or platform.machine()
    doc["meta"]["record_seconds"] += time.perf_counter() - t_prepare
    devices = config.devices if args.phase == "all" else []
    with tempfile.TemporaryDirectory() as tmp:
        for i, flat in enumerate(todo):
            t0 = time.perf_counter()
            onnx = Path(tmp) / "m.onnx" if args.phase == "all" else None
            res = ev.evaluate(CompressionSpec.from_flat(flat), devices=devices, onnx_path=onnx)
            e = res.evaluation
            wall = time.perf_counter() - t0
            rows[spec_key(flat)] = {
                "spec": flat,
                "accuracy": e.accuracy,
                "size_bytes": e.size_bytes,
                "parameters": e.parameters,
                "sparsity": e.sparsity,
                "wall_s": round(wall, 2),
                "devices": {d: _device_metrics(m) for d, m in e.devices.items()},
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
