"""Alembic: upgrades from empty and from frozen old revisions, models == migrations."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from make_frozen_db import FROZEN, build
from make_frozen_db_0006 import FROZEN_0006, populate
from make_frozen_db_0006 import build as build_0006

from paretoedge.errors import StorageError
from paretoedge.storage import (
    current_revision,
    get_candidate,
    get_front,
    get_measured_latencies,
    get_measured_memory,
    get_study,
    head_revision,
    list_artifacts,
    list_studies,
    open_storage,
    optuna_storage,
    replace_front,
    upgrade_schema,
    upsert_candidate,
    upsert_measured_latency,
    upsert_measured_memory,
)
from paretoedge.storage._engine import create_engine_for
from paretoedge.storage._migrate import script_location
from paretoedge.storage._models import VERSION_TABLE, Base

PE_TABLES = {
    "pe_studies",
    "pe_candidates",
    "pe_device_metrics",
    "pe_front",
    "pe_artifacts",
    "pe_trial_claims",
}


@pytest.fixture
def empty_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database without any table (not even ours)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return str(request.getfixturevalue("pg_url"))


def _tables(engine: Any) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(engine).get_table_names())


def _schema_diff(engine: Any) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        return type_ != "table" or (str(name).startswith("pe_") and name != VERSION_TABLE)

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "version_table": VERSION_TABLE,
                "include_name": include_name,
                "compare_type": True,
                "target_metadata": Base.metadata,
            },
        )
        return list(compare_metadata(context, Base.metadata))


def test_scripts_ship_inside_the_package() -> None:
    location = Path(script_location())
    assert location.parts[-3:] == ("paretoedge", "storage", "migrations")
    names = sorted(p.name for p in (location / "versions").glob("*.py"))
    assert names == [
        "0001_initial.py",
        "0002_front.py",
        "0003_front_sort_keys.py",
        "0004_claims_refront.py",
        "0005_measured_latency.py",
        "0006_artifact_kinds.py",
        "0007_measured_memory.py",
        "0008_latency_worst.py",
        "0009_spec_documents.py",
        "0010_spec_hash_front_seq.py",
        "0011_twin_index_order.py",
    ]
    assert not (location / "alembic.ini").exists()
    assert head_revision() == "0011"


def test_pyproject_package_data_covers_the_scripts() -> None:
    """Migrations ship as data of listed (namespace) packages: every script is covered by its
    folder's package-data globs, and the folders are not importable regular packages."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    location = Path(script_location())
    files = [p for p in location.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) >= 4
    for path in files:
        package = ".".join(path.parent.relative_to(root).parts)
        assert package in setuptools["packages"], package
        globs = setuptools["package-data"].get(package, [])
        assert any(fnmatch.fnmatch(path.name, g) for g in globs), (package, path.name)
    assert not (location / "__init__.py").exists()


def test_upgrade_from_empty_database_matches_models(empty_url: str) -> None:
    engine = create_engine_for(empty_url)
    try:
        assert current_revision(engine) is None
        assert not _tables(engine) & PE_TABLES
        with open_storage(empty_url) as storage:
            assert current_revision(storage.engine) == head_revision()
            assert PE_TABLES <= _tables(storage.engine)
            assert _schema_diff(storage.engine) == []
        # Opening again is a no-op.
        open_storage(empty_url).close()
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_optuna_tables_share_the_database(empty_url: str) -> None:
    import optuna

    rdb = optuna_storage(empty_url)
    try:
        study = optuna.create_study(storage=rdb, study_name="shared", direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
        tables = _tables(rdb.engine)
        assert {"studies", "trials", "alembic_version"} <= tables
        assert PE_TABLES | {VERSION_TABLE} <= tables
    finally:
        rdb.engine.dispose()
    with open_storage(empty_url) as storage:
        assert current_revision(storage.engine) == head_revision()
        assert _schema_diff(storage.engine) == []
    again = optuna_storage(empty_url)
    try:
        assert len(optuna.load_study(study_name="shared", storage=again).trials) == 2
    finally:
        again.engine.dispose()


def test_upgrade_in_steps_keeps_data(empty_url: str) -> None:
    """0001 with rows -> head: the rows survive and the new front table works."""
    from sqlalchemy import text

    engine = create_engine_for(empty_url)
    try:
        upgrade_schema(engine, "0001")
        assert current_revision(engine) == "0001"
        assert "pe_front" not in _tables(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pe_studies (name, optuna_study_name, config, devices, objectives,"
                    " status, seed, created_at, updated_at) VALUES ('old', 'old', '{\"a\": 1}',"
                    " '[\"rpi4\"]', '[]', 'running', 1, :t, :t)"
                ),
                {"t": "2026-01-01 00:00:00+00:00"},
            )
    finally:
        engine.dispose()
    with open_storage(empty_url) as storage:
        study = get_study(storage, name="old")
        assert study.config == {"a": 1} and study.devices == ("rpi4",)
        cand = upsert_candidate(storage, study="old", trial_number=0, state="complete", spec={})
        assert cand.study_id == study.id


def test_upgrade_0002_to_0003_fills_the_front_sort_keys(empty_url: str) -> None:
    from sqlalchemy import text

    engine = create_engine_for(empty_url)
    t = {"t": "2026-01-01 00:00:00+00:00"}
    try:
        upgrade_schema(engine, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pe_studies (name, optuna_study_name, config, devices, objectives,"
                    " status, seed, created_at, updated_at) VALUES ('s', 's', '{}',"
                    " '[\"rpi4\"]', '[]', 'running', 1, :t, :t)"
                ),
                t,
            )
            for trial, (acc, size, lat) in enumerate([(0.9, 100, 5.0), (0.8, 50, 2.0)]):
                conn.execute(
                    text(
                        "INSERT INTO pe_candidates (study_id, trial_number, state, is_baseline,"
                        " spec, accuracy, size_bytes, created_at, updated_at)"
                        " VALUES (1, :n, 'complete', false, '{}', :a, :s, :t, :t)"
                    ),
                    {"n": trial, "a": acc, "s": size, **t},
                )
                conn.execute(
                    text(
                        "INSERT INTO pe_device_metrics (candidate_id, device, latency_ms,"
                        " peak_memory_bytes, feasible, violations)"
                        " VALUES (:c, 'rpi4', :l, 1, true, '[]')"
                    ),
                    {"c": trial + 1, "l": lat},
                )
                conn.execute(
                    text(
                        "INSERT INTO pe_front (study_id, device, candidate_id, rank)"
                        " VALUES (1, 'rpi4', :c, 0)"
                    ),
                    {"c": trial + 1},
                )
    finally:
        engine.dispose()
    with open_storage(empty_url) as storage:
        assert _schema_diff(storage.engine) == []
        page = get_front(storage, study="s", device="rpi4", sort="latency")
        assert [(e.candidate.trial_number, e.metrics.latency_ms) for e in page.entries] == [
            (1, 2.0),
            (0, 5.0),
        ]
        assert get_front(storage, study="s", device="rpi4", min_accuracy=0.85).total == 1
        assert get_front(storage, study="s", device="rpi4", max_size_bytes=60).total == 1


def test_upgrade_0003_to_head_allows_the_deployment_artifact_kinds(empty_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from paretoedge.storage import add_artifact

    engine = create_engine_for(empty_url)
    t = {"t": "2026-01-01 00:00:00+00:00"}
    insert = text(
        "INSERT INTO pe_artifacts (candidate_id, kind, path, sha256, bytes, created_at)"
        " VALUES (1, :k, :p, :h, 1, :t)"
    )
    try:
        upgrade_schema(engine, "0003")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pe_studies (name, optuna_study_name, config, devices, objectives,"
                    " status, seed, created_at, updated_at) VALUES ('s', 's', '{}',"
                    " '[\"rpi4\"]', '[]', 'running', 1, :t, :t)"
                ),
                t,
            )
            conn.execute(
                text(
                    "INSERT INTO pe_candidates (study_id, trial_number, state, is_baseline,"
                    " spec, created_at, updated_at) VALUES (1, 0, 'complete', false, '{}', :t, :t)"
                ),
                t,
            )
            conn.execute(insert, {"k": "onnx", "p": "/m.onnx", "h": "a" * 64, **t})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"k": "executorch", "p": "/m.pte", "h": "b" * 64, **t})
    finally:
        engine.dispose()
    with open_storage(empty_url) as storage:
        assert _schema_diff(storage.engine) == []
        add_artifact(storage, candidate_id=1, kind="executorch", path="/m.pte",
                     sha256="b" * 64, bytes=2)  # fmt: skip
        kinds = sorted(a.kind for a in list_artifacts(storage, candidate_id=1))
        assert kinds == ["executorch", "onnx"]
        with pytest.raises(IntegrityError), storage.engine.begin() as conn:
            conn.execute(insert, {"k": "zip", "p": "/m.zip", "h": "c" * 64, **t})


def test_frozen_revision_0001_file_upgrades_to_head(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    shutil.copyfile(FROZEN, path)
    url = f"sqlite:///{path}"
    engine = create_engine_for(url)
    try:
        assert current_revision(engine) == "0001"
        assert "pe_front" not in _tables(engine)
        assert _schema_diff(engine), "the comparison must see the missing revision-2 objects"
    finally:
        engine.dispose()
    with open_storage(url) as storage:
        assert current_revision(storage.engine) == head_revision()
        assert _schema_diff(storage.engine) == []
        (summary,) = list_studies(storage)
        assert summary.study.name == "frozen" and summary.study.status == "finished"
        assert summary.study.devices == ("rpi4", "stm32h7")
        assert (summary.trials_complete, summary.trials_failed) == (3, 1)
        int8 = get_candidate(storage, study="frozen", trial_number=1)
        assert int8.baseline_name == "int8" and int8.accuracy == 0.85
        assert int8.size_bytes == 4_400_000
        stm = int8.metrics_for("stm32h7")
        assert stm is not None and stm.violations == ("flash_bytes <= 2097152",)
        assert not stm.feasible
        pruned = get_candidate(storage, study="frozen", trial_number=2)
        (artifact,) = list_artifacts(storage, candidate_id=pruned.id)
        assert artifact.path == "trial-2/model.onnx" and artifact.bytes == 123456
        # The upgraded database takes the new front table.
        ids = {c: get_candidate(storage, study="frozen", trial_number=c).id for c in (0, 1, 2)}
        replace_front(
            storage, study="frozen", device="rpi4", ranks={ids[0]: 0, ids[1]: 0, ids[2]: 0}
        )
        front = get_front(storage, study="frozen", device="rpi4", sort="accuracy")
        assert [e.candidate.trial_number for e in front.entries] == [0, 1, 2]
        # ... and the measured-latency table of revision 0005, empty after the upgrade.
        assert (
            get_measured_latencies(storage, candidate_ids=list(ids.values()), device="rpi4") == {}
        )
        upsert_measured_latency(
            storage,
            candidate_id=ids[1],
            device="rpi4",
            runtime="onnxruntime",
            artifact="onnx-int8",
            threads=4,
            repeats=20,
            median_ms=25.0,
            min_ms=24.0,
            spread=0.04,
            predicted_ms=19.5,
        )
        got = get_measured_latencies(storage, candidate_ids=list(ids.values()), device="rpi4")
        assert list(got) == [ids[1]] and got[ids[1]].error_pct == pytest.approx(-22.0)
        # the prediction is untouched
        assert (
            get_candidate(storage, study="frozen", trial_number=1).metrics_for("rpi4").latency_ms
            == 19.5
        )  # type: ignore[union-attr]
        # ... and the measured-memory table of revision 0007, empty after the upgrade.
        assert (
            get_measured_memory(storage, candidate_ids=list(ids.values()), device="stm32h7") == {}
        )
        upsert_measured_memory(
            storage,
            candidate_id=ids[1],
            device="stm32h7",
            runtime="tflite-micro",
            flash_bytes=1_000_000,
            sram_bytes=100_000,
            predicted_flash_bytes=1_010_000,
            predicted_sram_bytes=95_000,
            pointer_bytes=8,
        )
        mem = get_measured_memory(storage, candidate_ids=list(ids.values()), device="stm32h7")
        assert list(mem) == [ids[1]]
        assert mem[ids[1]].flash_error_pct == pytest.approx(1.0)
        assert mem[ids[1]].sram_error_pct == pytest.approx(-5.0)
        stm = get_candidate(storage, study="frozen", trial_number=1).metrics_for("stm32h7")
        assert stm is not None and stm.violations == ("flash_bytes <= 2097152",)


def test_upgrade_0003_to_head_keeps_rows_and_adds_measured_latency(empty_url: str) -> None:
    engine = create_engine_for(empty_url)
    try:
        upgrade_schema(engine, "0003")
        assert "pe_measured_latency" not in _tables(engine)
    finally:
        engine.dispose()
    with open_storage(empty_url) as storage:
        assert current_revision(storage.engine) == head_revision()
        assert "pe_measured_latency" in _tables(storage.engine)
        assert _schema_diff(storage.engine) == []


def test_upgrade_0007_to_head_adds_the_worst_case_latency_and_downgrades(
    empty_url: str,
) -> None:
    """0008 adds the nullable ``latency_worst_ms``: old metrics rows read back as None, new
    ones store it; a downgrade to 0007 drops the column and keeps the rows."""
    from alembic import command
    from sqlalchemy import inspect, text

    from paretoedge.storage import upsert_device_metrics
    from paretoedge.storage._migrate import alembic_config

    t = {"t": "2026-01-01 00:00:00+00:00"}
    engine = create_engine_for(empty_url)
    try:
        upgrade_schema(engine, "0007")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO pe_studies (name, optuna_study_name, config, devices, objectives,"
                    " status, seed, created_at, updated_at) VALUES ('s', 's', '{}',"
                    " '[\"rpi4\"]', '[]', 'running', 1, :t, :t)"
                ),
                t,
            )
            for n in (0, 1):
                conn.execute(
                    text(
                        "INSERT INTO pe_candidates (study_id, trial_number, state, is_baseline,"
                        " spec, created_at, updated_at)"
                        " VALUES (1, :n, 'complete', false, '{}', :t, :t)"
                    ),
                    {"n": n, **t},
                )
            conn.execute(
                text(
                    "INSERT INTO pe_device_metrics (candidate_id, device, latency_ms,"
                    " peak_memory_bytes, feasible, violations)"
                    " VALUES (1, 'rpi4', 2.5, 10, true, '[]')"
                )
            )
    finally:
        engine.dispose()
    with open_storage(empty_url) as storage:
        assert current_revision(storage.engine) == head_revision()
        assert _schema_diff(storage.engine) == []
        old = get_candidate(storage, study="s", trial_number=0).metrics_for("rpi4")
        assert old is not None and old.latency_ms == 2.5 and old.latency_worst_ms is None
        upsert_device_metrics(
            storage,
            candidate_id=2,
            device="rpi4",
            latency_ms=1.5,
            latency_worst_ms=3.0,
            peak_memory_bytes=10,
        )
        new = get_candidate(storage, study="s", trial_number=1).metrics_for("rpi4")
        assert new is not None and new.latency_worst_ms == 3.0
    engine = create_engine_for(empty_url)
    try:
        with engine.connect() as conn, conn.begin():
            command.downgrade(alembic_config(conn), "0007")
        assert current_revision(engine) == "0007"
        columns = {c["name"] for c in inspect(engine).get_columns("pe_device_metrics")}
        assert "latency_worst_ms" not in columns and "latency_ms" in columns
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM pe_device_metrics")).scalar_one()
        assert count == 2
    finally:
        engine.dispose()


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_frozen_file_matches_its_script(tmp_path: Path) -> None:
    assert FROZEN.stat().st_size < 64 * 1024
    assert _dump(build(tmp_path / "rebuilt.sqlite")) == _dump(FROZEN)


def test_database_from_a_newer_paretoedge_is_refused(db_url: str) -> None:
    from sqlalchemy import text

    open_storage(db_url).close()
    engine = create_engine_for(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dcafe'"))
        with pytest.raises(StorageError, match="f00dcafe.*newer paretoedge"):
            open_storage(db_url)
    finally:
        with engine.begin() as conn:
            conn.execute(
                text(f"UPDATE {VERSION_TABLE} SET version_num = :v"), {"v": head_revision()}
            )
        engine.dispose()


def _ranks(storage: Any, study: str, device: str) -> dict[int, int]:
    page = get_front(storage, study=study, device=device, max_rank=None, limit=1000)
    return {e.candidate.trial_number: e.rank for e in page.entries}


def _recomputed(storage: Any, study: str, device: str) -> dict[int, int]:
    """The ranking computed afresh from the stored rows, as resume would store it."""
    from paretoedge.search import rank_by
    from paretoedge.search._refront import front_spec
    from paretoedge.storage import list_candidates

    record = get_study(storage, name=study)
    row = {
        "name": record.name,
        "config": dict(record.config),
        "objectives": [o.to_dict() for o in record.objectives],
    }
    objs, cons = front_spec(row)(device)
    return rank_by(objs, cons, device, list_candidates(storage, study=study, states=["complete"]))


def test_frozen_0001_fronts_equal_a_recomputation_after_upgrade(tmp_path: Path) -> None:
    """Upgrading 0001 -> head leaves the fronts a user had (pe_front appeared in 0002 empty;
    0004 ranks what earlier upgrades left unranked)."""
    path = tmp_path / "old.sqlite"
    shutil.copyfile(FROZEN, path)
    with open_storage(f"sqlite:///{path}") as storage:
        rpi4 = _ranks(storage, "frozen", "rpi4")
        stm = _ranks(storage, "frozen", "stm32h7")
        # accuracy vs rpi4 latency: every complete candidate trades one for the other
        assert rpi4 == {0: 0, 1: 0, 2: 0}
        # stm32h7 ranks on accuracy; the teacher and int8 do not fit its flash
        assert stm == {2: 0, 0: 1, 1: 1}
        assert rpi4 == _recomputed(storage, "frozen", "rpi4")
        assert stm == _recomputed(storage, "frozen", "stm32h7")
        assert get_front(storage, study="frozen", device="rpi4").total == 3


def test_upgrade_to_0004_ranks_a_study_left_without_fronts(empty_url: str) -> None:
    """A database an earlier version upgraded to 0003 without ranking (empty pe_front) gets
    its fronts from 0004, computed from the stored study config; ranked fronts are kept."""
    import json
    import sys

    from sqlalchemy import text

    sys.path.insert(0, str(Path(__file__).parents[1] / "search"))
    from _synthetic import synthetic_config, synthetic_evaluation

    config = synthetic_config()
    engine = create_engine_for(empty_url)
    t = {"t": "2026-01-01 00:00:00+00:00"}
    specs = [
        {"quant.bits": 32},
        {"quant.bits": 8},
        {"quant.bits": 4, "prune.sparsity": 0.4},
        {"quant.bits": 8, "ffn.keep": 0.5},
        {"prune.sparsity": 0.6, "quant.bits": 32},
    ]
    try:
        upgrade_schema(engine, "0003")
        with engine.begin() as conn:
            for sid, name in ((1, "empty"), (2, "ranked")):
                conn.execute(
                    text(
                        "INSERT INTO pe_studies (id, name, optuna_study_name, config, devices,"
                        " objectives, status, seed, created_at, updated_at) VALUES (:i, :n, :n,"
                        " :c, :d, :o, 'finished', 3, :t, :t)"
                    ),
                    {
                        "i": sid,
                        "n": name,
                        "c": json.dumps(config.to_dict()),
                        "d": json.dumps(list(config.devices)),
                        "o": json.dumps(
                            [
                                {"name": o.name, "device": o.device, "direction": o.direction}
                                for o in config.objectives
                            ]
                        ),
                        **t,
                    },
                )
            cid = 0
            for sid in (1, 2):
                for n, spec in enumerate(specs):
                    cid += 1
                    ev = synthetic_evaluation(spec, config.devices)
                    conn.execute(
                        text(
                            "INSERT INTO pe_candidates (id, study_id, trial_number, state,"
                            " is_baseline, spec, accuracy, size_bytes, parameters, sparsity,"
                            " created_at, updated_at) VALUES (:id, :s, :n, 'complete', false,"
                            " :spec, :a, :b, 1000, :sp, :t, :t)"
                        ),
                        {
                            "id": cid,
                            "s": sid,
                            "n": n,
                            "spec": json.dumps(spec),
                            "a": ev.accuracy,
                            "b": ev.size_bytes,
                            "sp": ev.sparsity,
                            **t,
                        },
                    )
                    for dev, m in ev.devices.items():
                        conn.execute(
                            text(
                                "INSERT INTO pe_device_metrics (candidate_id, device, latency_ms,"
                                " peak_memory_bytes, energy_mj, feasible, violations)"
                                " VALUES (:c, :d, :l, :p, :e, true, '[]')"
                            ),
                            {
                                "c": cid,
                                "d": dev,
                                "l": m.latency_ms,
                                "p": m.peak_memory_bytes,
                                "e": m.energy_mj,
                            },
                        )
            # "ranked" already has a (deliberately odd) ranking on dev-a: it must stay.
            conn.execute(
                text(
                    "INSERT INTO pe_front (study_id, device, candidate_id, rank, latency_ms)"
                    " VALUES (2, 'dev-a', 6, 0, 1.0)"
                )
            )
    finally:
        engine.dispose()
    with open_storage(empty_url) as storage:
        assert current_revision(storage.engine) == head_revision()
        for device in config.devices:
            ranks = _ranks(storage, "empty", device)
            assert len(ranks) == len(specs) and 0 in ranks.values()
            assert ranks == _recomputed(storage, "empty", device)
        assert _ranks(storage, "ranked", "dev-a") == {0: 0}
        assert _ranks(storage, "ranked", "dev-b") == _recomputed(storage, "ranked", "dev-b")


def _expected_0006_specs() -> dict[int, Any]:
    """The specs of ``rev0006.sqlite``, written out as typed values (not via from_flat)."""
    from paretoedge.compression import (
        AttentionConfig,
        CompressionSpec,
        DistillConfig,
        ExitConfig,
        FFNConfig,
        HeadsConfig,
        LowRankConfig,
        PruneConfig,
        QuantConfig,
        RecoveryConfig,
        TensorConfig,
    )
    from paretoedge.compression._hash import HashConfig
    from paretoedge.compression._hidden import HiddenConfig
    from paretoedge.compression._share import ShareConfig

    return {
        0: CompressionSpec(),
        1: CompressionSpec(quant=QuantConfig(bits=8)),
        2: CompressionSpec(
            prune=PruneConfig(sparsity=0.5),
            quant=QuantConfig(bits=4, layer_bits=(("ffn", 8), ("layer.0", 2))),
            recovery=RecoveryConfig(steps=20, lr=5e-5, batch_size=16),
        ),
        3: CompressionSpec(
            distill=DistillConfig(layers=(0, 2)),
            heads=HeadsConfig(keep=0.75),
            ffn=FFNConfig(keep=0.5),
            lowrank=LowRankConfig(energy=0.9, targets=("ffn", "embeddings")),
        ),
        4: CompressionSpec(
            hidden=HiddenConfig(keep=0.5),
            share=ShareConfig(groups=2),
            tensor=TensorConfig(rank=8),
            hash=HashConfig(ratio=0.25),
            attention=AttentionConfig(kind="local"),
            quant=QuantConfig(bits=16, act_bits=None),
            exit=ExitConfig(layers=(1, 2)),
        ),
        5: CompressionSpec(prune=PruneConfig(sparsity=0.3)),
        6: CompressionSpec(prune=PruneConfig(sparsity=0.6, scope="layer")),
        7: CompressionSpec(quant=QuantConfig(bits=32, scheme="cluster")),
    }


def _raw_specs(engine: Any) -> dict[int, Any]:
    import json

    from sqlalchemy import text

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT trial_number, spec FROM pe_candidates")).all()
    return {n: json.loads(s) if isinstance(s, str) else s for n, s in rows}


def test_frozen_revision_0006_file_upgrades_to_head_with_equal_candidates(tmp_path: Path) -> None:
    """A database written at 0006 (flat specs) reads back, after 0009, the same candidates:
    each spec is the typed spec the flat keys meant, every other column untouched."""
    from make_frozen_db_0006 import CANDIDATES, LATENCY, RANKS

    from paretoedge.compression import CompressionSpec
    from paretoedge.storage import list_candidates

    path = tmp_path / "old6.sqlite"
    shutil.copyfile(FROZEN_0006, path)
    url = f"sqlite:///{path}"
    engine = create_engine_for(url)
    try:
        assert current_revision(engine) == "0006"
        flat_before = _raw_specs(engine)
    finally:
        engine.dispose()
    assert flat_before == {n: spec for n, _, _, spec, _, _ in CANDIDATES}
    expected = _expected_0006_specs()
    with open_storage(url) as storage:
        assert current_revision(storage.engine) == head_revision()
        assert _schema_diff(storage.engine) == []
        stored = _raw_specs(storage.engine)
        assert {(d["_type"], d["_version"]) for d in stored.values()} == {("CompressionSpec", 2)}
        cands = list_candidates(storage, study="frozen6")
        assert [c.trial_number for c in cands] == [n for n, *_ in CANDIDATES]
        for c, (n, state, baseline, flat, accuracy, size) in zip(cands, CANDIDATES, strict=True):
            assert c.spec == expected[n], n
            # the flat view is what 0006 stored, completed with defaults where it was
            # stored partial (trials 5 and 7)
            assert c.flat == CompressionSpec.from_flat(flat).to_flat()
            if n not in (5, 7):
                assert c.flat == flat
            assert (c.state, c.baseline_name) == (state, baseline)
            assert c.is_baseline == (baseline is not None)
            assert (c.accuracy, c.size_bytes) == (accuracy, size)
            assert c.test_accuracy == (None if accuracy is None else accuracy - 0.01)
            assert c.parameters == (None if size is None else size // 4)
            m = c.metrics_for("rpi4")
            assert (m.latency_ms if m else None) == LATENCY.get(n)
            assert get_candidate(storage, study="frozen6", trial_number=n) == c
        page = get_front(storage, study="frozen6", device="rpi4", max_rank=None)
        assert {e.candidate.trial_number: e.rank for e in page.entries} == RANKS
        assert {e.candidate.trial_number: e.candidate.spec for e in page.entries} == {
            n: expected[n] for n in RANKS
        }
        (artifact,) = list_artifacts(storage, candidate_id=cands[2].id)
        assert artifact.path == "trial-00002.onnx"
        # the upgraded database takes new candidates as documents
        upsert_candidate(
            storage, study="frozen6", trial_number=8, state="running", spec=expected[2]
        )
        assert get_candidate(storage, study="frozen6", trial_number=8).spec == expected[2]


def _canonical(dump: list[str]) -> list[str]:
    """A dump with the clauses of each CREATE TABLE sorted: Alembic's batch mode (0006
    re-creates pe_artifacts) writes the table's constraints in an order that varies
    between processes; the rows and the constraints themselves do not."""
    out = []
    for statement in dump:
        if statement.startswith("CREATE TABLE"):
            head, _, body = statement.partition("(")
            body = body.strip().removesuffix(");").strip()
            statement = head + "(" + "|".join(sorted(c.strip() for c in body.split(", \n")))
        out.append(statement)
    return out


def test_frozen_0006_file_matches_its_script(tmp_path: Path) -> None:
    assert FROZEN_0006.stat().st_size < 64 * 1024
    rebuilt = _dump(build_0006(tmp_path / "rebuilt6.sqlite"))
    assert _canonical(rebuilt) == _canonical(_dump(FROZEN_0006))


def test_0009_converts_flat_specs_and_back(empty_url: str) -> None:
    """Upgrade 0006 -> 0009 -> downgrade -> upgrade on both backends: documents up, the
    search's flat form down, and a flat spec the configs refuse kept whole both ways."""
    from alembic import command
    from sqlalchemy import text

    from paretoedge.compression import CompressionSpec
    from paretoedge.storage._migrate import alembic_config

    junk = {"quant.bits": 3, "prune.sparsity": "lots"}
    engine = create_engine_for(empty_url)
    try:
        upgrade_schema(engine, "0006")
        with engine.begin() as conn:
            populate(conn)
            conn.execute(
                text(
                    "INSERT INTO pe_candidates (id, study_id, trial_number, state, is_baseline,"
                    " spec, created_at, updated_at) VALUES (100, 1, 100, 'failed', false, :s,"
                    " :t, :t)"
                ),
                {"s": json.dumps(junk), "t": "2026-01-01 00:00:00+00:00"},
            )
        before = _raw_specs(engine)
        upgrade_schema(engine)
        up = _raw_specs(engine)
        expected = _expected_0006_specs()
        for n, spec in expected.items():
            assert CompressionSpec.from_dict(up[n]) == spec
            assert up[n] == spec.to_dict()
        assert up[100] == {"_type": "CompressionSpec", "_version": 1, "_data": junk}
        with open_storage(empty_url) as storage:
            with pytest.raises(StorageError, match="trial 100 does not load: invalid prune"):
                get_candidate(storage, study="frozen6", trial_number=100)
            assert get_candidate(storage, study="frozen6", trial_number=2).spec == expected[2]
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert current_revision(engine) == "0006"
        down = _raw_specs(engine)
        assert down[100] == junk
        for n, flat in before.items():
            if n != 100:
                assert down[n] == CompressionSpec.from_flat(flat).to_flat()
        upgrade_schema(engine)
        assert _raw_specs(engine) == up
    finally:
        engine.dispose()


def test_0010_backfills_spec_digests_and_downgrades(empty_url: str) -> None:
    """0009 -> 0010 on both backends: every stored spec gets its digest (a spec that does
    not load gets none), rows and fronts survive, and the downgrade drops only the new
    columns."""
    from alembic import command
    from sqlalchemy import inspect, text

    from paretoedge.storage._migrate import alembic_config

    junk = {"quant.bits": 3, "prune.sparsity": "lots"}
    engine = create_engine_for(empty_url)
    try:
        upgrade_schema(engine, "0006")
        with engine.begin() as conn:
            populate(conn)
            conn.execute(
                text(
                    "INSERT INTO pe_candidates (id, study_id, trial_number, state, is_baseline,"
                    " spec, created_at, updated_at) VALUES (100, 1, 100, 'failed', false, :s,"
                    " :t, :t)"
                ),
                {"s": json.dumps(junk), "t": "2026-01-01 00:00:00+00:00"},
            )
        upgrade_schema(engine, "0009")
        with engine.connect() as conn:
            counts = {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("pe_candidates", "pe_device_metrics", "pe_front", "pe_artifacts")
            }
        upgrade_schema(engine)
        expected = _expected_0006_specs()
        with engine.connect() as conn:
            hashes = {
                n: h
                for n, h in conn.execute(text("SELECT trial_number, spec_hash FROM pe_candidates"))
            }
            versions = [
                tuple(r)
                for r in conn.execute(text("SELECT front_version, front_reset FROM pe_studies"))
            ]
            seqs = set(conn.execute(text("SELECT seq FROM pe_front")).scalars())
        assert {n: hashes[n] for n in expected} == {n: s.digest() for n, s in expected.items()}
        assert hashes[100] is None
        assert versions == [(0, 0)] and seqs == {0}
        with open_storage(empty_url) as storage:
            assert _schema_diff(storage.engine) == []
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0009")
        assert current_revision(engine) == "0009"
        columns = {c["name"] for c in inspect(engine).get_columns("pe_candidates")}
        assert "spec_hash" not in columns and "spec" in columns
        assert "front_version" not in {c["name"] for c in inspect(engine).get_columns("pe_studies")}
        with engine.connect() as conn:
            after = {
                t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in counts
            }
        assert after == counts
        upgrade_schema(engine)
        with engine.connect() as conn:
            again = {
                n: h
                for n, h in conn.execute(text("SELECT trial_number, spec_hash FROM pe_candidates"))
            }
        assert again == hashes
    finally:
        engine.dispose()
