"""The fit recovers a device's physical parameters from few, collinear, noisy rows with
outliers, and falls back to a proxy when the cost model loses on held-out rows.

Rows are built as cost terms directly (what lowering produces), so no TVM build is needed.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from paretoedge.errors import DeviceError
from paretoedge.hardware_profiles import fit_profile, load_profile, parse_profile, write_profile
from paretoedge.hardware_profiles._calibrate import predict_from_features
from paretoedge.hardware_profiles._cost import (
    CostTerms,
    LatencyParams,
    terms_latency_s,
)
from paretoedge.hardware_profiles._profile import KERNEL_KINDS

MATMUL, REDUCTION, ELEMENTWISE = (
    KERNEL_KINDS.index(k) for k in ("matmul", "reduction", "elementwise")
)


def _model(
    rng: np.random.Generator, *, decoder: bool, peak: float, resident: bool = False
) -> CostTerms:
    """A transformer-like kernel list: per layer 6 matmuls, 2 reductions, 6 elementwise.

    Encoders (sequence 16-128) are compute-bound; decoder steps (one token) move their
    weights from DRAM, or from the caches when they are ``resident``. Operators are ~1.3 x
    kernels (collinear with the kernel count).
    """
    layers = int(rng.integers(1, 7))
    hidden = int(rng.choice([96, 128] if resident else [128, 256, 384, 512]))
    in_dram = decoder and not resident
    tokens = 1 if decoder else int(rng.choice([16, 32, 64, 128]))
    kind, compute, cache, dram = [], [], [], []
    weight_total = 0.0
    for _ in range(layers):
        for k_in, n_out in [(hidden, hidden)] * 4 + [(hidden, 4 * hidden), (4 * hidden, hidden)]:
            flops = 2.0 * tokens * k_in * n_out
            wbytes = 4.0 * k_in * n_out
            weight_total += wbytes
            kind.append(MATMUL)
            compute.append(flops / peak)
            cache.append((0.0 if in_dram else wbytes) + 4.0 * tokens * (k_in + n_out))
            dram.append(wbytes if in_dram else 0.0)
        for _ in range(2):
            kind.append(REDUCTION)
            compute.append(5.0 * tokens * hidden / peak)
            cache.append(8.0 * tokens * hidden)
            dram.append(0.0)
        for _ in range(6):
            kind.append(ELEMENTWISE)
            compute.append(tokens * hidden / peak)
            cache.append(12.0 * tokens * hidden)
            dram.append(0.0)
    if decoder:  # the output projection over a large vocabulary
        vocab = int(rng.choice([4000, 8000] if resident else [8000, 16000, 32000]))
        kind.append(MATMUL)
        compute.append(2.0 * hidden * vocab / peak)
        cache.append(0.0 if in_dram else 4.0 * hidden * vocab)
        dram.append(4.0 * hidden * vocab if in_dram else 0.0)
        weight_total += 4.0 * hidden * vocab
    n = len(kind)
    flops = float(sum(c * peak for c in compute))
    return CostTerms(
        kind=np.array(kind),
        compute_s=np.array(compute),
        cache_bytes=np.array(cache),
        dram_bytes=np.array(dram),
        table_s=np.full(n, np.nan),
        restream=np.zeros((n, 3)),
        operators=int(round(1.3 * n + rng.integers(0, 3))),
        flops=flops,
        weight_bytes=weight_total,
        matvec=np.array([decoder and kd == MATMUL for kd in kind]),
        peak_fp32_gops=peak / 1e9,
    )


def _rows(seed: int, n: int, peak: float) -> list[CostTerms]:
    rng = np.random.default_rng(seed)
    return [_model(rng, decoder=i % 4 in (0, 2), resident=i % 4 == 2, peak=peak) for i in range(n)]


TRUTH = dict(compute=3.0, dram_gbs=4.0, cache_gbs=8.0, launch_us=2.0, op_us=6.0, call_us=50.0)


def _truth_params(profile) -> LatencyParams:  # noqa: ANN001
    return dataclasses.replace(
        LatencyParams.of(profile),
        compute_scale=TRUTH["compute"],
        dram_bps=TRUTH["dram_gbs"] * 1e9,
        cache_bps=TRUTH["cache_gbs"] * 1e9,
        launch_s=TRUTH["launch_us"] * 1e-6,
        op_s=TRUTH["op_us"] * 1e-6,
        call_s=TRUTH["call_us"] * 1e-6,
    )


@pytest.mark.parametrize("n", [12, 20], ids=["12-rows", "20-rows"])
def test_fit_recovers_parameters_despite_noise_and_outliers(n: int) -> None:
    start = load_profile("rpi4")  # a wrong prior: other peaks, bandwidth, overheads
    peak = start.peak_gops["fp32"] * 1e9
    rows = _rows(1, n, peak)
    truth = _truth_params(start)
    rng = np.random.default_rng(7)
    measured = [terms_latency_s(r, truth) * 1e3 * (1 + rng.normal(0, 0.02)) for r in rows]
    measured[2] *= 1.6  # two outliers: a row timed under load, one mis-recorded
    measured[5] *= 0.6
    report = fit_profile(start, rows, measured, name="fitted")
    got = report.profile
    assert got.peak_gops["fp32"] == pytest.approx(
        start.peak_gops["fp32"] / TRUTH["compute"], rel=0.15
    )
    assert got.memory_bandwidth_gbs == pytest.approx(TRUTH["dram_gbs"], rel=0.15)
    assert got.cache_gbs == pytest.approx(TRUTH["cache_gbs"], rel=0.25)
    # kernels and operators are nearly collinear: their joint cost per layer is what the rows
    # determine (the split between the two is the ridge's)
    per_kernel = got.launch_overhead_us + 1.3 * got.op_overhead_us
    assert per_kernel == pytest.approx(TRUTH["launch_us"] + 1.3 * TRUTH["op_us"], rel=0.2)
    # held-out rows of the same device are predicted within a few percent
    fresh = _rows(99, 15, peak)
    errs = [
        abs(predict_from_features(r, got) / (terms_latency_s(r, truth) * 1e3) - 1) for r in fresh
    ]
    assert float(np.mean(errs)) < 0.05
    assert report.cv is not None and report.cv.warning is None
    assert report.cv.model_mape < min(v[0] for v in report.cv.proxies.values())


def test_proxy_check_fires_when_the_model_loses() -> None:
    """A device whose time follows FLOPs while the model's terms do not: the held-out check
    must say so and the profile must fall back to the proxy."""
    start = load_profile("host-ort")
    peak = start.peak_gops["fp32"] * 1e9
    rows = _rows(3, 16, peak)
    rng = np.random.default_rng(0)
    # scramble the model's view of each row (its terms belong to another model)
    scrambled = [rows[i] for i in rng.permutation(len(rows))]
    measured = [0.05 + 2.0 * r.flops / 1e9 for r in rows]
    report = fit_profile(start, scrambled, measured)
    assert report.cv is not None and report.cv.warning is not None
    assert "proxy" in report.cv.warning and report.cv.best_proxy in report.cv.warning
    blend = report.profile.proxy_blend
    assert blend is not None and blend.weight > 0
    fitted_err = np.mean(
        [
            abs(predict_from_features(r, report.profile) / m - 1)
            for r, m in zip(scrambled, measured, strict=True)
        ]
    )
    plain = dataclasses.replace(report.profile, proxy_blend=None)
    plain_err = np.mean(
        [
            abs(predict_from_features(r, plain) / m - 1)
            for r, m in zip(scrambled, measured, strict=True)
        ]
    )
    assert fitted_err < plain_err


def test_blended_profile_round_trips(tmp_path) -> None:  # noqa: ANN001
    start = load_profile("host-ort")
    rows = _rows(3, 16, start.peak_gops["fp32"] * 1e9)
    rng = np.random.default_rng(0)
    scrambled = [rows[i] for i in rng.permutation(len(rows))]
    report = fit_profile(start, scrambled, [0.05 + 2.0 * r.flops / 1e9 for r in rows], name="b")
    path = write_profile(report.profile, tmp_path / "b.yaml")
    back = parse_profile(path.read_text(), str(path))
    assert back.proxy_blend == report.profile.proxy_blend
    assert back.op_overhead_us == pytest.approx(report.profile.op_overhead_us)
    assert back.calibration["cv_proxies"].keys() == {"flops", "weight_bytes", "flops_ops"}


def test_a_right_prior_is_kept_when_free_fits_only_chase_noise() -> None:
    """Ten rows timed on a device the starting profile describes up to one factor, with 15 %
    noise: every free fit predicts held-out rows worse than the profile rescaled, so
    cross-validation keeps its balance (an infinite ridge) and says so; predictions are the
    starting profile's times one factor."""
    start = load_profile("host-ort")
    peak = start.peak_gops["fp32"] * 1e9
    prior = LatencyParams.of(start)
    rows = _rows(0, 10, peak)
    rng = np.random.default_rng(100)
    measured = [
        terms_latency_s(r, prior) * 1e3 * 1.8 * float(np.exp(rng.normal(0, 0.15))) for r in rows
    ]
    report = fit_profile(start, rows, measured)
    assert report.cv is not None and report.cv.kept_prior
    assert report.profile.calibration["ridge"] is None
    free = dataclasses.replace(report.profile, proxy_blend=None)
    ratios = [
        predict_from_features(r, free) / (terms_latency_s(r, prior) * 1e3)
        for r in _rows(50, 12, peak)
    ]
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-6)
    assert 1.5 < ratios[0] < 2.2


def test_small_sets_skip_cross_validation() -> None:
    start = load_profile("host-ort")
    rows = _rows(5, 4, start.peak_gops["fp32"] * 1e9)
    truth = _truth_params(start)
    report = fit_profile(start, rows, [terms_latency_s(r, truth) * 1e3 for r in rows])
    assert report.cv is None and report.profile.proxy_blend is None


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ("op_overhead_us: -1", "op_overhead_us"),
        ("cache_bandwidth_gbs: 0", "cache_bandwidth_gbs"),
        ("matvec_compute_scale: 0", "matvec_compute_scale"),
        ("proxy_blend: {proxy: flops, weight: 0.5, coef: [1.0, 2.0, 3.0]}", "proxy_blend"),
        ("proxy_blend: {proxy: macs, weight: 0.5, coef: [1.0, 2.0]}", "proxy_blend.proxy"),
        ("proxy_blend: {proxy: flops, weight: 1.5, coef: [1.0, 2.0]}", "proxy_blend.weight"),
        ("runtime: tflite", "runtime"),
    ],
    ids=[
        "op-overhead",
        "cache-bw",
        "matvec",
        "blend-coef",
        "blend-proxy",
        "blend-weight",
        "runtime",
    ],
)
def test_new_profile_fields_are_validated(patch: str, field: str) -> None:
    from importlib import resources

    text = (
        resources.files("paretoedge.hardware_profiles") / "devices" / "host-torch.yaml"
    ).read_text()
    key = patch.split(":")[0]
    lines = [line for line in text.splitlines() if not line.startswith(f"{key}:")]
    with pytest.raises(DeviceError, match=rf"invalid field {field}\b"):
        parse_profile("\n".join([*lines, patch]), "x.yaml")
