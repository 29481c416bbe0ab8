"""The optional runtimes: one-line "install paretoedge[X]" errors, format choice, checks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from paretoedge.cli import main
from paretoedge.errors import ConfigError, MissingExtraError
from paretoedge.export import resolve_formats
from paretoedge.exporters import check_runtime, executorch_runner, export_executorch, require


@pytest.fixture
def no_executorch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import executorch`` fail as if the extra were not installed."""
    monkeypatch.setitem(sys.modules, "executorch", None)
    monkeypatch.setattr("paretoedge.exporters._extras.available", lambda package: False)


@pytest.mark.parametrize(
    ("package", "extra"), [("executorch", "executorch"), ("tflite_micro", "tflm")]
)
def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch, package: str, extra: str) -> None:
    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(MissingExtraError) as err:
        require(package)
    assert str(err.value) == (
        f"{package} is not installed: install it with pip install 'paretoedge[{extra}]'"
    )


@pytest.mark.usefixtures("no_executorch")
def test_executorch_functions_raise_the_install_error(tmp_path: Path) -> None:
    with pytest.raises(MissingExtraError, match=r"paretoedge\[executorch\]"):
        export_executorch(object(), tmp_path / "m.pte", seq_len=8)  # type: ignore[arg-type]
    with pytest.raises(MissingExtraError, match=r"paretoedge\[executorch\]"):
        executorch_runner(tmp_path / "m.pte")
    assert not (tmp_path / "m.pte").exists()


@pytest.mark.usefixtures("no_executorch")
def test_formats_default_to_the_installed_ones_and_requested_ones_must_be_installed() -> None:
    assert resolve_formats(None, "cpu") == ("onnx",)  # executorch skipped, not an error
    assert resolve_formats(None, "mcu") == ("onnx",)
    assert resolve_formats(["onnx"], "cpu") == ("onnx",)
    with pytest.raises(MissingExtraError, match=r"paretoedge\[executorch\]"):
        resolve_formats(["executorch"], "cpu")
    with pytest.raises(ConfigError, match=r"invalid format='zip': allowed executorch, onnx"):
        resolve_formats(["zip"], "cpu")


def test_formats_follow_the_device_class_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("paretoedge.exporters._extras.available", lambda package: True)
    assert resolve_formats(None, "cpu") == ("onnx", "executorch")
    assert resolve_formats(None, "gpu") == ("onnx",)


@pytest.mark.usefixtures("no_executorch")
def test_cli_export_missing_extra_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
    from _query_data import populate

    url = f"sqlite:///{tmp_path / 'pe.db'}"
    populate(url)
    base = ["--out", str(tmp_path / "x"), "--storage", url, "--no-progress"]
    assert main(["export", "qs", "3", "--device", "rpi4", "--format", "executorch", *base]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("install it with pip install 'paretoedge[executorch]'")
    assert "\n" not in err and "Traceback" not in err
    assert main(["export", "qs", "3", "--device", "rpi4", "--format", "zip", *base]) == 2
    assert "invalid format='zip': allowed executorch, onnx" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _fixed(logits: np.ndarray):  # type: ignore[no-untyped-def]
    rows = iter(logits)
    return lambda feed: next(rows)[None, :]


def test_check_runtime_holds_float_files_to_agreement_and_int8_to_accuracy() -> None:
    reference = np.array([[1.0, 0.0]] * 50 + [[0.0, 1.0]] * 50, dtype=np.float32)
    labels = [0] * 50 + [1] * 40 + [0] * 10  # PyTorch accuracy 0.9
    feeds = [{} for _ in range(100)]
    flipped = reference.copy()
    flipped[[0, 1]] = flipped[[0, 1], ::-1]  # two predictions change: agreement 0.98
    common = {"feeds": feeds, "labels": labels, "reference": reference, "runtime": "onnxruntime"}
    same = check_runtime(file="a", int8=False, run=_fixed(reference), **common)
    assert (same.agreement, same.accuracy, same.max_abs_logit_diff, same.passed) == (
        1.0, 0.9, 0.0, True
    )  # fmt: skip
    off = check_runtime(file="b", int8=False, run=_fixed(flipped), **common)
    assert off.agreement == pytest.approx(0.98) and not off.passed
    # the same two flips in an int8 file: accuracy 0.88, two points below PyTorch
    q = check_runtime(file="c", int8=True, run=_fixed(flipped), **common)
    assert q.accuracy == pytest.approx(0.88) and not q.passed
    one = flipped.copy()
    one[1] = reference[1]  # one flip: accuracy 0.89, within one point
    assert check_runtime(file="d", int8=True, run=_fixed(one), **common).passed
    assert q.to_dict()["criterion"] == "|accuracy - PyTorch| <= 0.01"
    with pytest.raises(ValueError, match="3 labels"):
        check_runtime(file="e", int8=False, run=_fixed(reference), feeds=feeds,
                      labels=[0, 1, 0], reference=reference, runtime="x")  # fmt: skip


def test_model_card_records_each_runtime_check_and_the_mcu_memory(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "api"))
    from _query_data import populate

    from paretoedge import storage as st
    from paretoedge.export import ExportResult, model_card
    from paretoedge.exporters import RuntimeCheck

    url = f"sqlite:///{tmp_path / 'pe.db'}"
    populate(url)
    with st.open_storage(url) as storage:
        study = st.get_study(storage, name="qs")
        cand = st.get_candidate(storage, study="qs", trial_number=3)
    checks = (
        RuntimeCheck("model.pte", "executorch", False, 500, 0.998, 0.81, 0.812, 3e-6),
        RuntimeCheck("model.int8.pte", "executorch", True, 500, 0.95, 0.79, 0.812, 0.2),
    )
    result = ExportResult(
        study="qs", trial=3, device="rpi4", out=tmp_path, files={}, stored_accuracy=None,
        reproduced_accuracy=0.8, stored_test_accuracy=None, onnx_test_accuracy={},
        predicted={"latency_ms": 1.0, "flash_bytes": 792354, "sram_bytes": 53248},
        tvm_library=tmp_path / "model.tar", tvm_linked=False, runtime_checks=checks,
    )  # fmt: skip
    card = model_card(study, cand, result, model="tiny-bert", task="sentiment", seq_len=32)
    assert "| `model.pte` | executorch | 500 | 0.9980 | 0.8100 | 0.8120 | 3.00e-06 |" in card
    # int8 held to accuracy: 0.79 is 2.2 points below PyTorch, so it fails however it agrees
    assert "| `model.int8.pte` | executorch | 500 | 0.9500 | 0.7900 | 0.8120 |" in card
    assert "|accuracy - PyTorch| <= 0.01 | **no** |" in card
    assert "agreement >= 0.99 | yes |" in card
    assert "792,354 B" in card and "53,248 B" in card
    assert 'load_program("model.pte")' in card
    assert result.to_dict()["runtime_checks"][1]["passed"] is False
