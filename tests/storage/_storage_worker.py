"""A separate process writing to one study (run by test_storage_concurrency.py).

Usage: python _storage_worker.py MODE URL WORKER START_AT N
  MODE "rows":   open the (maybe fresh) database, create the shared study, write the shared
                 trials 0..N-1 (running, then complete, then metrics on both devices) plus
                 N//2 trials of its own, and replace the rpi4 front now and then.
  MODE "optuna": run N Optuna trials of a shared study through optuna_storage(), each
                 storing its candidate and metrics like the controller does.
Both workers start at the wall-clock time START_AT so that their writes overlap.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _storage_helpers import DEVICES, expected_values, study_kwargs  # noqa: E402


def _ranks(storage, study: str, device: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    from paretoedge.storage import list_candidates

    cands = list_candidates(storage, study=study, states=["complete"], device=device)
    points = {}
    for c in cands:
        m = c.metrics_for(device)
        if m is not None and c.accuracy is not None:
            points[c.id] = (m.latency_ms, c.accuracy)
    ranks = {}
    for cid, (lat, acc) in points.items():
        dominated_by = sum(
            1
            for lat2, acc2 in points.values()
            if lat2 <= lat and acc2 >= acc and (lat2, acc2) != (lat, acc)
        )
        ranks[cid] = dominated_by
    return ranks


def rows(url: str, worker: int, n: int) -> None:
    from paretoedge.storage import (
        create_study,
        open_storage,
        replace_front,
        upsert_candidate,
        upsert_device_metrics,
    )

    with open_storage(url) as storage:
        create_study(storage, **study_kwargs("conc"))
        own = [1000 * (worker + 1) + i for i in range(n // 2)]
        order = list(range(n)) if worker == 0 else list(reversed(range(n)))
        for i, trial in enumerate(order + own):
            v = expected_values(trial)
            upsert_candidate(
                storage, study="conc", trial_number=trial, state="running", spec=v["spec"]
            )
            cand = upsert_candidate(
                storage,
                study="conc",
                trial_number=trial,
                state="complete",
                spec=v["spec"],
                accuracy=v["accuracy"],
                size_bytes=v["size_bytes"],
            )
            for device in DEVICES:
                upsert_device_metrics(
                    storage,
                    candidate_id=cand.id,
                    device=device,
                    latency_ms=v[device],
                    peak_memory_bytes=v["size_bytes"] * 2,
                )
            if i % 5 == 4:
                replace_front(
                    storage, study="conc", device="rpi4", ranks=_ranks(storage, "conc", "rpi4")
                )


def optuna_trials(url: str, worker: int, n: int) -> None:
    import optuna

    from paretoedge.storage import create_study as pe_create_study
    from paretoedge.storage import (
        open_storage,
        optuna_storage,
        upsert_candidate,
        upsert_device_metrics,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rdb = optuna_storage(url, heartbeat_interval=5, grace_period=20)
    study = optuna.create_study(
        study_name="conc",
        storage=rdb,
        load_if_exists=True,
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=worker),
    )
    with open_storage(url) as storage:
        pe_create_study(storage, **study_kwargs("conc"))

        def objective(trial: optuna.Trial) -> tuple[float, float]:
            bits = trial.suggest_categorical("quant.bits", [4, 8, 16, 32])
            sparsity = trial.suggest_float("prune.sparsity", 0.0, 0.9)
            spec = {"quant.bits": bits, "prune.sparsity": sparsity}
            upsert_candidate(
                storage, study="conc", trial_number=trial.number, state="running", spec=spec
            )
            acc = 0.9 - sparsity / 10 - (32 - bits) / 1000
            lat = bits * (1 - sparsity)
            cand = upsert_candidate(
                storage,
                study="conc",
                trial_number=trial.number,
                state="complete",
                spec=spec,
                accuracy=acc,
                size_bytes=int(1e6 * bits * (1 - sparsity)),
            )
            upsert_device_metrics(
                storage, candidate_id=cand.id, device="rpi4", latency_ms=lat, peak_memory_bytes=1
            )
            return acc, lat

        study.optimize(objective, n_trials=n)
    rdb.engine.dispose()


def main() -> None:
    mode, url, worker, start_at, n = sys.argv[1:6]
    while time.time() < float(start_at):
        time.sleep(0.005)
    began = time.time()
    if mode == "rows":
        rows(url, int(worker), int(n))
    else:
        optuna_trials(url, int(worker), int(n))
    print("ok", began, time.time(), flush=True)


if __name__ == "__main__":
    main()
