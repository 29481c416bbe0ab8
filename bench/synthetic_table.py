"""Write a replay table (the format of ``bench/record_space.py``) from the synthetic
evaluator of the tests: 140 points whose accuracy and device metrics follow monotone rules
of the spec (``tests/search/_synthetic.py``). A check of the samplers' mechanics on a space
with a known structure, not a measurement of a model.

Usage: python bench/synthetic_table.py OUT.json.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "search"))

STUDY = {
    "name": "synthetic",
    "model": "tiny-bert",
    "task": "sentiment",
    "seed": 0,
    "space": {
        "prune.sparsity": {"low": 0.0, "high": 0.6, "step": 0.1},
        "ffn.keep": [1.0, 0.75, 0.5, 0.25],
        "quant.bits": [32, 16, 8, 4],
        "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
    },
    "objectives": ["accuracy", "latency_ms", "size_bytes"],
    "devices": ["dev-a", "dev-b", "dev-c"],
    "recovery": {"steps": 4},
}


def main() -> None:
    from _synthetic import synthetic_evaluation

    from paretoedge.search import (
        BASELINE_SPECS,
        candidate_flat,
        enumerate_space,
        normalize_flat,
        parse_config,
    )
    from paretoedge.search._evaluator import spec_key

    cfg = parse_config(STUDY, check_names=False)
    flats = [normalize_flat(candidate_flat(cfg, p)) for p in enumerate_space(cfg.space)]
    flats += [normalize_flat(dict(f)) for f in BASELINE_SPECS.values()]
    rows = {}
    for f in flats:
        e = synthetic_evaluation(f, cfg.devices)
        rows[spec_key(f)] = {
            "spec": f,
            "accuracy": e.accuracy,
            "size_bytes": e.size_bytes,
            "parameters": e.parameters,
            "sparsity": e.sparsity,
            "devices": {
                d: m.__dict__ | {"violations": list(m.violations)} for d, m in e.devices.items()
            },
        }
    meta = {"study": STUDY, "command": "python bench/synthetic_table.py", "record_seconds": 0}
    with gzip.open(sys.argv[1], "wt") as fh:
        json.dump({"meta": meta, "rows": rows}, fh)


if __name__ == "__main__":
    main()
