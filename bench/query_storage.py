"""Latency of the front query (``paretoedge.storage.get_front``) on a large study.

Loads a synthetic study of N candidates (default 100,000) scored on D devices into a
database (by default a fresh PostgreSQL database on 127.0.0.1:5432 that is dropped
afterwards), ranks every candidate per device with an exact 2-D non-dominated sort
(latency down, accuracy up), stores the rankings with ``replace_front`` and then times
``get_front`` for several realistic requests, in-process (no HTTP; ``bench/query.py``
adds the HTTP layer). Prints p50/p95/p99/max per scenario.

    python bench/query_storage.py                       # 100k candidates x 3 devices, PG
    python bench/query_storage.py --url sqlite:////tmp/q.db --candidates 20000
    python bench/query_storage.py --json results.json
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

DEVICE_FACTORS = {"rpi4": 4.0e-6, "jetson_nano": 6.0e-7, "stm32h7": 9.0e-5, "pixel7": 1.1e-6}


def _rank_2d(points: dict[int, tuple[float, float]]) -> dict[int, int]:
    """Exact non-dominated ranks for (minimise x, maximise y) in O(n log n).

    Points sorted by x (ties: higher y first) are dealt to fronts greedily: a point joins
    the first front whose best y so far is below its own y (it is not dominated there).
    The best y per front decreases with the front index, so the first such front is found
    by bisection on the negated values.
    """
    order = sorted(points, key=lambda k: (points[k][0], -points[k][1]))
    best_neg_y: list[float] = []  # -(best y) of each front, increasing with the index
    ranks: dict[int, int] = {}
    for k in order:
        neg_y = -points[k][1]
        # Every earlier point has x <= this x, so front j dominates this point iff its
        # best y >= this y; the first front that does not is the first best_neg_y > neg_y.
        i = bisect.bisect_right(best_neg_y, neg_y)
        if i == len(best_neg_y):
            best_neg_y.append(neg_y)
        else:
            best_neg_y[i] = neg_y
        ranks[k] = i
    return ranks


def _rank_brute(points: dict[int, tuple[float, float]]) -> dict[int, int]:
    left, ranks, rank = dict(points), {}, 0
    while left:
        front = [
            i
            for i, (x, y) in left.items()
            if not any(x2 <= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in left.values())
        ]
        for i in front:
            ranks[i] = rank
            del left[i]
        rank += 1
    return ranks


def _self_check() -> None:
    rng = random.Random(1)
    pts = {i: (rng.random(), rng.random()) for i in range(300)}
    assert _rank_2d(pts) == _rank_brute(pts), "2-D non-dominated sort disagrees with brute force"


def _create_pg_database() -> tuple[str, Callable[[], None]]:
    import psycopg

    name = f"pe_bench_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def load(storage: Any, *, n: int, devices: list[str], seed: int) -> dict[str, Any]:
    """Write the synthetic study; return load timings and front sizes."""
    from sqlalchemy import insert, select

    from paretoedge.storage import create_study, replace_front
    from paretoedge.storage._models import CandidateRow, DeviceMetricsRow, StudyRow, utcnow

    rng = random.Random(seed)
    create_study(
        storage,
        name="bench",
        config={"model": "tiny-bert", "synthetic": True, "candidates": n},
        devices=devices,
        objectives=[{"name": "accuracy", "device": None, "direction": "maximize"}]
        + [{"name": "latency_ms", "device": d, "direction": "minimize"} for d in devices],
        seed=seed,
    )
    t0 = time.perf_counter()
    with storage.session() as session:
        study_id = session.execute(select(StudyRow.id).where(StudyRow.name == "bench")).scalar_one()
        now = utcnow()
        cands = []
        for trial in range(n):
            bits = rng.choice([4, 8, 16, 32])
            sparsity = rng.choice([0.0, 0.25, 0.5, 0.75, 0.9])
            params = rng.randrange(2_000_000, 23_000_000)
            size = int(params * bits / 8 * (1 - sparsity * 0.8))
            accuracy = max(
                0.5,
                min(
                    0.93,
                    0.93
                    - 0.02 * (32 / bits) * sparsity
                    - 0.4 * (1 - params / 23e6) ** 3
                    + rng.gauss(0, 0.02),
                ),
            )
            cands.append(
                {
                    "study_id": study_id,
                    "trial_number": trial,
                    "state": "complete",
                    "is_baseline": trial < 2,
                    "baseline_name": ["teacher", "int8"][trial] if trial < 2 else None,
                    "spec": {
                        "quant.bits": bits,
                        "prune.sparsity": sparsity,
                        "distill.layers": rng.choice([2, 4, 6]),
                    },
                    "accuracy": accuracy,
                    "size_bytes": size,
                    "parameters": params,
                    "sparsity": sparsity,
                    "fidelity": 100,
                    "wall_s": rng.uniform(5, 60),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for start in range(0, n, 10_000):
            session.execute(insert(CandidateRow), cands[start : start + 10_000])
        ids = dict(
            session.execute(
                select(CandidateRow.trial_number, CandidateRow.id).where(
                    CandidateRow.study_id == study_id
                )
            ).all()
        )
        metrics = []
        for device in devices:
            factor = DEVICE_FACTORS.get(device, 2e-6)
            for c in cands:
                lat = c["size_bytes"] * factor * rng.uniform(0.8, 1.25) + 0.05
                metrics.append(
                    {
                        "candidate_id": ids[c["trial_number"]],
                        "device": device,
                        "latency_ms": lat,
                        "peak_memory_bytes": int(c["size_bytes"] * 1.3),
                        "energy_mj": lat * 2.1,
                        "flash_bytes": None,
                        "sram_bytes": None,
                        "feasible": True,
                        "violations": [],
                    }
                )
        for start in range(0, len(metrics), 10_000):
            session.execute(insert(DeviceMetricsRow), metrics[start : start + 10_000])
    load_s = time.perf_counter() - t0
    acc_by_id = {ids[c["trial_number"]]: c["accuracy"] for c in cands}
    front_sizes = {}
    replace_s = {}
    for device in devices:
        points = {
            m["candidate_id"]: (m["latency_ms"], acc_by_id[m["candidate_id"]])
            for m in metrics
            if m["device"] == device
        }
        ranks = _rank_2d(points)
        t1 = time.perf_counter()
        replace_front(storage, study="bench", device=device, ranks=ranks)
        replace_s[device] = time.perf_counter() - t1
        front_sizes[device] = sum(1 for r in ranks.values() if r == 0)
    if storage.dialect == "postgresql":
        with storage.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return {"load_s": load_s, "replace_front_s": replace_s, "front_sizes": front_sizes}


def scenarios(devices: list[str]) -> list[tuple[str, dict[str, Any]]]:
    d0 = devices[0]
    return [
        ("front, sort latency", {"device": d0}),
        (
            "front, sort accuracy, min_accuracy 0.85",
            {"device": d0, "sort": "accuracy", "min_accuracy": 0.85},
        ),
        (
            "front, all three filters, sort size",
            {
                "device": devices[-1],
                "sort": "size",
                "max_latency_ms": 2000.0,
                "min_accuracy": 0.7,
                "max_size_bytes": 20_000_000,
            },
        ),
        ("ranks <= 5, sort latency, limit 100", {"device": d0, "max_rank": 5, "limit": 100}),
        (
            "all ranked, max_latency 20, sort accuracy, limit 100",
            {
                "device": d0,
                "max_rank": None,
                "max_latency_ms": 20.0,
                "sort": "accuracy",
                "limit": 100,
            },
        ),
        (
            "all ranked, sort latency, offset 50000, limit 100",
            {"device": d0, "max_rank": None, "offset": 50_000, "limit": 100},
        ),
    ]


def measure(storage: Any, devices: list[str], queries: int) -> list[dict[str, Any]]:
    from paretoedge.storage import get_front

    results = []
    for label, kwargs in scenarios(devices):
        for _ in range(20):
            page = get_front(storage, study="bench", **kwargs)
        times = []
        for _ in range(queries):
            t0 = time.perf_counter()
            page = get_front(storage, study="bench", **kwargs)
            times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        results.append(
            {
                "scenario": label,
                "total": page.total,
                "returned": len(page.entries),
                "p50_ms": statistics.median(times),
                "p95_ms": times[int(0.95 * (len(times) - 1))],
                "p99_ms": times[int(0.99 * (len(times) - 1))],
                "max_ms": times[-1],
            }
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="database URL (default: a temporary PostgreSQL database)")
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--devices", type=int, default=3, choices=range(1, 5))
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    from paretoedge.storage import open_storage

    _self_check()
    drop = None
    url = args.url
    if url is None:
        url, drop = _create_pg_database()
    devices = list(DEVICE_FACTORS)[: args.devices]
    try:
        with open_storage(url) as storage:
            info = load(storage, n=args.candidates, devices=devices, seed=args.seed)
            print(f"database: {storage.url}")
            print(
                f"loaded {args.candidates} candidates x {len(devices)} devices in "
                f"{info['load_s']:.1f} s; replace_front: "
                + ", ".join(f"{d} {s:.2f} s" for d, s in info["replace_front_s"].items())
            )
            print(
                "front sizes (rank 0): "
                + ", ".join(f"{d} {n}" for d, n in info["front_sizes"].items())
            )
            results = measure(storage, devices, args.queries)
    finally:
        if drop is not None:
            drop()
    load1, load5, _ = os.getloadavg()
    print(
        f"get_front latency over {args.queries} queries each (in-process, ms; "
        f"{os.cpu_count()} CPUs, load average {load1:.1f}/{load5:.1f}):"
    )
    print(
        f"{'scenario':58s} {'total':>7s} {'rows':>5s} "
        f"{'p50':>7s} {'p95':>7s} {'p99':>7s} {'max':>7s}"
    )
    for r in results:
        print(
            f"{r['scenario']:58s} {r['total']:7d} {r['returned']:5d} {r['p50_ms']:7.2f} "
            f"{r['p95_ms']:7.2f} {r['p99_ms']:7.2f} {r['max_ms']:7.2f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "candidates": args.candidates,
                    "devices": devices,
                    "load": info,
                    "results": results,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
