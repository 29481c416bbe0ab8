"""Per-trial storage paths that must not grow with the study: the twin lookup by spec
digest, and fronts extended on top of a known version (on SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _storage_helpers import study_kwargs

from paretoedge.compression import CompressionSpec
from paretoedge.errors import StorageError
from paretoedge.storage import (
    candidates_with_spec,
    create_study,
    extend_fronts,
    get_front,
    read_front_changes,
    replace_front,
    stale_fronts,
    upsert_candidate,
    upsert_device_metrics,
)


def _candidate(storage: Any, n: int, spec: Any, *, state: str = "complete", **kw: Any) -> int:
    rec = upsert_candidate(
        storage, study="s1", trial_number=n, state=state, spec=spec, accuracy=0.5 + n / 100, **kw
    )
    upsert_device_metrics(
        storage, candidate_id=rec.id, device="rpi4", latency_ms=10.0 - n, peak_memory_bytes=1
    )
    return rec.id


def test_spec_digest_is_stored_and_finds_equal_specs_only(storage: Any) -> None:
    from sqlalchemy import text

    create_study(storage, **study_kwargs())
    spec = CompressionSpec.from_flat({"quant.bits": 8, "prune.sparsity": 0.5})
    # the same spec written as flat keys in another order, with an integral float
    same = {"prune.sparsity": 0.5, "quant.bits": 8.0}
    other = CompressionSpec.from_flat({"quant.bits": 4})
    _candidate(storage, 0, spec)
    _candidate(storage, 1, other)
    _candidate(storage, 2, same, state="pruned")
    _candidate(storage, 3, spec, is_baseline=True, baseline_name="teacher")
    _candidate(storage, 4, same)
    with storage.engine.connect() as conn:
        rows = conn.execute(text("SELECT trial_number, spec_hash FROM pe_candidates"))
        stored = {n: h for n, h in rows}
    assert stored[0] == stored[2] == stored[3] == stored[4] == spec.digest()
    assert stored[1] == other.digest() != spec.digest()

    def numbers(**kw: Any) -> list[int]:
        return [c.trial_number for c in candidates_with_spec(storage, study="s1", **kw)]

    assert numbers(spec=spec) == [0, 2, 3, 4]
    assert numbers(spec=spec, states=["complete"], baselines=False) == [0, 4]
    assert numbers(spec=other, states=["pruned"]) == []
    assert numbers(spec=spec, devices=["rpi4"], limit=1) == [0]
    assert numbers(spec=spec, devices=["rpi4", "jetson"]) == []  # none measured on jetson
    (found, *_) = candidates_with_spec(storage, study="s1", spec=spec)
    assert found.spec == spec and found.metrics_for("rpi4") is not None


def test_twin_lookup_uses_the_index(tmp_path: Path) -> None:
    """The twin lookup's own statement (earliest complete trial of a spec measured on the
    devices) probes the spec-hash index, not the study's rows in trial order (SQLite's
    plan; PostgreSQL's planner scans tables this small whatever the index). With an index
    on ``(study_id, spec_hash)`` alone, SQLite served the ``ORDER BY trial_number LIMIT 1``
    from the ``(study_id, trial_number)`` index and walked the study from its first trial."""
    from sqlalchemy import event

    from paretoedge.storage import open_storage

    spec = CompressionSpec.from_flat({"quant.bits": 8})
    with open_storage(f"sqlite:///{tmp_path / 'plan.db'}") as storage:
        create_study(storage, **study_kwargs())
        _candidate(storage, 0, spec)
        seen: list[tuple[str, Any]] = []

        def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            if "spec_hash" in statement:
                seen.append((statement, params))

        event.listen(storage.engine, "before_cursor_execute", capture)
        try:
            found = candidates_with_spec(
                storage,
                study="s1",
                spec=spec,
                states=["complete"],
                baselines=False,
                devices=["rpi4"],
                limit=1,
            )
        finally:
            event.remove(storage.engine, "before_cursor_execute", capture)
        assert [c.trial_number for c in found] == [0]
        (statement, params), *_ = seen
        with storage.engine.connect() as conn:
            cursor = conn.connection.driver_connection.execute(
                f"EXPLAIN QUERY PLAN {statement}", params
            )
            plan = " ".join(str(r[-1]) for r in cursor.fetchall())
    assert "ix_pe_candidates_study_id_spec_hash_trial_number" in plan, plan
    assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan


def test_extend_fronts_applies_on_the_version_it_was_ranked_on(storage: Any) -> None:
    create_study(storage, **study_kwargs())
    a, b, c = (_candidate(storage, n, {"quant.bits": [32, 8, 4][n]}) for n in range(3))
    start = read_front_changes(storage, study="s1", devices=["rpi4"], since=None)
    assert (start.version, start.reload, start.rows) == (0, True, {"rpi4": ()})

    v1 = extend_fronts(storage, study="s1", version=0, added={"rpi4": {a: 0}}, reranked={})
    assert v1 == 1
    # a second writer that ranked on version 0 too is refused, and nothing is written
    lost = extend_fronts(storage, study="s1", version=0, added={"rpi4": {b: 0}}, reranked={})
    assert lost is None
    news = read_front_changes(storage, study="s1", devices=["rpi4"], since=0)
    assert (news.version, news.reload) == (1, False)
    assert [(e.candidate.id, e.rank) for e in news.rows["rpi4"]] == [(a, 0)]
    assert news.rows["rpi4"][0].metrics.latency_ms == 10.0
    # at the current version, nothing to read
    assert read_front_changes(storage, study="s1", devices=["rpi4"], since=1).rows["rpi4"] == ()

    v2 = extend_fronts(
        storage, study="s1", version=1, added={"rpi4": {b: 0, c: 0}}, reranked={"rpi4": {a: 1}}
    )
    assert v2 == 2
    page = get_front(storage, study="s1", device="rpi4", max_rank=None)
    assert {e.candidate.id: e.rank for e in page.entries} == {a: 1, b: 0, c: 0}
    news = read_front_changes(storage, study="s1", devices=["rpi4"], since=1)
    assert sorted(e.candidate.id for e in news.rows["rpi4"]) == [b, c]

    # a whole replacement makes every reader reload
    replace_front(storage, study="s1", device="rpi4", ranks={a: 0, b: 0, c: 0})
    again = read_front_changes(storage, study="s1", devices=["rpi4"], since=2)
    assert (again.version, again.reload) == (3, True)
    assert sorted(e.candidate.id for e in again.rows["rpi4"]) == [a, b, c]


def test_extend_fronts_refuses_a_candidate_without_metrics(storage: Any) -> None:
    create_study(storage, **study_kwargs())
    rec = upsert_candidate(storage, study="s1", trial_number=0, state="complete", spec={})
    with pytest.raises(StorageError, match="cannot rank candidates"):
        extend_fronts(storage, study="s1", version=0, added={"rpi4": {rec.id: 0}}, reranked={})
    assert read_front_changes(storage, study="s1", devices=["rpi4"], since=None).version == 0


def test_stale_fronts_finds_unranked_and_no_longer_complete_candidates(storage: Any) -> None:
    create_study(storage, **study_kwargs())
    a = _candidate(storage, 0, {"quant.bits": 8})
    assert stale_fronts(storage, study="s1", devices=["rpi4", "jetson"]) == ("rpi4",)
    replace_front(storage, study="s1", device="rpi4", ranks={a: 0})
    assert stale_fronts(storage, study="s1", devices=["rpi4", "jetson"]) == ()
    _candidate(storage, 1, {"quant.bits": 4}, state="pruned")  # never ranked: fine
    assert stale_fronts(storage, study="s1", devices=["rpi4"]) == ()
    upsert_candidate(storage, study="s1", trial_number=0, state="failed", spec={"quant.bits": 8})
    assert stale_fronts(storage, study="s1", devices=["rpi4"]) == ("rpi4",)
