"""``paretoedge compress``: outputs on success; one line and exit code 2 on bad input."""

from __future__ import annotations

import json

import onnx
import pytest

from paretoedge.cli import main


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "quant.bits=3"], "invalid quant.bits=3: allowed 32, 16, 8, 4"),
        (["--set", "prune.sparsity=1.5"], "prune.sparsity"),
        (["--set", "lowrank.rank=0"], "lowrank.rank"),
        (["--set", "shrink.factor=2"], "transform='shrink'"),
        (["--set", "quant.bitz=8"], "quant.bitz"),
        (["--set", "quant.bits"], "--set"),
        (["--set", "distill.layers=5", "--no-finetune"], "distill.layers=5: allowed 1..2"),
    ],
    ids=[
        "bits-3",
        "sparsity-1.5",
        "rank-0",
        "unknown-transform",
        "unknown-key",
        "no-value",
        "too-many-layers",
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, needle):
    code = main(["compress", "tiny-bert", "--task", "sentiment", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert needle in err
    assert "Traceback" not in err


def test_compress_writes_model_onnx_and_reports(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "compress",
            "tiny-bert",
            "--task",
            "sentiment",
            "--no-finetune",
            "--json",
            "--set",
            "quant.bits=8",
            "--set",
            "prune.sparsity=0.5",
            "--set",
            "recovery.steps=2",
            "--set",
            "recovery.batch_size=8",
            "--out",
            str(out),
            "--seq-len",
            "32",
            "--limit",
            "64",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["applied"] == ["prune", "recovery", "quant(ptq)", "calibrate"]
    assert result["parameters"] == result["baseline_parameters"]
    assert result["stored_bytes"] < result["baseline_stored_bytes"] / 3.5
    assert result["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert 0.0 <= result["validation_accuracy"] <= 1.0
    assert result["total_wall_s"] > 0
    for name in (
        "model.onnx",
        "model.int8.onnx",
        "config.json",
        "model.safetensors",
        "paretoedge_structure.json",
        "paretoedge_spec.json",
        "paretoedge_result.json",
    ):
        assert (out / name).is_file(), name
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert json.loads(meta["paretoedge.spec"])["_data"]["quant"]["_data"]["bits"] == 8
    # the output directory is a model again: compress it further
    code = main(
        [
            "compress",
            str(out),
            "--task",
            "sentiment",
            "--json",
            "--set",
            "quant.bits=16",
            "--out",
            str(tmp_path / "again"),
            "--limit",
            "64",
        ]
    )
    assert code == 0
    again = json.loads(capsys.readouterr().out)
    assert again["sparsity"] == pytest.approx(0.5, abs=0.01)
