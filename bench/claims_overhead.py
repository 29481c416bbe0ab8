"""What budget claims and owner records cost per trial (SQLite and PostgreSQL).

Runs a study of N trials with the synthetic evaluator of the test suite (no compression, no
hardware model: only the controller and storage work) and times, per trial, the whole trial
and the part spent in the claim (``claim_trial``), binding it to the trial (``bind_claim``)
and recovery (``recover``, twice a run).

Usage: python bench/claims_overhead.py [--trials 40]
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "search"))
sys.path.insert(0, str(ROOT / "bench"))


def timed(module: Any, name: str, spent: dict[str, float]) -> None:
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

    setattr(module, name, wrapper)


def run(url: str, trials: int) -> tuple[float, dict[str, float]]:
    from _synthetic import SyntheticEvaluator, synthetic_config

    from paretoedge.search import OptunaBackend, SearchRunner, _recovery
    from paretoedge.storage import _claims

    spent: dict[str, float] = {}
    for name in ("claim_trial", "bind_claim"):
        timed(_claims, name, spent)
    timed(_recovery, "recover", spent)
    space = {
        "prune.sparsity": {"low": 0.0, "high": 0.9, "step": 0.05},
        "ffn.keep": [1.0, 0.75, 0.5],
        "quant.bits": [32, 16, 8, 4],
    }
    config = synthetic_config(budget={"trials": trials}, sampler={"name": "random"}, space=space)
    with tempfile.TemporaryDirectory() as tmp:
        runner = SearchRunner(
            config,
            storage_url=url,
            evaluator_factory=SyntheticEvaluator,
            artifacts_dir=Path(tmp) / "artifacts",
        )
        t0 = time.perf_counter()
        runner.run(backend=OptunaBackend(gc_after_trial=False))
        wall = time.perf_counter() - t0
        runner.storage.engine.dispose()
    for module, name in ((_claims, "claim_trial"), (_claims, "bind_claim")):
        setattr(module, name, getattr(module, name).__wrapped__)
    _recovery.recover = _recovery.recover.__wrapped__  # type: ignore[attr-defined]
    return wall, spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=40)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    from search_efficiency import drop_pg, pg_url

    n = args.trials
    print(f"{n} trials, synthetic evaluator, no gc after trials; ms per trial")
    print(f"{'storage':10s} {'trial':>8s} {'claim':>8s} {'bind':>8s} {'recover':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        for label in ("sqlite", "postgresql"):
            url = f"sqlite:///{tmp}/claims.db" if label == "sqlite" else pg_url()
            if url is None:
                print("postgresql: not reachable on 127.0.0.1:5432, skipped")
                continue
            try:
                wall, spent = run(url, n)
            finally:
                if label == "postgresql":
                    drop_pg(url)
            cells = [spent.get(k, 0.0) for k in ("claim_trial", "bind_claim", "recover")]
            print(
                f"{label:10s} {1000 * wall / n:8.1f} "
                + " ".join(f"{1000 * c / n:8.1f}" for c in cells)
            )


if __name__ == "__main__":
    main()
