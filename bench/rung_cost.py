"""What early stopping costs in recovery training: a tiny-bert study with the halving pruner.

Runs one study through the real controller and pipeline (tiny-bert, the bundled sentiment
task, real compression, recovery, ONNX export and one device's hardware model) with the
Pareto halving pruner, and counts every optimiser step taken while it runs (a global
``torch.optim`` step hook; the fine-tuned teacher is loaded from its cache before counting
starts). Prints the trials' outcomes, the steps, the wall time, and, from the stored
fidelities, what the same outcomes would have cost if each rung retrained the candidate
from scratch (the sum of its rungs) versus continuing one run (its furthest rung).

With ``--ab N`` it then times one completed candidate both ways in this process, N times
alternating (medians; robust to load drifting on a shared machine): the rungs retrained
from scratch as before (compress + ``r`` steps + measure per rung, then the full budget)
against the rungs continued.

Usage: python bench/rung_cost.py [--trials 12] [--steps 27] [--min-steps 3] [--eta 3]
       [--seed 0] [--device rpi4] [--ab N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--steps", type=int, default=27)
    ap.add_argument("--min-steps", type=int, default=3)
    ap.add_argument("--eta", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="rpi4")
    ap.add_argument("--ab", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import logging

    logging.disable(logging.WARNING)
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from paretoedge import storage as st
    from paretoedge.search import SearchRunner, parse_config
    from paretoedge.search._evaluator import PipelineEvaluator

    torch.set_num_threads(1)
    config = parse_config(
        {
            "name": "rung-cost",
            "model": "tiny-bert",
            "task": "sentiment",
            "seed": args.seed,
            "seq_len": 32,
            "data": {"train_limit": 256, "validation_limit": 128, "test_limit": 32},
            "teacher": {"epochs": 0.05},
            "space": {
                "prune.sparsity": {"low": 0.0, "high": 0.75, "step": 0.25},
                "ffn.keep": [1.0, 0.5],
                "quant.bits": [32, 8, 4],
            },
            "objectives": ["accuracy", "latency_ms", "size_bytes"],
            "devices": [args.device],
            "sampler": {"name": "random"},
            "baselines": [],
            "budget": {"trials": args.trials},
            "recovery": {"steps": args.steps, "batch_size": 16},
            "early_stopping": {"min_steps": args.min_steps, "eta": args.eta, "min_peers": 2},
        }
    )
    evaluator = PipelineEvaluator(config)
    evaluator.prepare()  # the cached teacher: not part of what is measured
    steps = [0]
    hook = register_optimizer_step_post_hook(lambda *_: steps.__setitem__(0, steps[0] + 1))
    with tempfile.TemporaryDirectory(prefix="pe-rung-cost-") as tmp:
        runner = SearchRunner(
            config,
            storage_url=f"sqlite:///{Path(tmp) / 'study.db'}",
            evaluator_factory=lambda _cfg: evaluator,
            artifacts_dir=Path(tmp) / "artifacts",
        )
        start = time.perf_counter()
        runner.run()
        wall = time.perf_counter() - start
        hook.remove()
        cands = st.list_candidates(runner.storage, study=config.name)
        left = sorted(p.name for p in (Path(tmp) / "artifacts").rglob("*") if p.is_file())
    rungs = config.early_stopping and runner.pruner.rungs(args.steps)  # type: ignore[union-attr]
    rungs = tuple(rungs or ())
    trained = [c for c in cands if c.state in ("complete", "pruned") and (c.fidelity or 0) > 0]
    furthest = sum(int(c.fidelity or 0) for c in trained)
    summed = sum(
        sum(r for r in rungs if r <= int(c.fidelity or 0))
        + (int(c.fidelity or 0) if c.state == "complete" else 0)
        for c in trained
    )
    out = {
        "trials": args.trials,
        "rungs": list(rungs),
        "budget_steps": args.steps,
        "complete": sum(c.state == "complete" for c in cands),
        "pruned": sum(c.state == "pruned" for c in cands),
        "fidelities": sorted(int(c.fidelity or 0) for c in trained),
        "optimizer_steps": steps[0],
        "wall_s": round(wall, 1),
        "steps_if_each_rung_retrains": summed,
        "steps_if_rungs_continue": furthest,
        "files_left_in_artifacts": [n for n in left if not n.endswith(".onnx")],
    }
    if args.ab:
        out.update(_ab(evaluator, rungs, args))
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:30s} {v}")


def _ab(evaluator: Any, rungs: tuple[int, ...], args: argparse.Namespace) -> dict[str, float]:
    import statistics
    from dataclasses import replace

    from paretoedge.compression import CompressionSpec

    spec = CompressionSpec.from_flat(
        {
            "prune.sparsity": 0.5,
            "quant.bits": 8,
            "recovery.steps": args.steps,
            "recovery.batch_size": 16,
        }
    )
    devices = [args.device]
    before, after = [], []
    with tempfile.TemporaryDirectory(prefix="pe-rung-ab-") as tmp:
        onnx = Path(tmp) / "m.onnx"
        for _ in range(args.ab):
            start = time.perf_counter()
            for i, r in enumerate(rungs):
                short = replace(spec, recovery=replace(spec.recovery, steps=r))
                evaluator.evaluate(
                    short, devices=devices if i == 0 else [], onnx_path=onnx if i == 0 else None
                )
            evaluator.evaluate(spec, devices=devices, onnx_path=onnx)
            before.append(time.perf_counter() - start)
            start = time.perf_counter()
            evaluator.evaluate(
                spec,
                devices=devices,
                onnx_path=onnx,
                rungs=rungs,
                on_rung=lambda *_: False,
                checkpoints=Path(tmp) / "rungs",
            )
            after.append(time.perf_counter() - start)
    return {
        "ab_complete_candidate_retrain_s": round(statistics.median(before), 2),
        "ab_complete_candidate_continue_s": round(statistics.median(after), 2),
    }


if __name__ == "__main__":
    main()
