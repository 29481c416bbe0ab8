"""Ground truth on this machine: the TVM-built module is correct and the host profiles
predict its measured latency within the stated error."""

from __future__ import annotations

import numpy as np
import pytest

from paretoedge.hardware_profiles import (
    DeviceProfile,
    TvmRunner,
    example_inputs,
    fit_profile,
    load_profile,
    measure_ort,
    measure_tvm,
)
from paretoedge.hardware_profiles._calibrate import feature_rows, predict_from_features
from paretoedge.hardware_profiles._measure import ort_session

pytestmark = pytest.mark.tvm

# Stated error of a single prediction, against the fastest of the repeats (the statistic the
# host profiles are fitted to). The shipped host profiles describe the machine they were fitted
# on (bench/latency_fidelity.py: held-out MAPE 1.9 % TVM default, 6.7 % onnxruntime there),
# and a session's machine changes (the same "AMD EPYC" string measured TVM 2.5x slower than
# that fit on 2026-11-24). So the test does what a user does on a new machine: it measures a
# few training shapes, fits the profile to them (``fit_profile``, what ``calibrate`` runs) and
# checks the held-out shapes below against that fit (onnxruntime within 1.12x in three fits
# on a quiet run here). The factors of 2 leave room for a shared, loaded CI machine.
FACTOR_ORT = 2.0
FACTOR_TVM = 2.0
#: Shapes measured to fit the profiles; none of them is a held-out shape of the test.
TRAIN_SHAPES = (
    {"layers": 1},
    {"layers": 3, "ffn": 64},
    {"hidden": 96, "heads": 4, "ffn": 192},
    {"seq_len": 48},
    {"hidden": 32, "heads": 2, "ffn": 64, "seq_len": 64},
    {"layers": 2, "hidden": 128, "heads": 4, "ffn": 128, "seq_len": 16},
)


def test_tvm_module_matches_onnxruntime_and_pytorch(make_onnx) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    path = make_onnx(seq_len=16, seed=3)
    runner = TvmRunner(path, "host")
    feeds = example_inputs(runner.prepared)
    tvm_out = runner.run(feeds)[0]
    ort_out = ort_session(path).run(None, feeds)[0]
    np.testing.assert_allclose(tvm_out, ort_out, rtol=1e-4, atol=1e-5)

    torch.manual_seed(3)
    config = BertConfig(
        vocab_size=1000,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=128,
        attn_implementation="eager",
    )
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    np.testing.assert_allclose(tvm_out, ref, rtol=1e-4, atol=1e-5)


#: Shapes the profiles are checked on, never fitted to.
HELD_OUT = {
    "tiny": {},
    "L1-S64": {"layers": 1, "seq_len": 64},
    "H128": {"hidden": 128, "heads": 4, "ffn": 256},
}
#: Rounds over all shapes for the onnxruntime timings. A model here runs in ~0.1 ms, so one
#: call of ``measure_ort`` lasts a few ms and a thread pool still spinning from the previous
#: step (torch's after the exports, TVM's after its timings) can double it: measured 1.7-1.8x
#: slower for the first shapes timed after the exports. Each shape's fastest round is kept,
#: training and held-out shapes alike, so such a burst biases neither side.
ORT_ROUNDS = 3


@pytest.fixture(scope="module")
def timings(make_onnx) -> dict[str, dict]:
    """Paths and fastest latencies (ms) of the training and held-out shapes, per runtime."""
    paths = {f"train{i}": make_onnx(**shape) for i, shape in enumerate(TRAIN_SHAPES)}
    paths.update({name: make_onnx(**shape) for name, shape in HELD_OUT.items()})
    tvm = {name: measure_tvm(p, repeats=5).min_ms for name, p in paths.items()}
    ort = {name: float("inf") for name in paths}
    for _ in range(ORT_ROUNDS):
        for name, p in paths.items():
            ort[name] = min(ort[name], measure_ort(p, repeats=30).min_ms)
    return {"paths": paths, "host": tvm, "host-ort": ort}


@pytest.fixture(scope="module")
def fitted_host(timings: dict[str, dict]) -> dict[str, DeviceProfile]:
    """``host`` and ``host-ort`` fitted on this machine's timings of :data:`TRAIN_SHAPES`."""
    names = [f"train{i}" for i in range(len(TRAIN_SHAPES))]
    paths = [timings["paths"][n] for n in names]
    fitted = {}
    for device in ("host", "host-ort"):
        profile = load_profile(device)
        rows = feature_rows(paths, profile)
        ms = [timings[device][n] for n in names]
        fitted[device] = fit_profile(profile, rows, ms, cross_validate=False).profile
    return fitted


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HELD_OUT))
def test_host_prediction_within_stated_error(
    name: str, timings: dict[str, dict], fitted_host: dict[str, DeviceProfile]
) -> None:
    path = timings["paths"][name]
    for device, factor in (("host", FACTOR_TVM), ("host-ort", FACTOR_ORT)):
        (row,) = feature_rows([path], fitted_host[device])
        predicted = predict_from_features(row, fitted_host[device])
        measured = timings[device][name]
        assert 1 / factor < predicted / measured < factor, (device, predicted, measured)
