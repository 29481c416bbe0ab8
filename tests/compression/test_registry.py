"""The transform registry: canonical order, spec sections, registration errors, no cycles."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from paretoedge.compression import (
    TRANSFORMS,
    CompressionSpec,
    Step,
    register_transform,
)
from paretoedge.compression._transform import BAKE_ORDER, ordered_steps, sections, step_names
from paretoedge.errors import UnknownNameError

BUILT_IN = (
    "distill",
    "heads",
    "ffn",
    "lowrank",
    "prune",
    "quant(qat)",
    "recovery",
    "quant(ptq)",
    "calibrate",
)


def test_built_in_steps_keep_their_canonical_order():
    names = step_names()
    positions = [names.index(n) for n in BUILT_IN]
    assert positions == sorted(positions)
    orders = [s.order for _, s in ordered_steps()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert BAKE_ORDER not in orders
    assert [s.name for _, s in ordered_steps() if s.order > BAKE_ORDER] == ["calibrate", "exit"]


def test_every_registered_section_is_a_spec_field():
    fields = {f.name for f in dataclasses.fields(CompressionSpec)}
    assert set(sections()) <= fields
    for name in TRANSFORMS:
        transform = TRANSFORMS.get(name)
        assert transform.section == name
        for step in transform.steps:
            assert callable(step.resolve())


def test_clashing_registrations_are_programming_errors():
    @dataclasses.dataclass(frozen=True)
    class Dummy:
        x: int = 1

    with pytest.raises(RuntimeError, match="clashes"):
        register_transform("dummy", Dummy, Step("dummy", order=500, handler=lambda c, x: True))
    with pytest.raises(RuntimeError, match="clashes"):
        register_transform("dummy", Dummy, Step("prune", order=501, handler=lambda c, x: True))
    with pytest.raises(RuntimeError, match="clashes"):
        register_transform(
            "dummy", Dummy, Step("dummy", order=BAKE_ORDER, handler=lambda c, x: True)
        )
    with pytest.raises(RuntimeError, match="registered twice"):
        register_transform("prune", Dummy, Step("dummy", order=501, handler=lambda c, x: True))
    assert "dummy" not in TRANSFORMS


def test_unknown_section_lists_the_registered_ones():
    with pytest.raises(UnknownNameError) as info:
        CompressionSpec.from_flat({"nosuch.keep": 0.5})
    assert "prune" in str(info.value) and "quant" in str(info.value)


def test_training_does_not_import_compression_and_reading_a_spec_needs_no_torch():
    code = (
        "import sys, paretoedge.training, paretoedge.teachers;"
        "assert not any(m.startswith('paretoedge.compression') for m in sys.modules), 'cycle';"
        "from paretoedge.compression import CompressionSpec;"
        "CompressionSpec.from_flat({'quant.bits': 4, 'distill.layers': 2});"
        "assert 'torch' not in sys.modules, 'torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_model_card_notes_come_from_the_transforms_used():
    from paretoedge.export import _runtime_notes

    notes = _runtime_notes({"hash.ratio": 0.5, "share.groups": 2, "prune.sparsity": 0.5})
    assert "materialised weights" in notes and "every layer still runs" in notes
    assert _runtime_notes({"prune.sparsity": 0.5}) == ""
    assert _runtime_notes({"retired.key": 1}) == ""  # an unreadable old spec: no notes
