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
from paretoedge.compression._config import SPEC_VERSION
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
    assert doc["_type"] == "CompressionSpec" and doc["_version"] == SPEC_VERSION == 2
    assert CompressionSpec.from_dict(doc) == spec
    with pytest.raises(ConfigError, match="spec._type"):
        CompressionSpec.from_dict({**doc, "_type": "os.system"})
    with pytest.raises(ConfigError, match="spec._version"):
        CompressionSpec.from_dict({**doc, "_version": 99})


def test_configs_are_frozen():
    config = PruneConfig(sparsity=0.3)
    with pytest.raises(AttributeError):
        config.sparsity = 0.9  # type: ignore[misc]


def _full_spec() -> CompressionSpec:
    from paretoedge.compression import (
        AttentionConfig,
        DistillConfig,
        ExitConfig,
        TensorConfig,
    )
    from paretoedge.compression._hash import HashConfig
    from paretoedge.compression._hidden import HiddenConfig
    from paretoedge.compression._share import ShareConfig

    return CompressionSpec(
        distill=DistillConfig(layers=(0, 2), temperature=3),
        heads=HeadsConfig(keep=0.5, criterion="gradient"),
        ffn=FFNConfig(keep=0.25),
        lowrank=LowRankConfig(rank=8, targets=("ffn", "embeddings")),
        prune=PruneConfig(sparsity=0.3, scope="layer"),
        quant=QuantConfig(bits=4, layer_bits=(("ffn", 8), ("layer.0", 2)), act_bits=None),
        recovery=RecoveryConfig(steps=5),
        share=ShareConfig(groups=3),
        hash=HashConfig(ratio=0.5),
        tensor=TensorConfig(method="cp", rank=4),
        attention=AttentionConfig(kind="local", window=16, layers=(0, 1)),
        exit=ExitConfig(layers=(1, 2), threshold=0.8),
        hidden=HiddenConfig(keep=0.5),
    )


def test_document_nests_one_versioned_document_per_section():
    spec = _full_spec()
    doc = spec.to_dict()
    assert set(doc["_data"]) == {
        "distill", "heads", "ffn", "lowrank", "prune", "quant", "recovery", "share", "hash",
        "tensor", "attention", "exit", "hidden",
    }  # fmt: skip
    quant = doc["_data"]["quant"]
    assert quant == {
        "_type": "QuantConfig",
        "_version": 1,
        "_data": {
            "bits": 4,
            "scheme": "uniform",
            "layer_bits": [["ffn", 8], ["layer.0", 2]],
            "act_bits": None,
            "qat": False,
        },
    }
    assert CompressionSpec.from_dict(doc) == spec
    assert CompressionSpec.from_json(spec.to_json()) == spec
    assert CompressionSpec.from_dict(CompressionSpec().to_dict()) == CompressionSpec()


def test_version_1_documents_are_upgraded_on_load():
    """Version 1 (ONNX metadata and saved models written before version 2) kept flat keys."""
    spec = _full_spec()
    v1 = {"_type": "CompressionSpec", "_version": 1, "_data": spec.to_flat()}
    assert CompressionSpec.from_dict(v1) == spec
    old = {"_type": "CompressionSpec", "_version": 1, "_data": {"quant.bits": 8}}
    assert CompressionSpec.from_dict(old) == CompressionSpec(quant=QuantConfig(bits=8))
    with pytest.raises(ConfigError) as info:
        CompressionSpec.from_dict({**old, "_data": {"quant.bits": 3}})
    assert info.value.field == "quant.bits"


@pytest.mark.parametrize(
    ("mutate", "field", "allowed"),
    [
        (lambda d: {**d, "_version": 3}, "spec._version", "newer paretoedge"),
        (lambda d: {**d, "_version": 0}, "spec._version", "an integer in [1, 2]"),
        (lambda d: {**d, "_version": True}, "spec._version", "an integer"),
        (lambda d: {**d, "_type": "builtins.eval"}, "spec._type", "CompressionSpec"),
        (lambda d: {**d, "extra": 1}, "spec", "exactly the keys"),
        (lambda d: {**d, "_data": [1]}, "spec._data", "a mapping"),
        (lambda d: {**d, "_data": {"zip": {}}}, "transform", "prune"),
        (
            lambda d: {**d, "_data": {"quant": {**d["_data"]["quant"], "_type": "PruneConfig"}}},
            "spec.quant._type",
            "QuantConfig",
        ),
        (
            lambda d: {**d, "_data": {"quant": {**d["_data"]["quant"], "_version": 2}}},
            "spec.quant._version",
            "newer paretoedge",
        ),
        (
            lambda d: {**d, "_data": {"quant": {**d["_data"]["quant"], "_data": {"bitz": 8}}}},
            "quant key",
            "quant.bits",
        ),
        (
            lambda d: {**d, "_data": {"quant": {**d["_data"]["quant"], "_data": {"bits": "8"}}}},
            "quant.bits",
            "32, 16, 8",
        ),
    ],
    ids=[
        "newer-version",
        "version-0",
        "version-bool",
        "unknown-type",
        "extra-key",
        "data-not-mapping",
        "unknown-section",
        "section-wrong-type",
        "section-newer",
        "unknown-field",
        "string-not-coerced",
    ],
)
def test_bad_documents_name_the_place(mutate, field, allowed):
    doc = CompressionSpec(quant=QuantConfig(bits=8)).to_dict()
    with pytest.raises(ConfigError) as info:
        CompressionSpec.from_dict(mutate(doc))
    assert info.value.field == field
    assert allowed in str(info.value)
    assert "\n" not in str(info.value)


def test_partial_section_data_takes_defaults():
    doc = {
        "_type": "CompressionSpec",
        "_version": 2,
        "_data": {"prune": {"_type": "PruneConfig", "_version": 1, "_data": {"sparsity": 0}}},
    }
    spec = CompressionSpec.from_dict(doc)
    assert spec == CompressionSpec(prune=PruneConfig(sparsity=0.0))
    assert isinstance(spec.prune.sparsity, float)
