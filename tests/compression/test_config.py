from __future__ import annotations

import pytest

from paretoedge.compression import (
    CompressionSpec,
    FFNConfig,
    HeadsConfig,
    LowRankConfig,
    PruneConfig,
    QuantConfig,
    RecoveryConfig,
)
from paretoedge.errors import ConfigError, UnknownNameError


@pytest.mark.parametrize(
    ("flat", "field", "allowed"),
    [
        ({"quant.bits": 3}, "quant.bits", "32, 16, 8, 4"),
        ({"quant.bits": "3"}, "quant.bits", "32, 16, 8, 4"),
        ({"prune.sparsity": 1.5}, "prune.sparsity", "[0, 0.95]"),
        ({"prune.sparsity": -0.1}, "prune.sparsity", "[0, 0.95]"),
        ({"prune.scope": "row"}, "prune.scope", "global, layer"),
        ({"lowrank.rank": 0}, "lowrank.rank", ">= 1"),
        ({"lowrank.energy": 1.2}, "lowrank.energy", "(0, 1]"),
        ({"lowrank.energy": 0}, "lowrank.energy", "(0, 1]"),
        ({"lowrank.targets": "conv"}, "lowrank.targets", "attention, ffn, embeddings"),
        ({"heads.keep": 0}, "heads.keep", "(0, 1]"),
        ({"ffn.keep": 1.01}, "ffn.keep", "(0, 1]"),
        ({"quant.scheme": "log"}, "quant.scheme", "uniform, cluster"),
        ({"quant.layer_bits.ffn": 5}, "quant.layer_bits.ffn", "32, 16, 8, 4"),
        ({"quant.act_bits": 4}, "quant.act_bits", "8, None"),
        ({"quant.qat": "maybe"}, "quant.qat", "true, false"),
        ({"recovery.steps": -1}, "recovery.steps", ">= 0"),
        ({"recovery.steps": "ten"}, "recovery.steps", "integer"),
        ({"distill.layers": 0}, "distill.layers", ">= 1"),
    ],
    ids=lambda v: str(v) if not isinstance(v, dict) else ",".join(f"{k}={x}" for k, x in v.items()),
)
def test_bad_values_name_field_and_allowed(flat, field, allowed):
    with pytest.raises(ConfigError) as info:
        CompressionSpec.from_flat(flat)
    assert info.value.field == field
    assert allowed in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_transform_and_key():
    with pytest.raises(UnknownNameError, match="transform='sparsify'.*prune"):
        CompressionSpec.from_flat({"sparsify.amount": 1})
    with pytest.raises(UnknownNameError, match="quant.bitz.*quant.bits"):
        CompressionSpec.from_flat({"quant.bitz": 8})


def test_from_flat_coerces_strings_and_round_trips():
    spec = CompressionSpec.from_flat(
        {
            "quant.bits": "4",
            "quant.scheme": "cluster",
            "quant.layer_bits.attention": "8",
            "quant.qat": "true",
            "prune.sparsity": "0.5",
            "heads.keep": 0.75,
            "ffn.keep": ".5",
            "lowrank.energy": "0.9",
            "lowrank.targets": "ffn,embeddings",
            "recovery.steps": "10",
            "distill.layers": "0,1",
        }
    )
    assert spec.quant == QuantConfig(
        bits=4, scheme="cluster", layer_bits=(("attention", 8),), qat=True
    )
    assert spec.prune == PruneConfig(sparsity=0.5)
    assert spec.heads == HeadsConfig(keep=0.75)
    assert spec.ffn == FFNConfig(keep=0.5)
    assert spec.lowrank == LowRankConfig(energy=0.9, targets=("ffn", "embeddings"))
    assert spec.recovery == RecoveryConfig(steps=10)
    assert spec.distill.layers == (0, 1)
    assert CompressionSpec.from_flat(spec.to_flat()) == spec
    assert CompressionSpec.from_json(spec.to_json()) == spec


def test_versioned_document_allow_list():
    spec = CompressionSpec(quant=QuantConfig(bits=8))
    doc = spec.to_dict()
    assert doc["_type"] == "CompressionSpec" and doc["_version"] == 1
    assert CompressionSpec.from_dict(doc) == spec
    with pytest.raises(ConfigError, match="spec._type"):
        CompressionSpec.from_dict({**doc, "_type": "os.system"})
    with pytest.raises(ConfigError, match="spec._version"):
        CompressionSpec.from_dict({**doc, "_version": 99})


def test_configs_are_frozen():
    config = PruneConfig(sparsity=0.3)
    with pytest.raises(AttributeError):
        config.sparsity = 0.9  # type: ignore[misc]
