"""Controller overhead per trial as a study grows: paretoedge against Optuna's own ask/tell.

What is measured. Two studies grow side by side, one trial of each in turn, to the largest
size asked for (default 10,000 trials), on the same kind of storage (a SQLite file, then a
fresh PostgreSQL database at 127.0.0.1:5432), with the same sampler (the study's, NSGA-II
with a population of 50, same seed):

- paretoedge: the real controller (:class:`~paretoedge.search.SearchRunner` with the
  default :class:`~paretoedge.search.OptunaBackend`, one trial per call as a run does:
  budget claim, Optuna ask/tell with heartbeat, candidate rows, twin lookup, device
  metrics, constraints, front update) with a
  :class:`~paretoedge.search.LookupEvaluator` (evaluation costs a dictionary lookup, no
  training), so the time is controller + storage;
- Optuna: ``study.ask()``, the same parameter suggestions, ``study.tell(values)`` on an
  ``RDBStorage`` of its own database set up as paretoedge sets up Optuna's (on SQLite: WAL,
  ``synchronous=NORMAL``, ``BEGIN IMMEDIATE``), without heartbeats.

Each trial's wall time is recorded; a size N is reported as the median and mean over the
window of the ``--window`` trials that end at trial N (trials N-W .. N-1; at N=100 the
window is the last 50), i.e. per-trial cost once the study has reached N trials. The
difference of the medians is paretoedge's own part.

The table: a synthetic space of 3,185 points (sparsity 0-0.9 step 0.01 x 7 FFN keeps x 5
quantisations) with the monotone metrics of ``tests/search/_synthetic.py`` on three devices
(one with flash limits that make big candidates infeasible), a constraint ``accuracy >=
0.5``, objectives accuracy, latency and size: at 10,000 trials most proposals are twins of
earlier ones, as in a real study of a discrete space.

Usage: nice -n 10 python bench/controller_overhead.py [--sizes 100,1000,10000]
           [--window 100] [--storages sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "search"))

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

STUDY: dict[str, Any] = {
    "name": "overhead",
    "model": "tiny-bert",
    "task": "sentiment",
    "seed": 0,
    "space": {
        "prune.sparsity": {"low": 0.0, "high": 0.9, "step": 0.01},
        "ffn.keep": [1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25],
        "quant.bits": [32, 16, 8, 4],
        "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
    },
    "objectives": ["accuracy", "latency_ms", "size_bytes"],
    "devices": ["dev-a", "dev-b", "dev-c"],
    "constraints": ["accuracy >= 0.5"],
    "sampler": {"name": "nsga2", "options": {"population_size": 50}},
    "budget": {"trials": 1_000_000},
}


def table(config: Any) -> dict[str, Any]:
    """spec key -> Evaluation for every point of the space and the baselines."""
    from _synthetic import synthetic_evaluation

    from paretoedge.search import BASELINE_SPECS, candidate_spec, enumerate_space
    from paretoedge.search._evaluator import spec_key
    from paretoedge.search._space import baseline_spec

    specs = [candidate_spec(config, p) for p in enumerate_space(config.space)]
    specs += [baseline_spec(name) for name in BASELINE_SPECS]
    return {spec_key(s.to_flat()): synthetic_evaluation(s.to_flat(), config.devices) for s in specs}


def pg_database() -> str:
    import psycopg

    name = f"pe_overhead_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class OptunaOnly:
    """Optuna's own ask/tell with the study's sampler and space."""

    def __init__(self, config: Any, url: str, evaluations: dict[str, Any]) -> None:
        import optuna

        from paretoedge.search._samplers import sampler_for
        from paretoedge.storage import optuna_storage

        self.config = config
        self.evaluations = evaluations
        # The storage paretoedge gives Optuna (same engine settings: WAL, busy timeout,
        # BEGIN IMMEDIATE on SQLite), without the heartbeat paretoedge adds.
        self.study = optuna.create_study(
            storage=optuna_storage(url),
            study_name="optuna-only",
            directions=[o.direction for o in config.objectives],
            sampler=sampler_for(config),
        )

    def trial(self) -> None:
        from paretoedge.search._evaluator import spec_key
        from paretoedge.search._space import candidate_spec, suggest

        trial = self.study.ask()
        params = suggest(trial, self.config.space)
        ev = self.evaluations[spec_key(candidate_spec(self.config, params).to_flat())]
        self.study.tell(trial, [o.value(ev) for o in self.config.objectives])


def measure(kind: str, sizes: list[int], window: int, tmp: Path) -> list[dict[str, Any]]:
    from paretoedge.search import OptunaBackend, SearchRunner, parse_config
    from paretoedge.search._evaluator import LookupEvaluator
    from paretoedge.search._optuna_adapter import quiet_optuna

    config = parse_config(STUDY, check_names=False)
    evaluations = table(config)
    if kind == "sqlite":
        pe_url, op_url = f"sqlite:///{tmp / 'pe.db'}", f"sqlite:///{tmp / 'optuna.db'}"
    else:
        pe_url, op_url = pg_database(), pg_database()
    try:
        runner = SearchRunner(
            config,
            storage_url=pe_url,
            evaluator_factory=lambda c: LookupEvaluator(evaluations),
            artifacts_dir=tmp / "artifacts",
        )
        runner.setup()
        backend = OptunaBackend()
        with quiet_optuna():
            baseline = OptunaOnly(config, op_url, evaluations)
        pe_times: list[float] = []
        op_times: list[float] = []
        started = time.perf_counter()
        for i in range(max(sizes)):
            t0 = time.perf_counter()
            backend.run(runner, n_trials=1, timeout=None)
            t1 = time.perf_counter()
            with quiet_optuna():
                baseline.trial()
            t2 = time.perf_counter()
            pe_times.append(t1 - t0)
            op_times.append(t2 - t1)
            if (i + 1) % 500 == 0:
                print(
                    f"  {kind}: {i + 1} trials, {time.perf_counter() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
        rows = []
        for n in sizes:
            w = min(window, n // 2)
            pe, op = pe_times[n - w : n], op_times[n - w : n]
            rows.append(
                {
                    "storage": kind,
                    "trials": n,
                    "window": w,
                    "pe_median": statistics.median(pe) * 1e3,
                    "pe_mean": statistics.fmean(pe) * 1e3,
                    "op_median": statistics.median(op) * 1e3,
                    "op_mean": statistics.fmean(op) * 1e3,
                }
            )
        complete = len(runner.study.get_trials(deepcopy=False))
        twins = sum("paretoedge.twin_of" in t.user_attrs for t in runner.study.get_trials())
        print(f"  {kind}: {complete} paretoedge trials ({twins} twins)", file=sys.stderr)
        runner.storage.engine.dispose()
        return rows
    finally:
        if kind == "postgresql":
            drop_pg(pe_url)
            drop_pg(op_url)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--window", type=int, default=100)
    ap.add_argument("--storages", default="sqlite,postgresql")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if sizes[0] < 2:
        ap.error("--sizes: each size must be >= 2")
    kinds = args.storages.split(",")
    for kind in kinds:
        if kind not in ("sqlite", "postgresql"):
            ap.error(f"--storages: {kind!r} is not one of sqlite, postgresql")
    started = time.perf_counter()
    print(
        "per-trial wall time in ms, median (mean) over the window of trials ending at N; "
        "lookup evaluator, NSGA-II (population 50), 3 devices"
    )
    print(
        f"{'storage':11s}{'N':>7s}{'window':>8s}{'paretoedge':>18s}{'optuna ask/tell':>18s}"
        f"{'paretoedge part':>17s}",
        flush=True,
    )
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            for r in measure(kind, sizes, args.window, Path(tmp)):
                print(
                    f"{r['storage']:11s}{r['trials']:>7d}{r['window']:>8d}"
                    f"{r['pe_median']:>9.1f} ({r['pe_mean']:5.1f})"
                    f"{r['op_median']:>9.1f} ({r['op_mean']:5.1f})"
                    f"{r['pe_median'] - r['op_median']:>17.1f}",
                    flush=True,
                )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
