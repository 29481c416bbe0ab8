"""Build ``data/rev0001.sqlite``: a tiny database at schema revision 0001, with data.

The upgrade test copies that committed file and opens it with the current code, which
must migrate it to head without losing a row. Rebuild it only when adding a frozen file
for a new revision (never edit an old one): ``python tests/storage/make_frozen_db.py``.
The content is fixed (timestamps included) so ``test_frozen_file_matches_its_script``
can check that the committed file is what this script writes.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

FROZEN = Path(__file__).with_name("data") / "rev0001.sqlite"
REVISION = "0001"
STAMP = "2026-11-23 12:00:00.000000+00:00"

STUDY = (
    1,
    "frozen",
    "frozen",
    '{"model": "tiny-bert", "task": "sentiment", "budget": {"trials": 3}}',
    '["rpi4", "stm32h7"]',
    '[{"name": "accuracy", "device": null, "direction": "maximize"}, '
    '{"name": "latency_ms", "device": "rpi4", "direction": "minimize"}]',
    "finished",
    11,
)
# id, trial, state, is_baseline, baseline_name, spec, accuracy, size_bytes
CANDIDATES = [
    (1, 0, "complete", 1, "teacher", '{"quant.bits": 32}', 0.86, 17_000_000),
    (2, 1, "complete", 1, "int8", '{"quant.bits": 8}', 0.85, 4_400_000),
    (3, 2, "complete", 0, None, '{"prune.sparsity": 0.5, "quant.bits": 4}', 0.79, 1_300_000),
    (4, 3, "failed", 0, None, '{"prune.sparsity": 0.9}', None, None),
]
# candidate_id, device, latency_ms, peak_memory_bytes, feasible, violations
METRICS = [
    (1, "rpi4", 41.0, 30_000_000, 1, "[]"),
    (2, "rpi4", 19.5, 12_000_000, 1, "[]"),
    (3, "rpi4", 11.25, 6_000_000, 1, "[]"),
    (1, "stm32h7", 900.0, 17_500_000, 0, '["flash_bytes <= 2097152"]'),
    (2, "stm32h7", 410.0, 4_600_000, 0, '["flash_bytes <= 2097152"]'),
    (3, "stm32h7", 260.0, 1_400_000, 1, "[]"),
]


def build(path: Path) -> Path:
    """Write the frozen database to ``path`` (replacing it)."""
    from paretoedge.storage._engine import create_engine_for
    from paretoedge.storage._migrate import upgrade_schema

    path.unlink(missing_ok=True)
    engine = create_engine_for(f"sqlite:///{path}")
    upgrade_schema(engine, REVISION)
    engine.dispose()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "INSERT INTO pe_studies (id, name, optuna_study_name, config, devices, objectives,"
            " status, seed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*STUDY, STAMP, STAMP),
        )
        for cid, trial, state, base, base_name, spec, acc, size in CANDIDATES:
            conn.execute(
                "INSERT INTO pe_candidates (id, study_id, trial_number, state, is_baseline,"
                " baseline_name, spec, accuracy, size_bytes, parameters, sparsity, fidelity,"
                " wall_s, created_at, updated_at)"
                " VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    trial,
                    state,
                    base,
                    base_name,
                    spec,
                    acc,
                    size,
                    None if size is None else size // 4,
                    0.0,
                    100,
                    2.5,
                    STAMP,
                    STAMP,
                ),
            )
        for i, (cid, device, lat, peak, feasible, violations) in enumerate(METRICS, 1):
            conn.execute(
                "INSERT INTO pe_device_metrics (id, candidate_id, device, latency_ms,"
                " peak_memory_bytes, energy_mj, flash_bytes, sram_bytes, feasible, violations)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (i, cid, device, lat, peak, lat * 0.5, None, None, feasible, violations),
            )
        conn.execute(
            "INSERT INTO pe_artifacts (id, candidate_id, kind, path, sha256, bytes, created_at)"
            " VALUES (1, 3, 'onnx', 'trial-2/model.onnx', ?, 123456, ?)",
            ("0123456789abcdef" * 4, STAMP),
        )
    # One self-contained file: no WAL beside it, no free pages.
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA page_size = 1024")
    conn.execute("VACUUM")
    conn.close()
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else FROZEN
    out.parent.mkdir(parents=True, exist_ok=True)
    print(build(out))
