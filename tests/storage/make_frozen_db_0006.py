"""Build ``data/rev0006.sqlite``: a small database at schema revision 0006, with data.

Revision 0006 is the last schema whose candidates store their compression spec as flat
dotted keys (0009 stores the versioned document). The rows are what paretoedge's search
wrote at 0006: the specs below are ``CompressionSpec.from_flat(...).to_flat()`` outputs as
``normalize_flat`` stored them (every field of every set transform), plus one partial spec
as a direct ``upsert_candidate`` call stored it. The upgrade test copies the committed file
and opens it with the current code, which must migrate it to head and read every
candidate back equal. Never edit the committed file; rebuild it only with this script
(``python tests/storage/make_frozen_db_0006.py``), whose content is fixed (timestamps
included) so ``test_frozen_0006_file_matches_its_script`` can check it.

:func:`populate` also fills any database already at 0006 (the PostgreSQL variant of the
test).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

FROZEN_0006 = Path(__file__).with_name("data") / "rev0006.sqlite"
REVISION = "0006"
STAMP = "2026-11-24 12:00:00.000000+00:00"

CONFIG = {
    "name": "frozen6",
    "model": "tiny-bert",
    "task": "sentiment",
    "seed": 7,
    "space": {"quant.bits": [4, 8, 16, 32], "prune.sparsity": {"low": 0.0, "high": 0.6}},
    "objectives": ["accuracy", "latency_ms"],
    "devices": ["rpi4"],
    "budget": {"trials": 8},
}

#: trial -> (state, baseline name, flat spec as stored at 0006, accuracy, size, latency)
CANDIDATES: list[tuple[int, str, str | None, dict[str, Any], float | None, int | None]] = [
    (0, "complete", "teacher", {}, 0.86, 17_000_000),
    (
        1,
        "complete",
        "int8",
        {"quant.bits": 8, "quant.scheme": "uniform", "quant.act_bits": 8, "quant.qat": False},
        0.85,
        4_400_000,
    ),
    (
        2,
        "complete",
        None,
        {
            "prune.sparsity": 0.5,
            "prune.scope": "global",
            "quant.bits": 4,
            "quant.scheme": "uniform",
            "quant.layer_bits.ffn": 8,
            "quant.layer_bits.layer.0": 2,
            "quant.act_bits": 8,
            "quant.qat": False,
            "recovery.steps": 20,
            "recovery.lr": 5e-05,
            "recovery.batch_size": 16,
        },
        0.79,
        1_300_000,
    ),
    (
        3,
        "complete",
        None,
        {
            "distill.layers": [0, 2],
            "distill.steps": 300,
            "distill.temperature": 2.0,
            "distill.soft_weight": 1.0,
            "distill.hard_weight": 0.5,
            "distill.hidden_weight": 1.0,
            "distill.attention_weight": 1.0,
            "distill.lr": 0.0001,
            "distill.batch_size": 32,
            "heads.keep": 0.75,
            "heads.criterion": "magnitude",
            "ffn.keep": 0.5,
            "lowrank.rank": None,
            "lowrank.energy": 0.9,
            "lowrank.targets": ["ffn", "embeddings"],
        },
        0.81,
        5_000_000,
    ),
    (
        4,
        "pruned",
        None,
        {
            "hidden.keep": 0.5,
            "share.groups": 2,
            "share.init": "mean",
            "tensor.method": "tt",
            "tensor.rank": 8,
            "tensor.targets": ["embeddings", "attention"],
            "hash.ratio": 0.25,
            "hash.targets": ["attention", "ffn"],
            "attention.kind": "local",
            "attention.window": 16,
            "attention.layers": [],
            "quant.bits": 16,
            "quant.scheme": "uniform",
            "quant.act_bits": None,
            "quant.qat": False,
            "exit.layers": [1, 2],
            "exit.threshold": 0.9,
            "exit.steps": 200,
            "exit.lr": 0.001,
            "exit.batch_size": 16,
        },
        None,
        2_000_000,
    ),
    (5, "complete", None, {"prune.sparsity": 0.3}, 0.83, 9_000_000),
    (6, "failed", None, {"prune.sparsity": 0.6, "prune.scope": "layer"}, None, None),
    (7, "running", None, {"quant.bits": 32, "quant.scheme": "cluster"}, None, None),
]
#: trial -> rpi4 latency (complete and pruned candidates have metrics)
LATENCY = {0: 41.0, 1: 19.5, 2: 11.25, 3: 14.0, 4: 30.0, 5: 25.0}
#: trial -> rank on rpi4 (complete candidates)
RANKS = {0: 0, 1: 0, 2: 0, 3: 0, 5: 1}


def populate(conn: Any) -> None:
    """Insert the study and its rows through a SQLAlchemy connection at revision 0006."""
    from sqlalchemy import text

    conn.execute(
        text(
            "INSERT INTO pe_studies (id, name, optuna_study_name, config, devices, objectives,"
            " status, seed, created_at, updated_at) VALUES (1, 'frozen6', 'frozen6', :c, :d,"
            " :o, 'finished', 7, :t, :t)"
        ),
        {
            "c": json.dumps(CONFIG),
            "d": json.dumps(["rpi4"]),
            "o": json.dumps(
                [
                    {"name": "accuracy", "device": None, "direction": "maximize"},
                    {"name": "latency_ms", "device": "rpi4", "direction": "minimize"},
                ]
            ),
            "t": STAMP,
        },
    )
    for trial, state, baseline, spec, accuracy, size in CANDIDATES:
        cid = trial + 1
        conn.execute(
            text(
                "INSERT INTO pe_candidates (id, study_id, trial_number, state, is_baseline,"
                " baseline_name, spec, accuracy, test_accuracy, size_bytes, parameters,"
                " sparsity, fidelity, wall_s, created_at, updated_at) VALUES (:id, 1, :n, :s,"
                " :b, :bn, :spec, :a, :ta, :size, :p, :sp, :f, :w, :t, :t)"
            ),
            {
                "id": cid,
                "n": trial,
                "s": state,
                "b": baseline is not None,
                "bn": baseline,
                "spec": json.dumps(spec),
                "a": accuracy,
                "ta": None if accuracy is None else accuracy - 0.01,
                "size": size,
                "p": None if size is None else size // 4,
                "sp": float(spec.get("prune.sparsity", 0.0)),
                "f": 20 if state == "complete" else 0,
                "w": 2.5,
                "t": STAMP,
            },
        )
        if trial in LATENCY:
            conn.execute(
                text(
                    "INSERT INTO pe_device_metrics (id, candidate_id, device, latency_ms,"
                    " peak_memory_bytes, energy_mj, flash_bytes, sram_bytes, feasible,"
                    " violations) VALUES (:id, :c, 'rpi4', :l, :p, :e, NULL, NULL, true, '[]')"
                ),
                {"id": cid, "c": cid, "l": LATENCY[trial], "p": 2 * (size or 0), "e": 0.5},
            )
        if trial in RANKS:
            conn.execute(
                text(
                    "INSERT INTO pe_front (study_id, device, candidate_id, rank, latency_ms,"
                    " accuracy, size_bytes) VALUES (1, 'rpi4', :c, :r, :l, :a, :s)"
                ),
                {"c": cid, "r": RANKS[trial], "l": LATENCY[trial], "a": accuracy, "s": size},
            )
    conn.execute(
        text(
            "INSERT INTO pe_artifacts (id, candidate_id, kind, path, sha256, bytes, created_at)"
            " VALUES (1, 3, 'onnx', 'trial-00002.onnx', :h, 123456, :t)"
        ),
        {"h": "0123456789abcdef" * 4, "t": STAMP},
    )


def build(path: Path) -> Path:
    """Write the frozen database to ``path`` (replacing it)."""
    from paretoedge.storage._engine import create_engine_for
    from paretoedge.storage._migrate import upgrade_schema

    path.unlink(missing_ok=True)
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        upgrade_schema(engine, REVISION)
        with engine.begin() as conn:
            populate(conn)
    finally:
        engine.dispose()
    # One self-contained file: no WAL beside it, no free pages.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("VACUUM")
    conn.close()
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else FROZEN_0006
    out.parent.mkdir(parents=True, exist_ok=True)
    print(build(out))
