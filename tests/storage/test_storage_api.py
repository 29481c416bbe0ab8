"""The data-access API, one suite run on SQLite and on PostgreSQL (``backend`` fixture)."""

from __future__ import annotations

import random
import threading
from dataclasses import FrozenInstanceError
from typing import Any

import pytest
from _storage_helpers import DEVICES, study_kwargs

from paretoedge.compression import CompressionSpec, PruneConfig, QuantConfig
from paretoedge.errors import ConfigError, NotFoundError, StorageError
from paretoedge.storage import (
    MAX_PAGE_SIZE,
    CandidateRecord,
    DeviceMetricsRecord,
    ObjectiveRecord,
    Storage,
    add_artifact,
    add_study_device,
    create_study,
    get_candidate,
    get_front,
    get_study,
    list_artifacts,
    list_candidates,
    list_studies,
    replace_front,
    set_study_status,
    set_test_accuracy,
    upsert_candidate,
    upsert_device_metrics,
    upsert_device_metrics_many,
)


def _add(storage: Storage, study: str, trial: int, **over: Any) -> CandidateRecord:
    kwargs: dict[str, Any] = {
        "study": study,
        "trial_number": trial,
        "state": "complete",
        "spec": {"prune.sparsity": 0.1 * (trial % 10), "quant.bits": 8},
        "accuracy": 0.5 + trial / 1000,
        "size_bytes": 1000 + trial,
        "parameters": 500 + trial,
        "sparsity": 0.25,
        "fidelity": 10,
        "wall_s": 1.5,
    }
    kwargs.update(over)
    return upsert_candidate(storage, **kwargs)


# ---------------------------------------------------------------------------- studies


def test_study_round_trip(storage: Storage) -> None:
    created = create_study(storage, **study_kwargs())
    fetched = get_study(storage, name="s1")
    assert fetched == created
    assert fetched.config["space"]["quant.bits"] == [4, 8, 16, 32]
    assert fetched.config["lr"] == 5e-5
    assert fetched.devices == tuple(DEVICES)
    assert fetched.objectives[1] == ObjectiveRecord("latency_ms", "rpi4", "minimize")
    assert fetched.status == "running" and fetched.seed == 7
    assert fetched.optuna_study_name == "s1"
    assert fetched.created_at.tzinfo is not None
    with pytest.raises(FrozenInstanceError):
        fetched.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        fetched.config["lr"] = 1.0  # type: ignore[index]
    assert fetched.to_dict()["objectives"][0] == {
        "name": "accuracy",
        "device": None,
        "direction": "maximize",
    }


def test_create_study_is_idempotent_and_refuses_a_different_config(storage: Storage) -> None:
    first = create_study(storage, **study_kwargs())
    set_study_status(storage, study="s1", status="stopped")
    again = create_study(storage, **study_kwargs())
    assert again.id == first.id and again.status == "stopped"
    changed = study_kwargs()
    changed["config"] = {**changed["config"], "budget": {"trials": 30}}
    with pytest.raises(ConfigError) as err:
        create_study(storage, **changed)
    assert err.value.field == "study" and "config.budget" in str(err.value)
    with pytest.raises(ConfigError, match="seed"):
        create_study(storage, **study_kwargs(seed=8))
    with pytest.raises(ConfigError, match="devices"):
        create_study(storage, **study_kwargs(devices=["rpi4"]))
    assert len(list_studies(storage)) == 1


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"name": ""}, "study"),
        ({"devices": []}, "devices"),
        ({"devices": ["rpi4", "rpi4"]}, "devices"),
        ({"devices": "rpi4"}, "devices"),
        (
            {"objectives": [{"name": "accuracy", "device": None, "direction": "up"}]},
            "objectives[0].direction",
        ),
        ({"objectives": []}, "objectives"),
        ({"config": {"x": float("nan")}}, "config"),
        ({"config": {"x": object()}}, "config"),
        ({"seed": 1.5}, "seed"),
    ],
    ids=[
        "empty-name",
        "no-devices",
        "dup-devices",
        "devices-str",
        "direction",
        "no-objectives",
        "nan-config",
        "object-config",
        "float-seed",
    ],
)
def test_create_study_validates(storage: Storage, override: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_study(storage, **study_kwargs(**override))
    assert err.value.field == field
    assert list_studies(storage) == ()


def test_status_and_devices(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    assert set_study_status(storage, study="s1", status="finished").status == "finished"
    with pytest.raises(ConfigError, match="status"):
        set_study_status(storage, study="s1", status="done")  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="s1"):
        set_study_status(storage, study="nope", status="finished")
    assert add_study_device(storage, study="s1", device="stm32").devices == (*DEVICES, "stm32")
    assert add_study_device(storage, study="s1", device="stm32").devices == (*DEVICES, "stm32")


def test_list_studies_counts_states(storage: Storage) -> None:
    create_study(storage, **study_kwargs("a"))
    create_study(storage, **study_kwargs("b"))
    for trial, state in enumerate(["complete", "complete", "failed", "running", "pruned"]):
        _add(storage, "a", trial, state=state)
    _add(storage, "b", 0)
    summaries = {s.study.name: s for s in list_studies(storage)}
    a = summaries["a"]
    assert (a.trials_complete, a.trials_failed, a.trials_running, a.trials_pruned) == (2, 1, 1, 1)
    assert a.trials_total == 5 and a.study.devices == tuple(DEVICES)
    assert summaries["b"].trials_total == 1
    assert [s.study.name for s in list_studies(storage)] == ["a", "b"]


def test_get_study_not_found_lists_known(storage: Storage) -> None:
    create_study(storage, **study_kwargs("alpha"))
    with pytest.raises(NotFoundError, match="'beta' not found.*alpha"):
        get_study(storage, name="beta")


# ---------------------------------------------------------------------------- candidates


def test_candidate_round_trip_with_metrics(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    cand = _add(storage, "s1", 3, is_baseline=True, baseline_name="int8")
    upsert_device_metrics(
        storage,
        candidate_id=cand.id,
        device="rpi4",
        latency_ms=12.5,
        peak_memory_bytes=4_000_000,
        energy_mj=3.25,
        flash_bytes=None,
        sram_bytes=None,
        feasible=False,
        violations=["latency_ms[rpi4] <= 10"],
    )
    upsert_device_metrics(
        storage, candidate_id=cand.id, device="jetson", latency_ms=1.5, peak_memory_bytes=10**10
    )
    got = get_candidate(storage, study="s1", trial_number=3)
    assert got.id == cand.id and got.is_baseline and got.baseline_name == "int8"
    assert got.spec == CompressionSpec(
        prune=PruneConfig(sparsity=0.30000000000000004), quant=QuantConfig(bits=8)
    )
    assert (got.accuracy, got.size_bytes, got.parameters, got.fidelity) == (0.503, 1003, 503, 10)
    assert [m.device for m in got.metrics] == ["jetson", "rpi4"]
    rpi = got.metrics_for("rpi4")
    assert rpi is not None and not rpi.feasible
    assert rpi.violations == ("latency_ms[rpi4] <= 10",) and rpi.energy_mj == 3.25
    jetson = got.metrics_for("jetson")
    assert jetson is not None and jetson.peak_memory_bytes == 10**10 and jetson.feasible
    assert got.metrics_for("stm32") is None
    assert got.to_dict()["metrics"]["rpi4"]["latency_ms"] == 12.5


def test_upsert_candidate_is_idempotent(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    running = upsert_candidate(
        storage, study="s1", trial_number=0, state="running", spec={"quant.bits": 4}
    )
    assert running.accuracy is None and running.state == "running"
    done = _add(storage, "s1", 0, spec={"quant.bits": 4}, accuracy=0.9)
    assert done.id == running.id and done.state == "complete" and done.accuracy == 0.9
    # A retried/stale "running" write keeps the finished state and the measurements.
    again = upsert_candidate(
        storage, study="s1", trial_number=0, state="running", spec={"quant.bits": 4}
    )
    assert again.id == done.id and again.state == "complete" and again.accuracy == 0.9
    assert again.size_bytes == 1000
    for _ in range(3):
        _add(storage, "s1", 0, spec={"quant.bits": 4}, accuracy=0.9)
    assert len(list_candidates(storage, study="s1")) == 1
    # A later measurement does replace the stored one.
    assert _add(storage, "s1", 0, accuracy=0.95).accuracy == 0.95


def test_upsert_device_metrics_replaces(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    cand = _add(storage, "s1", 0)
    for latency in (5.0, 4.0, 4.0):
        upsert_device_metrics(
            storage, candidate_id=cand.id, device="rpi4", latency_ms=latency, peak_memory_bytes=1
        )
    (only,) = get_candidate(storage, study="s1", trial_number=0).metrics
    assert only.latency_ms == 4.0
    with pytest.raises(NotFoundError, match="999999"):
        upsert_device_metrics(
            storage, candidate_id=999999, device="rpi4", latency_ms=1.0, peak_memory_bytes=1
        )
    with pytest.raises(ConfigError) as err:
        upsert_device_metrics(
            storage, candidate_id=cand.id, device="rpi4", latency_ms=-1.0, peak_memory_bytes=1
        )
    assert err.value.field == "latency_ms"


def test_worst_case_latency_of_an_early_exit_candidate(storage: Storage) -> None:
    """The worst case is stored beside the expected latency, read back by every reader,
    NULL for ordinary candidates, and refused below the expected latency."""
    create_study(storage, **study_kwargs())
    exits = _add(storage, "s1", 0, spec={"exit.layers": "1", "exit.threshold": 0.9})
    plain = _add(storage, "s1", 1)
    upsert_device_metrics(
        storage,
        candidate_id=exits.id,
        device="rpi4",
        latency_ms=0.8,
        latency_worst_ms=1.25,
        peak_memory_bytes=1,
    )
    upsert_device_metrics_many(
        storage,
        metrics=[
            DeviceMetricsRecord(exits.id, "jetson", 0.1, 1, None, None, None, True, (), 0.1),
            DeviceMetricsRecord(plain.id, "rpi4", 1.0, 1, None, None, None, True, ()),
        ],
    )
    got = get_candidate(storage, study="s1", trial_number=0)
    rpi, jetson = got.metrics_for("rpi4"), got.metrics_for("jetson")
    assert rpi is not None and (rpi.latency_ms, rpi.latency_worst_ms) == (0.8, 1.25)
    assert jetson is not None and jetson.latency_worst_ms == 0.1
    assert got.to_dict()["metrics"]["rpi4"]["latency_worst_ms"] == 1.25
    other = get_candidate(storage, study="s1", trial_number=1).metrics_for("rpi4")
    assert other is not None and other.latency_worst_ms is None
    replace_front(storage, study="s1", device="rpi4", ranks={exits.id: 0, plain.id: 0})
    page = get_front(storage, study="s1", device="rpi4")
    front = {e.candidate.trial_number: e.metrics for e in page.entries}
    assert front[0].latency_worst_ms == 1.25 and front[1].latency_worst_ms is None
    listed = list_candidates(storage, study="s1", device="rpi4")
    assert [c.metrics[0].latency_worst_ms for c in listed] == [1.25, None]
    for bad in (0.5, -1.0, float("nan")):
        with pytest.raises(ConfigError) as err:
            upsert_device_metrics(
                storage,
                candidate_id=exits.id,
                device="rpi4",
                latency_ms=0.8,
                latency_worst_ms=bad,
                peak_memory_bytes=1,
            )
        assert err.value.field == "latency_worst_ms" and "\n" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        upsert_device_metrics_many(
            storage,
            metrics=[
                DeviceMetricsRecord(exits.id, "rpi4", 2.0, 1, None, None, None, True, (), 1.0)
            ],
        )
    assert err.value.field == "metrics[0].latency_worst_ms"
    stored = get_candidate(storage, study="s1", trial_number=0).metrics_for("rpi4")
    assert stored is not None and stored.latency_worst_ms == 1.25  # nothing stored lost


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"state": "done"}, "state"),
        ({"trial_number": -1}, "trial_number"),
        ({"accuracy": float("inf")}, "accuracy"),
        ({"sparsity": 1.5}, "sparsity"),
        ({"size_bytes": -5}, "size_bytes"),
        ({"spec": [1, 2]}, "spec"),
        ({"is_baseline": 1}, "is_baseline"),
    ],
    ids=lambda v: str(v) if isinstance(v, str) else next(iter(v)) if isinstance(v, dict) else "",
)
def test_upsert_candidate_validates(storage: Storage, override: dict[str, Any], field: str) -> None:
    create_study(storage, **study_kwargs())
    with pytest.raises(ConfigError) as err:
        _add(storage, "s1", 0, **override)
    assert err.value.field == field
    assert list_candidates(storage, study="s1") == ()


def test_candidate_not_found(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    with pytest.raises(NotFoundError, match="trial 4 of study 's1'"):
        get_candidate(storage, study="s1", trial_number=4)
    with pytest.raises(NotFoundError):
        _add(storage, "missing", 0)


def test_list_candidates_filters_and_pages(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    states = ["complete", "failed", "complete", "pruned", "complete", "running"]
    for trial, state in enumerate(states):
        cand = _add(storage, "s1", trial, state=state)
        for dev in DEVICES:
            upsert_device_metrics(
                storage,
                candidate_id=cand.id,
                device=dev,
                latency_ms=trial + 1.0,
                peak_memory_bytes=1,
            )
    everything = list_candidates(storage, study="s1")
    assert [c.trial_number for c in everything] == list(range(6))
    assert all(len(c.metrics) == 2 for c in everything)
    done = list_candidates(storage, study="s1", states=["complete"], device="rpi4")
    assert [c.trial_number for c in done] == [0, 2, 4]
    assert all([m.device for m in c.metrics] == ["rpi4"] for c in done)
    page = list_candidates(storage, study="s1", limit=2, offset=3)
    assert [c.trial_number for c in page] == [3, 4]
    with pytest.raises(ConfigError, match="limit"):
        list_candidates(storage, study="s1", limit=MAX_PAGE_SIZE + 1)
    with pytest.raises(ConfigError, match="states"):
        list_candidates(storage, study="s1", states=["ok"])  # type: ignore[list-item]


def test_test_accuracy_and_artifacts(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    cand = _add(storage, "s1", 0)
    assert (
        set_test_accuracy(storage, study="s1", trial_number=0, test_accuracy=0.77).test_accuracy
        == 0.77
    )
    # Re-writing the trial without a test accuracy keeps it.
    assert _add(storage, "s1", 0).test_accuracy == 0.77
    digest = "ab" * 32
    art = add_artifact(
        storage, candidate_id=cand.id, kind="onnx", path="m.onnx", sha256=digest, bytes=10
    )
    art2 = add_artifact(
        storage, candidate_id=cand.id, kind="onnx", path="m.onnx", sha256="cd" * 32, bytes=11
    )
    add_artifact(
        storage, candidate_id=cand.id, kind="card", path="README.md", sha256=digest, bytes=3
    )
    assert art2.id == art.id
    listed = list_artifacts(storage, candidate_id=cand.id)
    assert [(a.kind, a.sha256, a.bytes) for a in listed] == [
        ("onnx", "cd" * 32, 11),
        ("card", digest, 3),
    ]
    with pytest.raises(ConfigError, match="kind"):
        add_artifact(storage, candidate_id=cand.id, kind="zip", path="x", sha256=digest, bytes=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sha256"):
        add_artifact(storage, candidate_id=cand.id, kind="hf", path="x", sha256="xyz", bytes=1)
    with pytest.raises(NotFoundError):
        add_artifact(
            storage, candidate_id=cand.id + 100, kind="hf", path="x", sha256=digest, bytes=1
        )


# ---------------------------------------------------------------------------- fronts


def _ranks(points: dict[int, tuple[float, float]]) -> dict[int, int]:
    """Brute-force non-dominated sort of (latency min, accuracy max) by peeling fronts."""
    left = dict(points)
    ranks: dict[int, int] = {}
    rank = 0
    while left:
        front = [
            i
            for i, (lat, acc) in left.items()
            if not any(
                (l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc)
                for j, (l2, a2) in left.items()
                if j != i
            )
        ]
        for i in front:
            ranks[i] = rank
            del left[i]
        rank += 1
    return ranks


@pytest.fixture
def ranked(storage: Storage) -> dict[str, Any]:
    """A study of 60 random candidates on two devices with their fronts stored."""
    create_study(storage, **study_kwargs())
    rng = random.Random(3)
    rows: dict[int, dict[str, Any]] = {}
    metrics = []
    for trial in range(60):
        cand = _add(
            storage,
            "s1",
            trial,
            accuracy=round(rng.uniform(0.5, 0.95), 6),
            size_bytes=rng.randrange(10_000, 5_000_000),
        )
        row = {"trial": trial, "accuracy": cand.accuracy, "size": cand.size_bytes}
        for dev, scale in (("rpi4", 50.0), ("jetson", 5.0)):
            lat = round(rng.uniform(0.1, 1.0) * scale, 6)
            row[dev] = lat
            metrics.append(
                DeviceMetricsRecord(
                    cand.id, dev, lat, rng.randrange(1, 10**8), None, None, None, True, ()
                )
            )
        rows[cand.id] = row
    assert upsert_device_metrics_many(storage, metrics=metrics) == 120
    ranks = {}
    for dev in DEVICES:
        ranks[dev] = _ranks({cid: (r[dev], r["accuracy"]) for cid, r in rows.items()})
        assert replace_front(storage, study="s1", device=dev, ranks=ranks[dev]) == 60
    return {"rows": rows, "ranks": ranks}


def _expected(
    ranked: dict[str, Any],
    device: str,
    *,
    sort: str,
    max_rank: int | None,
    max_latency_ms: float | None = None,
    min_accuracy: float | None = None,
    max_size_bytes: int | None = None,
) -> list[int]:
    rows, ranks = ranked["rows"], ranked["ranks"][device]
    keep = [
        cid
        for cid, r in rows.items()
        if (max_rank is None or ranks[cid] <= max_rank)
        and (max_latency_ms is None or r[device] <= max_latency_ms)
        and (min_accuracy is None or r["accuracy"] >= min_accuracy)
        and (max_size_bytes is None or r["size"] <= max_size_bytes)
    ]
    key = {
        "latency": lambda c: (ranks[c], rows[c][device], -rows[c]["accuracy"], c),
        "accuracy": lambda c: (ranks[c], -rows[c]["accuracy"], rows[c][device], c),
        "size": lambda c: (ranks[c], rows[c]["size"], -rows[c]["accuracy"], c),
    }[sort]
    return sorted(keep, key=key)


def test_get_front_matches_brute_force(storage: Storage, ranked: dict[str, Any]) -> None:
    for device in DEVICES:
        for sort in ("latency", "accuracy", "size"):
            for max_rank in (0, 2, None):
                page = get_front(
                    storage,
                    study="s1",
                    device=device,
                    sort=sort,  # type: ignore[arg-type]
                    max_rank=max_rank,
                    limit=MAX_PAGE_SIZE,
                )
                want = _expected(ranked, device, sort=sort, max_rank=max_rank)
                case = f"{device} sort={sort} max_rank={max_rank}"
                assert [e.candidate.id for e in page.entries] == want, case
                assert page.total == len(want), case
                for entry in page.entries:
                    assert entry.rank == ranked["ranks"][device][entry.candidate.id]
                    assert entry.metrics.device == device
                    assert entry.metrics.latency_ms == ranked["rows"][entry.candidate.id][device]
                    assert entry.candidate.metrics == (entry.metrics,)
    front = get_front(storage, study="s1", device="rpi4")
    assert front.total >= 1 and all(e.rank == 0 for e in front.entries)


FILTERS = [
    {"max_latency_ms": 20.0},
    {"min_accuracy": 0.8},
    {"max_size_bytes": 2_000_000},
    {"max_latency_ms": 30.0, "min_accuracy": 0.7, "max_size_bytes": 4_000_000},
]


def test_get_front_filters(storage: Storage, ranked: dict[str, Any]) -> None:
    for filters in FILTERS:
        page = get_front(
            storage, study="s1", device="rpi4", max_rank=None, limit=MAX_PAGE_SIZE, **filters
        )
        want = _expected(ranked, "rpi4", sort="latency", max_rank=None, **filters)
        assert [e.candidate.id for e in page.entries] == want and page.total == len(want)
        assert 0 < len(want) < 60, f"{filters} should select a proper subset"
    none = get_front(storage, study="s1", device="rpi4", max_rank=None, max_latency_ms=0.0)
    assert none.total == 0 and none.entries == ()


def test_get_front_pagination(storage: Storage, ranked: dict[str, Any]) -> None:
    want = _expected(ranked, "jetson", sort="accuracy", max_rank=None)
    seen = []
    offset = 0
    while True:
        page = get_front(
            storage,
            study="s1",
            device="jetson",
            sort="accuracy",
            max_rank=None,
            limit=7,
            offset=offset,
        )
        assert page.total == 60 and page.limit == 7 and page.offset == offset
        if not page.entries:
            break
        seen.extend(e.candidate.id for e in page.entries)
        offset += 7
    assert seen == want


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sort": "speed"}, "sort"),
        ({"limit": 0}, "limit"),
        ({"limit": MAX_PAGE_SIZE + 1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"max_latency_ms": -1.0}, "max_latency_ms"),
        ({"min_accuracy": float("nan")}, "min_accuracy"),
        ({"max_size_bytes": 1.5}, "max_size_bytes"),
        ({"max_rank": -1}, "max_rank"),
    ],
    ids=["sort", "limit0", "limit-big", "offset", "latency", "accuracy-nan", "size-float", "rank"],
)
def test_get_front_validates(storage: Storage, kwargs: dict[str, Any], field: str) -> None:
    create_study(storage, **study_kwargs())
    with pytest.raises(ConfigError) as err:
        get_front(storage, study="s1", device="rpi4", **kwargs)
    assert err.value.field == field


def test_get_front_unknown_study_or_device(storage: Storage) -> None:
    create_study(storage, **study_kwargs())
    with pytest.raises(NotFoundError, match="study 'x'"):
        get_front(storage, study="x", device="rpi4")
    with pytest.raises(NotFoundError, match="stm32.*rpi4, jetson"):
        get_front(storage, study="s1", device="stm32")
    assert get_front(storage, study="s1", device="rpi4").total == 0


def test_replace_front_rejects_foreign_candidates_and_keeps_old_front(
    storage: Storage, ranked: dict[str, Any]
) -> None:
    before = get_front(storage, study="s1", device="rpi4", max_rank=None, limit=MAX_PAGE_SIZE)
    create_study(storage, **study_kwargs("other"))
    foreign = _add(storage, "other", 0)
    upsert_device_metrics(
        storage, candidate_id=foreign.id, device="rpi4", latency_ms=1.0, peak_memory_bytes=1
    )
    some = dict(list(ranked["ranks"]["rpi4"].items())[:5])
    with pytest.raises(StorageError, match=str(foreign.id)):
        replace_front(storage, study="s1", device="rpi4", ranks={**some, foreign.id: 0})
    unscored = _add(storage, "s1", 100)  # no metrics on rpi4
    with pytest.raises(StorageError, match="no metrics|metrics on that device"):
        replace_front(storage, study="s1", device="rpi4", ranks={**some, unscored.id: 0})
    with pytest.raises(ConfigError):
        replace_front(storage, study="s1", device="rpi4", ranks={**some, unscored.id: -1})
    after = get_front(storage, study="s1", device="rpi4", max_rank=None, limit=MAX_PAGE_SIZE)
    assert after == before
    # A real replacement swaps the whole ranking; an empty one clears it.
    assert replace_front(storage, study="s1", device="rpi4", ranks=some) == 5
    assert get_front(storage, study="s1", device="rpi4", max_rank=None).total == 5
    assert get_front(storage, study="s1", device="jetson", max_rank=None).total == 60
    assert replace_front(storage, study="s1", device="rpi4", ranks={}) == 0
    assert get_front(storage, study="s1", device="rpi4", max_rank=None).total == 0


def test_replace_front_is_atomic_for_concurrent_readers(
    storage: Storage, ranked: dict[str, Any]
) -> None:
    """A reader running next to a writer sees one of the two fronts whole, never a mix."""
    ids = sorted(ranked["rows"])
    front_a = {cid: 0 for cid in ids[:30]}
    front_b = {cid: 0 for cid in ids[30:]}
    replace_front(storage, study="s1", device="rpi4", ranks=front_a)
    stop = threading.Event()
    seen: list[frozenset[int]] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                page = get_front(storage, study="s1", device="rpi4", limit=MAX_PAGE_SIZE)
                seen.append(frozenset(e.candidate.id for e in page.entries))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(30):
            replace_front(
                storage, study="s1", device="rpi4", ranks=front_b if i % 2 == 0 else front_a
            )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert seen and set(seen) <= {frozenset(front_a), frozenset(front_b)}


def test_front_follows_later_metric_and_accuracy_updates(
    storage: Storage, ranked: dict[str, Any]
) -> None:
    """Filters and order use the current values even when they change after ranking."""
    page = get_front(storage, study="s1", device="rpi4", max_rank=None, limit=MAX_PAGE_SIZE)
    last = page.entries[-1].candidate
    slowest_fast = max(e.metrics.latency_ms for e in page.entries if e.metrics.latency_ms < 10)
    upsert_device_metrics(
        storage, candidate_id=last.id, device="rpi4", latency_ms=0.001, peak_memory_bytes=1
    )
    fast = get_front(storage, study="s1", device="rpi4", max_rank=None, max_latency_ms=slowest_fast)
    assert last.id in {e.candidate.id for e in fast.entries}
    assert next(e for e in fast.entries if e.candidate.id == last.id).metrics.latency_ms == 0.001
    _add(storage, "s1", last.trial_number, accuracy=0.999)
    best = get_front(storage, study="s1", device="rpi4", max_rank=None, sort="accuracy", limit=1)
    rank_of_last = ranked["ranks"]["rpi4"][last.id]
    if rank_of_last == 0:
        assert best.entries[0].candidate.id == last.id
    top = get_front(storage, study="s1", device="rpi4", max_rank=None, min_accuracy=0.99)
    assert [e.candidate.id for e in top.entries] == [last.id]
    assert top.entries[0].candidate.accuracy == 0.999


def test_front_lists_dominated_baselines_for_reference_when_asked(
    storage: Storage, ranked: dict[str, Any]
) -> None:
    """``baselines=True`` adds a dominated baseline after the front, with its rank."""
    ranks = ranked["ranks"]["rpi4"]
    dominated = next(cid for cid, r in sorted(ranks.items()) if r > 0)
    trial = next(c.trial_number for c in list_candidates(storage, study="s1") if c.id == dominated)
    _add(storage, "s1", trial, is_baseline=True, baseline_name="teacher")
    plain = get_front(storage, study="s1", device="rpi4", limit=MAX_PAGE_SIZE)
    assert dominated not in {e.candidate.id for e in plain.entries}
    both = get_front(storage, study="s1", device="rpi4", limit=MAX_PAGE_SIZE, baselines=True)
    assert both.total == plain.total + 1
    assert [e.candidate.id for e in both.entries[:-1]] == [e.candidate.id for e in plain.entries]
    last = both.entries[-1]
    assert last.candidate.id == dominated and last.candidate.baseline_name == "teacher"
    assert last.rank == ranks[dominated] > 0
