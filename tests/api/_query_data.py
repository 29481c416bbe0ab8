"""A stored study for the query tests, written through the storage API.

Candidates span a quickstart-like space (pruning, head/FFN keep, bit-width); their
metrics follow monotone rules of the spec (smaller and faster with more compression, less
accurate), with two reference baselines, a pruned and a failed trial. Ranks per device are
computed by the search's non-dominated sort, as the controller does, and stored with
``replace_front``: the tests compare every answer with a brute-force filter of the stored
candidates, never with numbers written here.
"""

from __future__ import annotations

import itertools
from typing import Any

DEVICES = ("rpi4", "host")
SPEED = {"rpi4": 4.0, "host": 1.0}
STUDY = "qs"


def _metrics(spec: dict[str, Any]) -> tuple[float, int, dict[str, float]]:
    sparsity = spec.get("prune.sparsity", 0.0)
    bits = spec.get("quant.bits", 32)
    heads = spec.get("heads.keep", 1.0)
    ffn = spec.get("ffn.keep", 1.0)
    acc = 0.91 - 0.35 * sparsity**2 - {32: 0.0, 8: 0.008, 4: 0.05}[bits]
    acc -= 0.06 * (1 - heads) + 0.05 * (1 - ffn)
    size = int(90_000_000 * (0.5 + 0.25 * heads + 0.25 * ffn) * (1 - sparsity) * bits / 32)
    lat = {
        d: SPEED[d]
        * 10
        * (0.4 + 0.3 * heads + 0.3 * ffn)
        * (1 - 0.5 * sparsity)
        * (bits / 32) ** 0.5
        for d in DEVICES
    }
    return round(acc, 6), size, lat


def populate(url: str, *, study: str = STUDY) -> None:
    """Create ``study`` at ``url`` with ~60 candidates, metrics on two devices and fronts."""
    from paretoedge import storage as st
    from paretoedge.search import non_dominated_sort

    storage = st.open_storage(url)
    try:
        st.create_study(
            storage,
            name=study,
            config={
                "name": study,
                "model": "tiny-bert",
                "task": "sentiment",
                "seed": 0,
                "devices": list(DEVICES),
            },
            devices=list(DEVICES),
            objectives=[
                {"name": "accuracy", "device": None, "direction": "maximize"},
                *({"name": "latency_ms", "device": d, "direction": "minimize"} for d in DEVICES),
                {"name": "size_bytes", "device": None, "direction": "minimize"},
            ],
            seed=0,
        )
        specs: list[tuple[dict[str, Any], str | None]] = [
            ({}, "teacher"),
            ({"quant.bits": 8}, "int8"),
        ]
        for sp, hk, fk, b in itertools.product((0.0, 0.3, 0.6), (1.0, 0.5), (1.0, 0.5), (32, 8, 4)):
            specs.append(
                (
                    {
                        "prune.sparsity": sp,
                        "heads.keep": hk,
                        "ffn.keep": fk,
                        "quant.bits": b,
                        "recovery.steps": 6,
                    },
                    None,
                )
            )
        cands = []
        for n, (spec, baseline) in enumerate(specs):
            acc, size, lat = _metrics(spec)
            c = st.upsert_candidate(
                storage,
                study=study,
                trial_number=n,
                state="complete",
                spec=spec,
                accuracy=acc,
                size_bytes=size,
                parameters=size // 4,
                sparsity=spec.get("prune.sparsity", 0.0),
                fidelity=6,
                wall_s=1.5,
                is_baseline=baseline is not None,
                baseline_name=baseline,
            )
            for d in DEVICES:
                st.upsert_device_metrics(
                    storage,
                    candidate_id=c.id,
                    device=d,
                    latency_ms=round(lat[d], 6),
                    peak_memory_bytes=size + 2_000_000,
                    energy_mj=round(lat[d] * 3, 6),
                )
            cands.append((c.id, acc, size, lat))
        n = len(specs)
        st.upsert_candidate(
            storage,
            study=study,
            trial_number=n,
            state="pruned",
            spec={"prune.sparsity": 0.6},
            accuracy=0.5,
            fidelity=2,
        )
        st.upsert_candidate(
            storage, study=study, trial_number=n + 1, state="failed", spec={"quant.bits": 4}
        )
        for d in DEVICES:
            ranks = non_dominated_sort(
                [[a, lat[d], s] for _, a, s, lat in cands],
                ["maximize", "minimize", "minimize"],
            )
            st.replace_front(
                storage,
                study=study,
                device=d,
                ranks={cid: r for (cid, *_), r in zip(cands, ranks, strict=True)},
            )
    finally:
        storage.close()


EXIT_STUDY = "ex"


def populate_exits(url: str, *, study: str = EXIT_STUDY) -> dict[int, tuple[float, float | None]]:
    """A small study where one candidate has early exits: its latency on each device is the
    expected one and ``latency_worst_ms`` the full path's; the others have no worst case.
    Returns ``{trial: (rpi4 latency, rpi4 worst case)}``."""
    from paretoedge import storage as st

    storage = st.open_storage(url)
    rows = {
        0: ({}, "teacher", 0.80, 10.0, None),
        1: ({"exit.layers": "1", "exit.threshold": 0.9}, None, 0.78, 6.5, 10.4),
        2: ({"prune.sparsity": 0.5}, None, 0.75, 8.0, None),
    }
    try:
        st.create_study(
            storage,
            name=study,
            config={"name": study, "model": "tiny-bert", "task": "sentiment", "seed": 0},
            devices=list(DEVICES),
            objectives=[
                {"name": "accuracy", "device": None, "direction": "maximize"},
                *({"name": "latency_ms", "device": d, "direction": "minimize"} for d in DEVICES),
            ],
            seed=0,
        )
        ids = {}
        for n, (spec, baseline, acc, lat, worst) in rows.items():
            c = st.upsert_candidate(
                storage,
                study=study,
                trial_number=n,
                state="complete",
                spec=spec,
                accuracy=acc,
                size_bytes=1_000_000,
                is_baseline=baseline is not None,
                baseline_name=baseline,
            )
            ids[n] = c.id
            for d in DEVICES:
                st.upsert_device_metrics(
                    storage,
                    candidate_id=c.id,
                    device=d,
                    latency_ms=lat * SPEED[d],
                    latency_worst_ms=None if worst is None else worst * SPEED[d],
                    peak_memory_bytes=2_000_000,
                )
        for d in DEVICES:
            st.replace_front(storage, study=study, device=d, ranks={i: 0 for i in ids.values()})
    finally:
        storage.close()
    return {n: (lat * SPEED["rpi4"], None if w is None else w * SPEED["rpi4"])
            for n, (_, _, _, lat, w) in rows.items()}  # fmt: skip
