"""Search efficiency and controller overhead.

1. Sampler efficiency. An enumerable space on tiny-bert (sparsity x FFN keep x bit-width x
   quantisation scheme) is measured completely ONCE by the real pipeline (fine-tuned
   teacher, compress with recovery, validation accuracy, ONNX export, hardware model of each
   device); the table is cached on disk. Then each sampler (NSGA-II, TPE, random) runs the
   real controller (Optuna study, SQLite storage, fronts) for the same trial budget, with a
   :class:`~paretoedge.search.LookupEvaluator` that answers from the table, over several
   seeds. Reported: hypervolume of each sampler's front on each device as a fraction of the
   hypervolume of the brute-force front (all points), mean +- sd over seeds. The reference
   point is stated: accuracy 0.0 (maximised), and 1.1 x the worst latency/size in the table.

2. Overhead. The same controller with the lookup evaluator (evaluation costs ~0): wall time
   per trial in ms, i.e. Optuna sampling + storage writes + front recomputation, on SQLite
   (a file) and on PostgreSQL (127.0.0.1:5432, if reachable).

3. Replay (``--replay``). A table recorded once by ``bench/record_space.py`` (every point of
   a space measured by the real pipeline) is replayed through the real controller for every
   sampler (random, NSGA-II, TPE, GP, screening) x seeds x budgets of 3/5/10/20 % of the
   space: per device, the share of the brute-force front's hypervolume (mean +- sd), the
   regret ratio to random at the same budget (regret = 1 - share) and the number of
   trainings (trials the evaluator ran: not twins, not screened out before training). One
   study per sampler and seed runs to the largest budget; a smaller budget is the prefix of
   its trials (no sampler here knows its budget, so the prefix is what a smaller study
   would have run).

Usage: python bench/search_efficiency.py [--trials 12] [--seeds 5] [--overhead-trials 40]
       python bench/search_efficiency.py --replay [--table F] [--seeds N] [--seed-base B] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SPACE: dict[str, Any] = {
    "prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.5},
    "ffn.keep": [1.0, 0.5],
    "quant.bits": [32, 8, 4],
    "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
}


#: Small populations / startup phases so that, within a dozen trials, NSGA-II evolves and TPE
#: models (with the defaults, 50 and 10, both would still be sampling at random).
SAMPLER_OPTIONS: dict[str, dict[str, Any]] = {
    "nsga2": {"population_size": 4},
    "tpe": {"n_startup_trials": 4, "multivariate": True},
    "random": {},
}


def study_doc(devices: list[str], *, sampler: str, trials: int, seed: int) -> dict[str, Any]:
    return {
        "name": f"bench-{sampler}-{seed}",
        "model": "tiny-bert",
        "task": "sentiment",
        "seed": seed,
        "data": {"train_limit": 256, "validation_limit": 128, "test_limit": 64},
        "teacher": {"epochs": 1.0},
        "space": SPACE,
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": devices,
        "sampler": {"name": sampler, "options": SAMPLER_OPTIONS[sampler]},
        "budget": {"trials": trials},
        "recovery": {"steps": 4},
    }


def build_table(devices: list[str], cache: Path) -> dict[str, Any]:
    """Measure every point of the space (and the baselines) with the real pipeline, once."""
    from paretoedge.compression import CompressionSpec
    from paretoedge.objectives import DeviceMetrics, Evaluation
    from paretoedge.search import (
        BASELINE_SPECS,
        candidate_flat,
        enumerate_space,
        normalize_flat,
        parse_config,
    )
    from paretoedge.search._evaluator import PipelineEvaluator, spec_key

    config = parse_config(study_doc(devices, sampler="random", trials=1, seed=0))
    cache.parent.mkdir(parents=True, exist_ok=True)
    raw: dict[str, Any] = {}
    if cache.is_file():
        for key, value in json.loads(cache.read_text()).items():
            raw[spec_key(normalize_flat(json.loads(key)))] = value
    ev = PipelineEvaluator(config)
    flats = [candidate_flat(config, p) for p in enumerate_space(config.space)]
    flats += [dict(f) for f in BASELINE_SPECS.values()]
    # the controller hands evaluators the normalised spec; key the table the same way
    flats = [normalize_flat(f) for f in flats]
    todo = [f for f in flats if spec_key(f) not in raw]
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, flat in enumerate(todo):
            spec = CompressionSpec.from_flat(flat)
            res = ev.evaluate(spec, devices=devices, onnx_path=Path(tmp) / f"{i}.onnx")
            e = res.evaluation
            raw[spec_key(flat)] = {
                "accuracy": e.accuracy,
                "size_bytes": e.size_bytes,
                "parameters": e.parameters,
                "sparsity": e.sparsity,
                "devices": {
                    d: m.__dict__ | {"violations": list(m.violations)} for d, m in e.devices.items()
                },
            }
            print(f"  measured {i + 1}/{len(todo)}: {spec_key(flat)}", file=sys.stderr)
            cache.write_text(json.dumps(raw, indent=1))  # keep what is measured so far
    if todo:
        print(f"measured {len(todo)} points in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    table = {}
    for key, r in raw.items():
        table[key] = Evaluation(
            accuracy=r["accuracy"],
            size_bytes=r["size_bytes"],
            parameters=r["parameters"],
            sparsity=r["sparsity"],
            devices={
                d: DeviceMetrics(**{**m, "violations": tuple(m["violations"])})
                for d, m in r["devices"].items()
            },
        )
    return {"config": config, "table": table, "points": flats}


def front_hv(config: Any, device: str, evaluations: list[Any], ref: list[float]) -> float:
    from paretoedge.search import hypervolume, pareto_front

    objs = config.front_objectives(device)
    pts = [[o.value(e) for o in objs] for e in evaluations]
    dirs = [o.direction for o in objs]
    front = [pts[i] for i in pareto_front(pts, dirs)]
    return hypervolume(front, ref, dirs)


def reference(config: Any, device: str, evaluations: list[Any]) -> list[float]:
    ref = []
    for o in config.front_objectives(device):
        vals = [o.value(e) for e in evaluations]
        ref.append(0.0 if o.direction == "maximize" else 1.1 * max(vals))
    return ref


def run_sampler(
    devices: list[str],
    table: dict[str, Any],
    sampler: str,
    seed: int,
    trials: int,
    url: str,
    *,
    gc_after_trial: bool = True,
) -> tuple[list[Any], float]:
    from paretoedge.search import OptunaBackend, SearchRunner, parse_config
    from paretoedge.search._evaluator import LookupEvaluator

    config = parse_config(study_doc(devices, sampler=sampler, trials=trials, seed=seed))
    runner = SearchRunner(
        config, storage_url=url, evaluator_factory=lambda c: LookupEvaluator(table)
    )
    t0 = time.perf_counter()
    runner.run(backend=OptunaBackend(gc_after_trial=gc_after_trial))
    wall = time.perf_counter() - t0
    from paretoedge import storage as st
    from paretoedge.search import evaluation_of

    cands = st.list_candidates(runner.storage, study=config.name, states=["complete"])
    runner.storage.engine.dispose()
    return [evaluation_of(c) for c in cands], wall


def pg_url() -> str | None:
    try:
        import psycopg
    except ImportError:
        return None
    name = f"pe_bench_{os.getpid()}"
    try:
        with psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            autocommit=True,
            connect_timeout=3,
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_pg(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True
    ) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


REPLAY_SAMPLERS: dict[str, dict[str, Any]] = {
    "random": {},
    "nsga2": {"population_size": 4},
    "tpe": {"n_startup_trials": 4, "multivariate": True},
    "gp": {"n_startup_trials": 4},
    "screening": {},
}
DEFAULT_TABLE = Path(__file__).parent / "data" / "space_tiny.json.gz"


def load_replay(path: Path) -> tuple[Any, dict[str, Any], list[str]]:
    """The recorded study (as a config), its table (spec key -> Evaluation) and the keys of
    the space's points (baselines excluded)."""
    import gzip

    from paretoedge.objectives import DeviceMetrics, Evaluation
    from paretoedge.search import BASELINE_SPECS, normalize_flat
    from paretoedge.search._evaluator import spec_key

    with gzip.open(path, "rt") as fh:
        doc = json.load(fh)
    table = {
        key: Evaluation(
            accuracy=r["accuracy"],
            size_bytes=r["size_bytes"],
            parameters=r["parameters"],
            sparsity=r["sparsity"],
            devices={
                d: DeviceMetrics(**{**m, "violations": tuple(m["violations"])})
                for d, m in r["devices"].items()
            },
        )
        for key, r in doc["rows"].items()
    }
    baselines = {spec_key(normalize_flat(f)) for f in BASELINE_SPECS.values()}
    space_keys = [k for k in table if k not in baselines]
    return doc["meta"], table, space_keys


def replay_doc(meta: dict[str, Any], sampler: str, seed: int, trials: int) -> dict[str, Any]:
    doc = dict(meta["study"])
    doc.update(
        name=f"replay-{sampler}-{seed}",
        seed=seed,
        sampler={"name": sampler, "options": REPLAY_SAMPLERS[sampler]},
        budget={"trials": trials},
    )
    return doc


def table_key(spec: Any) -> str:
    """The key of ``spec`` in a table of ``bench/record_space.py``: it recorded a no-op
    transform as none (a student as deep as the teacher, low-rank energy 1.0), so a trial's
    spec is normalised the same way before the lookup."""
    from record_space import _drop_identity

    from paretoedge.search import normalize_flat
    from paretoedge.search._evaluator import spec_key

    return spec_key(normalize_flat(_drop_identity(spec.to_flat())))


def replay_run(
    meta: dict[str, Any], table: dict[str, Any], sampler: str, seed: int, trials: int, url: str
) -> list[tuple[Any, bool]]:
    """Run one study; per trial in order: (its Evaluation or None, whether it trained)."""
    from paretoedge import storage as st
    from paretoedge.search import (
        TWIN_ATTR,
        OptunaBackend,
        SearchRunner,
        evaluation_of,
        parse_config,
    )
    from paretoedge.search._cheap_metrics import SCREENED_ATTR
    from paretoedge.search._evaluator import LookupEvaluator

    config = parse_config(replay_doc(meta, sampler, seed, trials), check_names=False)
    runner = SearchRunner(
        config,
        storage_url=url,
        evaluator_factory=lambda c: LookupEvaluator(table, key=table_key),
    )
    runner.run(backend=OptunaBackend(gc_after_trial=False))
    cands = {
        c.trial_number: c
        for c in st.list_candidates(runner.storage, study=config.name, states=["complete"])
    }
    out = []
    for t in sorted(runner.study.get_trials(deepcopy=False), key=lambda t: t.number):
        cand = cands.get(t.number)
        trained = (
            t.state.name == "COMPLETE"
            and TWIN_ATTR not in t.user_attrs
            and SCREENED_ATTR not in t.user_attrs
        )
        out.append((evaluation_of(cand) if cand is not None else None, trained))
    runner.storage.engine.dispose()
    return out


def feasible_on(config: Any, device: str, evaluations: list[Any]) -> list[Any]:
    cons = config.device_constraints(device)
    return [
        e
        for e in evaluations
        if e.devices[device].feasible and all(c.violation(e) == 0 for c in cons)
    ]


def _timed_run(
    meta: dict[str, Any], table: dict[str, Any], sampler: str, seed: int, trials: int, url: str
) -> list[tuple[Any, bool]]:
    t1 = time.perf_counter()
    runs = replay_run(meta, table, sampler, seed, trials, url)
    wall = time.perf_counter() - t1
    print(f"  {sampler} seed {seed}: {len(runs)} trials in {wall:.1f} s", file=sys.stderr)
    return runs


def _replay_all(
    meta: dict[str, Any],
    table: dict[str, Any],
    jobs: list[tuple[str, int]],
    trials: int,
    tmp: Path,
    workers: int,
) -> list[tuple[tuple[str, int], list[tuple[Any, bool]]]]:
    """Every (sampler, seed) study, each in its own SQLite file; ``workers`` processes run
    them side by side (the studies are independent, so the results do not depend on it)."""
    urls = [f"sqlite:///{tmp}/{sampler}-{seed}.db" for sampler, seed in jobs]
    if workers <= 1:
        return [
            (job, _timed_run(meta, table, *job, trials, url))
            for job, url in zip(jobs, urls, strict=True)
        ]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_timed_run, meta, table, *job, trials, url)
            for job, url in zip(jobs, urls, strict=True)
        ]
        return [(job, fut.result()) for job, fut in zip(jobs, futures, strict=True)]


def replay(args: argparse.Namespace) -> None:
    import math

    from paretoedge.search import parse_config

    meta, table, space_keys = load_replay(args.table)
    n = len(space_keys)
    fractions = [float(f) for f in args.budgets.split(",")]
    budgets = {f: max(1, round(f * n)) for f in fractions}
    top = max(budgets.values())
    config = parse_config(replay_doc(meta, "random", 0, top), check_names=False)
    devices = list(config.devices)
    everything = list(table.values())
    refs = {d: reference(config, d, everything) for d in devices}
    best = {d: front_hv(config, d, feasible_on(config, d, everything), refs[d]) for d in devices}
    # a device on which no point of the table is feasible (MiniLM's smallest point needs
    # 13 MiB of flash, an STM32H7 has 2 MiB) has no front: no share to report
    empty = [d for d in devices if best[d] <= 0]
    for d in empty:
        print(f"{d}: no feasible point in the table, no front to reach", file=sys.stderr)
    devices = [d for d in devices if d not in empty]
    samplers = args.samplers.split(",")
    seeds = range(args.seed_base, args.seed_base + args.seeds)
    shares: dict[tuple[str, float, str], list[float]] = {}
    trainings: dict[tuple[str, float], list[int]] = {}
    t0 = time.perf_counter()
    jobs = [(sampler, seed) for sampler in samplers for seed in seeds]
    with tempfile.TemporaryDirectory() as tmp:
        results = _replay_all(meta, table, jobs, top, Path(tmp), args.jobs)
    for (sampler, _seed), runs in results:
        for f, b in budgets.items():
            prefix = runs[:b]
            evs = [e for e, _ in prefix if e is not None]
            trainings.setdefault((sampler, f), []).append(sum(t for _, t in prefix))
            for d in devices:
                hv = front_hv(config, d, feasible_on(config, d, evs), refs[d])
                shares.setdefault((sampler, f, d), []).append(hv / best[d])
    wall = time.perf_counter() - t0

    def mean_sd(v: list[float]) -> tuple[float, float]:
        return statistics.mean(v), statistics.stdev(v) if len(v) > 1 else 0.0

    rows = []
    for sampler in samplers:
        for f, b in budgets.items():
            for d in devices:
                m, sd = mean_sd(shares[(sampler, f, d)])
                rnd = statistics.mean(shares[("random", f, d)]) if "random" in samplers else None
                ratio = None
                if rnd is not None:
                    ratio = (1 - m) / (1 - rnd) if rnd < 1 else (0.0 if m >= 1 else math.inf)
                rows.append(
                    {
                        "sampler": sampler,
                        "budget_fraction": f,
                        "budget_trials": b,
                        "device": d,
                        "hv_share": round(m, 4),
                        "hv_share_sd": round(sd, 4),
                        "regret_ratio_to_random": None if ratio is None else round(ratio, 3),
                        "trainings": round(statistics.mean(trainings[(sampler, f)]), 2),
                        "seeds": len(shares[(sampler, f, d)]),
                    }
                )
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return
    print(f"table {args.table}: {n} points + baselines, devices {devices}")
    commands = meta.get("commands") or [meta.get("command")]
    more = f" (+{len(commands) - 1} more)" if len(commands) > 1 else ""
    print(f"recorded with: {commands[0]}{more} ({meta.get('record_seconds', 0):.0f} s)")
    print(f"seeds {args.seed_base}..{args.seed_base + args.seeds - 1}; replay took {wall:.0f} s")
    for d in devices:
        print(f"\n{d}: share of the brute-force front's HV, mean +- sd (regret / random's)")
        print(
            f"{'sampler':10s}"
            + "".join(f"{f'{f:.0%} ({b} trials)':>26s}" for f, b in budgets.items())
        )
        for sampler in samplers:
            cells = []
            for f in budgets:
                r = next(
                    x
                    for x in rows
                    if (x["sampler"], x["budget_fraction"], x["device"]) == (sampler, f, d)
                )
                ratio = r["regret_ratio_to_random"]
                rr = "" if ratio is None else f" ({ratio:.2f})"
                cells.append(f"{r['hv_share']:.3f}+-{r['hv_share_sd']:.3f}{rr}")
            print(f"{sampler:10s}" + "".join(f"{c:>26s}" for c in cells))
    print("\ntrainings (mean over seeds):")
    for sampler in samplers:
        cells = "".join(f"{statistics.mean(trainings[(sampler, f)]):>10.1f}" for f in budgets)
        print(f"{sampler:10s}{cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replay", action="store_true", help="replay a recorded table (3.)")
    ap.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    ap.add_argument("--seed-base", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--budgets", default="0.03,0.05,0.10,0.20")
    ap.add_argument("--samplers", default=",".join(REPLAY_SAMPLERS))
    ap.add_argument("--jobs", type=int, default=1, help="replay studies run side by side")
    ap.add_argument("--trials", type=int, default=8, help="trial budget per study")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--overhead-trials", type=int, default=40)
    ap.add_argument("--devices", default="", help="comma-separated (default: first two)")
    args = ap.parse_args()

    import logging

    logging.disable(logging.WARNING)
    if args.replay:
        replay(args)
        return
    from paretoedge.hardware_profiles import profile_names
    from paretoedge.settings import get_settings

    devices = args.devices.split(",") if args.devices else profile_names()[:2]
    cache = get_settings().home / "bench" / f"search_table_{'_'.join(devices)}.json"
    built = build_table(devices, cache)
    config, table = built["config"], built["table"]
    everything = list(table.values())
    print(f"space: {len(built['points']) - 2} points + 2 baselines; devices {devices}")
    print(f"budget {args.trials} trials, {args.seeds} seeds; table {cache}")
    refs = {d: reference(config, d, everything) for d in devices}
    best = {d: front_hv(config, d, everything, refs[d]) for d in devices}
    print("reference points (accuracy, latency_ms, size_bytes):")
    for d in devices:
        print(f"  {d}: {refs[d]}   brute-force front HV = {best[d]:.6g}")
    print()
    print(f"{'sampler':8s} " + " ".join(f"{'HV/HV* ' + d:>24s}" for d in devices))
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in ("nsga2", "tpe", "random"):
            ratios: dict[str, list[float]] = {d: [] for d in devices}
            for seed in range(args.seeds):
                db = f"sqlite:///{tmp}/{sampler}-{seed}.db"
                evs, _ = run_sampler(devices, table, sampler, seed, args.trials, db)
                for d in devices:
                    ratios[d].append(front_hv(config, d, evs, refs[d]) / best[d])
            cells = [
                f"{statistics.mean(r):.3f} +- {statistics.stdev(r) if len(r) > 1 else 0:.3f}"
                for r in ratios.values()
            ]
            print(f"{sampler:8s} " + " ".join(f"{c:>24s}" for c in cells))

        print()
        print(f"controller + storage overhead ({args.overhead_trials} trials, lookup evaluator):")
        n = args.overhead_trials
        for label in ("sqlite", "postgresql"):
            for gc_on in (True, False):
                url: str | None = (
                    f"sqlite:///{tmp}/overhead-{gc_on}.db" if label == "sqlite" else pg_url()
                )
                if url is None:
                    print("  postgresql: not reachable on 127.0.0.1:5432, skipped")
                    break
                try:
                    _, wall = run_sampler(devices, table, "nsga2", 0, n, url, gc_after_trial=gc_on)
                finally:
                    if label == "postgresql":
                        drop_pg(url)
                what = "with gc after each trial (default)" if gc_on else "without gc"
                print(f"  {label:10s} {1000 * wall / n:8.1f} ms/trial  {what}")


if __name__ == "__main__":
    main()
