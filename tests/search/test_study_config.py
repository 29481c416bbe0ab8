"""Study configuration: validation errors name the dotted field and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from paretoedge.errors import ConfigError
from paretoedge.objectives import DeviceMetrics, Evaluation
from paretoedge.search import (
    Constraint,
    apply_overrides,
    bundled_configs,
    enumerate_space,
    load_config,
    parse_config,
)


def base(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "t",
        "model": "tiny-bert",
        "task": "sentiment",
        "space": {
            "prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.25},
            "quant.bits": [32, 8, 4],
            "quant.scheme": {"choices": ["uniform", "cluster"], "when": {"quant.bits": 4}},
        },
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": ["rpi4", "mcu"],
        "constraints": ["latency_ms[rpi4] <= 50", "accuracy >= 0.8", "flash_bytes[mcu] <= 2e6"],
    }
    doc.update(over)
    return doc


def test_valid_config_expands_per_device_objectives() -> None:
    cfg = parse_config(base(), check_names=False)
    assert [o.label for o in cfg.objectives] == [
        "accuracy",
        "latency_ms[rpi4]",
        "latency_ms[mcu]",
        "size_bytes",
    ]
    assert [o.direction for o in cfg.objectives] == ["maximize", "minimize", "minimize", "minimize"]
    assert [o.label for o in cfg.front_objectives("mcu")] == [
        "accuracy",
        "latency_ms[mcu]",
        "size_bytes",
    ]
    assert [c.label for c in cfg.device_constraints("rpi4")] == [
        "latency_ms[rpi4] <= 50",
        "accuracy >= 0.8",
    ]
    assert cfg.sampler.name == "nsga2"
    assert cfg.space[0].kind == "float" and cfg.space[1].kind == "categorical"
    # a device added later gets the per-device objectives applied to it
    assert [o.label for o in cfg.front_objectives("pixel")][1] == "latency_ms[pixel]"


def test_conditional_parameters_enumerate_once() -> None:
    cfg = parse_config(base(), check_names=False)
    points = list(enumerate_space(cfg.space))
    # 3 sparsities x (32, 8, 4-uniform, 4-cluster)
    assert len(points) == 12
    assert {"prune.sparsity": 0.25, "quant.bits": 8} in points
    assert {"prune.sparsity": 0.0, "quant.bits": 4, "quant.scheme": "cluster"} in points
    assert all(("quant.scheme" in p) == (p["quant.bits"] == 4) for p in points)


@pytest.mark.parametrize(
    ("over", "field", "allowed"),
    [
        ({"budget": {"trials": 0}}, "budget.trials", "greater than or equal to 1"),
        ({"budget": {"trials": "many"}}, "budget.trials", "integer"),
        (
            {"sampler": {"name": "cmaes"}},
            "sampler.name",
            "'nsga2', 'tpe', 'gp', 'random' or 'screening'",
        ),
        ({"sampler": "cmaes"}, "sampler", "nsga2"),
        (
            {"sampler": {"name": "tpe", "options": {"popsize": 3}}},
            "sampler.options.popsize",
            "n_startup_trials",
        ),
        ({"budgett": {}}, "budgett", "budget"),
        ({"recovery": {"steps": -1}}, "recovery.steps", "greater than or equal to 0"),
        ({"objectives": ["accuracy", "latency"]}, "objectives[1].name", "latency_ms"),
        ({"objectives": ["latency_ms"]}, "objectives", "accuracy"),
        ({"objectives": ["accuracy", "latency_ms[pi]"]}, "objectives[1].device", "rpi4"),
        (
            {"objectives": ["accuracy", "size_bytes[rpi4]"]},
            "objectives[1].device",
            "device-independent",
        ),
        ({"constraints": ["latency_ms <= 5"]}, "constraints[0]", "per device"),
        ({"constraints": ["latency_ms[pi] <= 5"]}, "constraints[0]", "rpi4, mcu"),
        ({"constraints": ["speed[rpi4] <= 5"]}, "constraints[0]", "accuracy"),
        ({"constraints": ["accuracy = 0.5"]}, "constraints[0]", "<="),
        ({"devices": []}, "devices", "at least 1"),
        ({"devices": ["rpi4", "rpi4"]}, "devices", "distinct"),
        ({"seq_len": 4}, "seq_len", "greater than or equal to 8"),
        ({"baselines": ["fp16"]}, "baselines[0]", "'teacher' or 'int8'"),
        ({"space": {"prune.sparsty": [0.1]}}, "space.prune.sparsty", "prune.sparsity"),
        (
            {"space": {"quant.bits": {"low": 4, "high": 8, "step": 0.5}}},
            "space.quant.bits.step",
            "integer",
        ),
        (
            {"space": {"prune.sparsity": {"low": 0.5, "high": 0.1}}},
            "space.prune.sparsity.high",
            ">= low",
        ),
        ({"space": {"prune.sparsity": {"lo": 0.5}}}, "space.prune.sparsity.lo", "high"),
        (
            {"space": {"quant.scheme": {"choices": ["uniform"], "when": {"quant.bits": 4}}}},
            "space.quant.scheme.when.quant.bits",
            "listed before",
        ),
        ({"space": {"quant.bits": ["eight"]}}, "space.quant.bits.choices", "int"),
        ({"space": {}}, "space", "at least one"),
        ({"fixed": {"quant.bits": 8}}, "fixed.quant.bits", "not also in space"),
        ({"budget": {"trials": None}}, "budget", "trials and/or timeout_s"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_errors_name_the_field(over: dict[str, Any], field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(base(**over), check_names=False)
    assert info.value.field == field, str(info.value)
    assert allowed in str(info.value)


def test_missing_required_field() -> None:
    doc = base()
    del doc["model"]
    with pytest.raises(ConfigError, match=r"invalid model=None: allowed a value"):
        parse_config(doc, check_names=False)


def test_constraint_violation_is_relative() -> None:
    ev = Evaluation(
        accuracy=0.7,
        size_bytes=10,
        devices={"rpi4": DeviceMetrics(latency_ms=75.0, peak_memory_bytes=1, energy_mj=1.0)},
    )
    assert Constraint.parse("latency_ms[rpi4] <= 50").violation(ev) == pytest.approx(0.5)
    assert Constraint.parse("latency_ms[rpi4] <= 100").violation(ev) == 0.0
    assert Constraint.parse("accuracy >= 0.8").violation(ev) == pytest.approx(0.125)
    assert Constraint.parse("flash_bytes[x] <= 2e6").bound == 2e6


def test_overrides_reach_nested_and_dotted_keys() -> None:
    doc = apply_overrides(
        base(),
        [
            "model=minilm",
            "budget.trials=3",
            "space.prune.sparsity.high=0.75",
            "devices=[rpi4]",
            "sampler.name=random",
        ],
    )
    assert doc["model"] == "minilm"
    assert doc["budget"] == {"trials": 3}
    assert doc["space"]["prune.sparsity"]["high"] == 0.75
    cfg = parse_config({**doc, "constraints": []}, check_names=False)
    assert cfg.budget.trials == 3 and cfg.devices == ("rpi4",)
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides(base(), ["model"])


def test_bundled_configs_load_by_name_and_path() -> None:
    names = bundled_configs()
    assert "quickstart" in names
    assert {"quickstart", "mixed_precision", "mcu"} <= set(names)
    for name in names:
        cfg = load_config(name)  # models, tasks, devices and space values all checked
        assert cfg.name and cfg.devices
    cfg = load_config("quickstart", ["budget.trials=2"])
    assert cfg.budget.trials == 2 and len(cfg.devices) == 3
    with pytest.raises(ConfigError, match="config"):
        load_config("no-such-study")


def test_names_are_checked_against_models_tasks_devices_and_transforms() -> None:
    from paretoedge.hardware_profiles import profile_names

    dev = profile_names()[0]
    ok = base(devices=[dev], constraints=["accuracy >= 0.5"])
    assert parse_config(ok).devices == (dev,)
    cases = [
        ({"devices": ["nowhere"]}, "devices[0]", dev),
        ({"model": "no-such-model"}, "model", "tiny-bert"),
        ({"task": "no-such-task.csv"}, "task", "sentiment"),
        ({"space": {"quant.bits": [3, 8]}}, "space.quant.bits", "32, 16, 8, 4"),
        (
            {"space": {"prune.sparsity": {"low": 0.0, "high": 0.99}}},
            "space.prune.sparsity",
            "prune.sparsity",
        ),
    ]
    for over, field, allowed in cases:
        with pytest.raises(ConfigError) as info:
            parse_config({**ok, **over})
        assert info.value.field == field, str(info.value)
        assert allowed in str(info.value)


def test_layer_lists_are_a_search_dimension() -> None:
    """``attention.layers`` (and ``exit.layers``) take choices like any key: text, an int
    or a list of ints, ``all`` for every layer; equal lists written differently are one
    choice; a sampled candidate builds a valid spec on the model."""
    import optuna

    from paretoedge.compression import CompressionSpec
    from paretoedge.search._space import candidate_flat, suggest

    space = {
        "attention.kind": ["softmax", "local", "linear"],
        "attention.layers": {
            "choices": ["all", 0, [1], " 0, 1"],
            "when": {"attention.kind": ["local", "linear"]},
        },
        "exit.layers": [1],
    }
    cfg = parse_config(base(devices=["rpi4"], constraints=[], space=space))
    (layers,) = [p for p in cfg.space if p.key == "attention.layers"]
    assert layers.choices == ("all", "0", "1", "0,1")
    assert [p.choices for p in cfg.space if p.key == "exit.layers"] == [("1",)]
    # softmax has no layers to choose: 1 + 2 kinds x 4 layer sets
    assert len(list(enumerate_space(cfg.space))) == 9
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        flat = candidate_flat(cfg, suggest(trial, cfg.space))
        study.tell(trial, 0.0)
        spec = CompressionSpec.from_flat(flat)
        assert spec.attention is not None and spec.exit is not None
        if spec.attention.kind != "softmax":
            seen.add(spec.attention.layers)
    assert seen == {(), (0,), (1,), (0, 1)}
    fixed = parse_config(
        base(
            devices=["rpi4"],
            constraints=[],
            fixed={"attention.layers": [1, 0]},
            space={"attention.kind": ["local"]},
        )
    )
    assert dict(fixed.fixed) == {"attention.layers": "0,1"}


@pytest.mark.parametrize(
    ("space", "field", "allowed"),
    [
        ({"attention.layers": ["0", "5"]}, "space.attention.layers", "all or layers in 0..1"),
        ({"attention.layers": ["x"]}, "space.attention.layers.choices", "all or a comma"),
        ({"attention.layers": [True]}, "space.attention.layers.choices", "integers >= 0"),
        ({"attention.layers": [["a"]]}, "space.attention.layers.choices", "integer layer"),
        ({"attention.layers": [-1]}, "space.attention.layers.choices", "integers >= 0"),
        ({"attention.layers": ["0,1", [1, 0]]}, "space.attention.layers.choices", "distinct"),
        ({"attention.layers": {"low": 0, "high": 1}}, "space.attention.layers", "choices of"),
        ({"exit.layers": ["all"]}, "space.exit.layers.choices", "integers >= 1"),
        ({"exit.layers": ["1", "2"]}, "space.exit.layers", "layers in 1..1"),
    ],
    ids=[
        "beyond-depth",
        "text",
        "bool",
        "nested",
        "negative",
        "twice",
        "range",
        "exit-all",
        "exit-depth",
    ],
)
def test_layer_list_errors_name_the_field(space: dict[str, Any], field: str, allowed: str) -> None:
    doc = base(devices=["rpi4"], constraints=[], space={"attention.kind": ["local"], **space})
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    msg = str(info.value)
    assert info.value.field == field and allowed in msg and "\n" not in msg, msg


def test_layer_lists_are_checked_against_the_model_depth() -> None:
    """The depth comes from the model's config (MiniLM has 6 layers, tiny-bert 2), also for
    ``fixed`` keys and ``--set model=...``."""
    doc = base(devices=["rpi4"], constraints=[], space={"attention.kind": ["local"]},
               fixed={"attention.layers": "5"})  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert info.value.field == "fixed.attention.layers"
    assert "tiny-bert has 2 layers" in str(info.value)
    cfg = parse_config(apply_overrides(doc, ["model=minilm"]))
    assert dict(cfg.fixed)["attention.layers"] == "5"
    # a stored config is re-read without the model (resume)
    assert parse_config(doc, check_names=False).fixed


def test_space_keys_and_types_derive_from_the_spec_fields() -> None:
    """Every field of every transform config is a space key, typed as the edges write it."""
    import dataclasses

    from paretoedge.compression import CompressionSpec, identity_flat
    from paretoedge.compression._transform import sections
    from paretoedge.search._config import PARAM_TYPES, PREFIX_TYPES, param_type

    fields = {
        f"{section}.{f.name}"
        for section, cls in sections().items()
        for f in dataclasses.fields(cls)
    }
    assert set(PARAM_TYPES) | {p.rstrip(".") for p in PREFIX_TYPES} == fields
    assert {f.name for f in dataclasses.fields(CompressionSpec)} == set(sections())
    expected = {
        "prune.sparsity": float,
        "prune.scope": str,
        "quant.bits": int,
        "quant.act_bits": int,
        "quant.qat": bool,
        "lowrank.rank": int,
        "lowrank.targets": str,
        "distill.layers": int,
        "distill.temperature": float,
        "exit.layers": str,
        "quant.layer_bits.ffn": int,
    }
    assert {k: param_type(k) for k in expected} == expected
    # the identity values the baselines are placed with are valid settings themselves
    identity = CompressionSpec.from_flat(identity_flat())
    assert identity.quant is not None and identity.quant.bits == 32
    assert identity.prune is not None and identity.prune.sparsity == 0.0
