"""TFLM: measured arena and flash of a flatbuffer, the int8 tiny-bert flatbuffer in TFLM."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from paretoedge.errors import MissingExtraError

HAS_TFLM = importlib.util.find_spec("tflite_micro") is not None
HAS_LITERT = importlib.util.find_spec("litert_torch") is not None
needs_tflm = pytest.mark.skipif(
    not HAS_TFLM, reason="tflite-micro is not installed: pip install 'paretoedge[tflm]'"
)


def _sine_model() -> Path:
    """The float sine model that ships inside the tflite-micro wheel (a real flatbuffer)."""
    spec = importlib.util.find_spec("tflite_micro")
    assert spec is not None and spec.origin is not None
    path = Path(spec.origin).parent / "python" / "tflite_micro" / "sine_float.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is not in this tflite-micro build")
    return path


@needs_tflm
def test_arena_is_the_smallest_that_runs_and_flash_is_the_flatbuffer() -> None:
    import numpy as np

    from paretoedge.exporters._tflm import ARENA_STEP, _interpreter, tflm_memory

    path = _sine_model()
    data = path.read_bytes()
    mem = tflm_memory(path)
    assert mem.flash_bytes == len(data)
    assert 0 < mem.arena_bytes < 64 * 2**10
    assert _interpreter(data, mem.arena_bytes) is not None
    assert _interpreter(data, mem.arena_bytes - ARENA_STEP) is None
    # the arena is the interpreter's, not a guess: it runs the model there and computes sin
    interp = _interpreter(data, mem.arena_bytes)
    assert interp is not None
    interp.set_input(np.array([[1.0]], dtype=np.float32), 0)
    interp.invoke()
    assert float(interp.get_output(0)[0][0]) == pytest.approx(np.sin(1.0), abs=0.1)


@needs_tflm
def test_a_file_tflm_cannot_run_is_a_config_error(tmp_path: Path) -> None:
    from paretoedge.errors import ConfigError
    from paretoedge.exporters._tflm import tflm_memory

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    with pytest.raises(ConfigError, match="a TFLite flatbuffer"):
        tflm_memory(bad, max_arena=2**16)


def test_missing_tflm_and_converter_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from paretoedge.exporters._tflm import export_tflite, tflm_memory

    model = tmp_path / "m.tflite"
    model.write_bytes(b"\0" * 8)
    monkeypatch.setitem(sys.modules, "tflite_micro", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'paretoedge\[tflm\]'"):
        tflm_memory(model)
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    with pytest.raises(MissingExtraError, match="litert_torch is not installed") as err:
        export_tflite(object(), tmp_path / "x.tflite", seq_len=8, calibration=[{}])  # type: ignore[arg-type]
    assert "typing-extensions<4.13" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
@needs_tflm
@pytest.mark.skipif(
    not HAS_LITERT,
    reason="litert-torch is not installed; it cannot share an environment with apache-tvm "
    "(xdsl 0.28 pins typing-extensions<4.13): run this in an environment with "
    "litert-torch==0.10.0 torch==2.13.0 tflite-micro",
)
def test_tiny_bert_int8_flatbuffer_runs_in_tflm_and_matches_pytorch(tmp_path: Path) -> None:
    from paretoedge.exporters import check_runtime, example_feeds, torch_logits
    from paretoedge.exporters._tflm import export_tflite, tflm_memory, tflm_runner
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task
    from paretoedge.training import make_batches

    model = load_model("tiny-bert").eval()
    tokenizer = load_tokenizer("tiny-bert")
    task = load_task("sentiment")
    feeds = example_feeds(tokenizer, task.test[:64], 32)
    calibration = make_batches(tokenizer, task.train[:16], batch_size=16, max_length=32)
    path = export_tflite(model, tmp_path / "model.tflite", seq_len=32, calibration=calibration)
    mem = tflm_memory(path)
    assert mem.flash_bytes == path.stat().st_size and mem.arena_bytes > 0
    check = check_runtime(file=path.name, runtime="tflite-micro", int8=True,
                          run=tflm_runner(path, arena_bytes=mem.arena_bytes), feeds=feeds,
                          labels=[e.label for e in task.test[:64]],
                          reference=torch_logits(model, feeds))  # fmt: skip
    assert check.passed, check
