"""Cost of a candidate's device metrics from its structure, before any training.

For candidates of the ``tiny`` space of ``bench/record_space.py`` (tiny-bert; distinct
structures), times :meth:`PipelineEvaluator.structural_metrics` (compress with no training
step, export ONNX, every device's hardware model):

* cold: an empty TVM lowering cache (a temporary directory), so each new structure is
  lowered for every device's target;
* warm: the lowering cache filled by the cold pass, a new evaluator (nothing memoised in
  memory): compress + export + cost-model queries;
* memoised: the same evaluator again (what a screening pool pays for a repeated structure).

Beside it, the full evaluation of the same candidates (compression with the study's
recovery, validation accuracy, export, hardware models; warm lowering cache).

Usage: python bench/cheap_metrics.py [--n 6] [--devices rpi4,mali-g76,stm32h7,host-ort]

``--variants K`` measures instead what a screening pool pays per candidate for the
bit-width and sparsity variants of K architectures of ``--preset`` (tiny or minilm; every
variant of each), warm lowering cache, side by side in one run, architecture by
architecture: each candidate compressed from the teacher and exported (as before), built
from its architecture's compression prefix (:class:`~paretoedge.compression.CompressionPrefix`),
and also costed on its architecture's one export
(:func:`~paretoedge.search._cheap_metrics.graph_key`).

    python bench/cheap_metrics.py --variants 3 --preset minilm --devices rpi4,host-ort
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--devices", default="rpi4,mali-g76,stm32h7,host-ort")
    ap.add_argument("--variants", type=int, default=0, metavar="K")
    ap.add_argument("--preset", choices=["tiny", "minilm"], default="tiny")
    args = ap.parse_args()
    if args.variants < 0:
        ap.error(f"--variants: {args.variants}; allowed: 0 (off) or a number of architectures")
    if args.variants:
        variants(args.variants, args.preset, args.devices.split(","))
        return

    import logging

    logging.disable(logging.WARNING)
    import numpy as np
    from record_space import PRESETS

    import paretoedge.hardware_profiles._cache as cost_cache
    from paretoedge.search import candidate_spec, enumerate_space, parse_config
    from paretoedge.search._evaluator import PipelineEvaluator

    study = dict(PRESETS["tiny"], devices=args.devices.split(","))
    config = parse_config(study)
    devices = list(config.devices)
    space = list(enumerate_space(config.space))
    pick = np.random.RandomState(0).permutation(len(space))[: args.n]
    flats = [candidate_spec(config, space[int(i)]) for i in pick]
    base = PipelineEvaluator(config)
    base.prepare()  # the fine-tuned teacher: once per study, not per candidate

    def fresh() -> PipelineEvaluator:
        return PipelineEvaluator(config, builder=base.builder)

    times: dict[str, list[float]] = {"cold": [], "warm": [], "memoised": [], "full": []}
    original = cost_cache.cache_dir
    with tempfile.TemporaryDirectory() as tmp:
        cost_cache.cache_dir = lambda: Path(tmp)  # type: ignore[assignment]
        try:
            ev = fresh()
            for f in flats:
                t0 = time.perf_counter()
                ev.structural_metrics(f, devices)
                times["cold"].append(time.perf_counter() - t0)
            ev = fresh()
            for f in flats:
                t0 = time.perf_counter()
                ev.structural_metrics(f, devices)
                times["warm"].append(time.perf_counter() - t0)
            for f in flats:
                t0 = time.perf_counter()
                ev.structural_metrics(f, devices)
                times["memoised"].append(time.perf_counter() - t0)
            for f in flats:
                t0 = time.perf_counter()
                ev.evaluate(f, devices=devices, onnx_path=Path(tmp) / "m.onnx")
                times["full"].append(time.perf_counter() - t0)
        finally:
            cost_cache.cache_dir = original  # type: ignore[assignment]
    print(f"tiny-bert, {len(flats)} candidates, devices {devices}, seq_len {config.seq_len}")
    for k, v in times.items():
        what = "full evaluation (recovery, accuracy)" if k == "full" else "structural metrics"
        print(
            f"  {k:9s} {what:38s} median {statistics.median(v):7.3f} s  "
            f"min {min(v):7.3f}  max {max(v):7.3f}"
        )


def variants(k: int, preset: str, devices: list[str]) -> None:
    """Per-candidate structural-metrics cost of every variant of ``k`` architectures."""
    import logging
    from collections import defaultdict

    logging.disable(logging.WARNING)
    import numpy as np
    from record_space import PRESETS

    from paretoedge.search import candidate_spec, enumerate_space, parse_config
    from paretoedge.search._cheap_metrics import architecture_key
    from paretoedge.search._evaluator import PipelineEvaluator

    config = parse_config(dict(PRESETS[preset], devices=devices))
    groups: dict[str, list] = defaultdict(list)
    for point in enumerate_space(config.space):
        spec = candidate_spec(config, point)
        groups[architecture_key(spec)].append(spec)
    keys = sorted(groups)
    pick = [keys[int(i)] for i in np.random.RandomState(0).permutation(len(keys))[:k]]
    base = PipelineEvaluator(config)
    base.prepare()
    warm = PipelineEvaluator(config, builder=base.builder)
    t0 = time.perf_counter()
    for key in pick:  # fill the lowering cache: each structure lowered once per device
        for spec in groups[key]:
            warm.structural_metrics(spec, devices)
    fill = time.perf_counter() - t0
    modes = {}
    for name, prefixes, graphs in (
        ("each from scratch", 0, 0),
        ("shared prefix", 2, 0),
        ("prefix + graph", 2, 4),
    ):
        ev = PipelineEvaluator(config, builder=base.builder)
        ev.PREFIXES_KEPT, ev.GRAPHS_KEPT = prefixes, graphs  # type: ignore[misc]
        modes[name] = ev
    times: dict[str, list[float]] = {name: [] for name in modes}
    for key in pick:
        for name, ev in modes.items():
            for spec in groups[key]:
                t0 = time.perf_counter()
                ev.structural_metrics(spec, devices)
                times[name].append(time.perf_counter() - t0)
    n = sum(len(groups[key]) for key in pick)
    print(
        f"{preset}: {n} candidates ({k} architectures, every bit-width and sparsity variant), "
        f"devices {devices}, seq_len {config.seq_len}; cache fill {fill:.0f} s"
    )
    before = sum(times["each from scratch"])
    for name, v in times.items():
        print(
            f"  {name:18s} median {statistics.median(v):6.2f} s  mean "
            f"{statistics.mean(v):6.2f} s  total {sum(v):7.1f} s  ({sum(v) / before:.2f}x)"
        )


if __name__ == "__main__":
    main()
