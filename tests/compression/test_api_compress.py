"""``paretoedge.compress`` on one model, by name or loaded, spec typed or flat."""

from __future__ import annotations

import pytest

import paretoedge
from paretoedge.compression import CompressionSpec
from paretoedge.errors import ConfigError


def test_compress_by_name_with_a_flat_spec() -> None:
    result = paretoedge.compress("tiny-bert", {"prune.sparsity": 0.5, "heads.keep": 0.5})
    typed = paretoedge.compress(
        "tiny-bert", CompressionSpec.from_flat({"prune.sparsity": 0.5, "heads.keep": 0.5})
    )
    a, b = result.model.state_dict(), typed.model.state_dict()
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)  # same spec, same seed: same weights
    weights = [p for n, p in result.model.named_parameters() if "encoder" in n and p.dim() == 2]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("spec", "field"),
    [({"quant.bits": 3}, "quant.bits"), ("int8", "spec"), ({"prune.sparsity": 2.0}, "sparsity")],
)
def test_compress_rejects_bad_specs(spec: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        paretoedge.compress("tiny-bert", spec)  # type: ignore[arg-type]


def test_compress_a_loaded_model_with_a_task_needs_its_tokenizer() -> None:
    from paretoedge.models import load_model

    with pytest.raises(ConfigError, match="tokenizer"):
        paretoedge.compress(load_model("tiny-bert"), {"quant.bits": 8}, task="sentiment")
