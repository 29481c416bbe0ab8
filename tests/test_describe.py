"""The one candidate description and the folding of twins on a front."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paretoedge._describe import collapse_twins, describe_spec
from paretoedge.compression import CompressionSpec
from paretoedge.search import normalize_flat
from paretoedge.storage import CandidateRecord, DeviceMetricsRecord, FrontEntry


@pytest.mark.parametrize(
    ("flat", "text"),
    [
        ({"prune.sparsity": 0.3, "quant.bits": 8, "recovery.steps": 6}, "sparsity 0.3 int8"),
        ({"quant.bits": 4, "quant.scheme": "cluster"}, "int4 k-means"),
        ({"prune.sparsity": 0.5, "prune.scope": "layer"}, "sparsity 0.5 prune.scope=layer"),
        ({"quant.bits": 8, "quant.layer_bits.ffn": 4}, "int8 ffn:4b"),
        ({}, "uncompressed"),
    ],
    ids=["defaults-hidden", "scheme-shown", "scope-shown", "layer-bits", "nothing"],
)
def test_descriptions_show_only_what_differs_from_defaults(flat: dict, text: str) -> None:
    assert describe_spec(normalize_flat(flat)) == text


def _entry(trial: int, spec: dict, rank: int = 0, baseline: str | None = None) -> FrontEntry:
    cand = CandidateRecord(
        id=trial + 1,
        study_id=1,
        trial_number=trial,
        state="complete",
        is_baseline=baseline is not None,
        baseline_name=baseline,
        spec=CompressionSpec.from_flat(spec),
        accuracy=0.8,
        test_accuracy=None,
        size_bytes=10,
        parameters=1,
        sparsity=0.0,
        fidelity=None,
        wall_s=1.0,
        created_at=datetime.now(UTC),
    )
    metrics = DeviceMetricsRecord(
        candidate_id=trial + 1,
        device="rpi4",
        latency_ms=1.0,
        peak_memory_bytes=1,
        energy_mj=None,
        flash_bytes=None,
        sram_bytes=None,
        feasible=True,
        violations=(),
    )
    return FrontEntry(rank=rank, candidate=cand, metrics=metrics)


def test_twins_fold_into_their_first_row() -> None:
    a, b = {"quant.bits": 8}, {"quant.bits": 4}
    rows = collapse_twins(
        [_entry(1, a), _entry(2, b), _entry(11, a), _entry(14, a), _entry(0, a, baseline="int8")]
    )
    assert [(e.candidate.trial_number, also) for e, also in rows] == [
        (1, (11, 14)),
        (2, ()),
        (0, ()),  # a baseline with the same spec stays its own row
    ]
