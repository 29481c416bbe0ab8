"""Fitting a profile's physical parameters from measured latencies, checked against proxies.

The fitter is kept apart from the predictor (as nn-Meter keeps its builder apart): it only
produces a new :class:`DeviceProfile`. It fits the model of :func:`._cost.kernel_seconds_of`
itself (not a linearisation of it), so a fitted profile predicts exactly what was fitted:

* compute throughput (one multiplier on the profile's peaks), DRAM bandwidth and cache
  bandwidth as separate parameters: compute-bound kernels inform the first, weight streaming
  of one-token matrix-vector work the second, cache-resident elementwise work the third;
* a factor per non-matmul kernel kind (and the matmul table's factor where there is one);
* re-stream bandwidth per cache level (untuned loop nests only);
* three overheads: per kernel launch, per graph operator (an eager framework's dispatch)
  and per call.

Ten to twenty rows cannot pin a dozen collinear parameters by least squares alone, so the
fit (``scipy.optimize.least_squares``, trust-region reflective with bounds) minimises a
robust loss (soft-L1 on each row's *relative* error: one outlier costs linearly, not
quadratically) plus a ridge that pulls every parameter toward the starting profile rescaled
by one global factor (rates in log space, overheads in units of a tenth of the median
latency). The ridge weight is chosen by leave-one-out cross-validation (10-fold above 10
rows), an infinite one included: the starting profile rescaled by one factor, which is what
ten noisy rows support when a free fit would only chase their noise (so the chosen fit does
not do worse in cross-validation than that rescaled prior). The same held-out predictions
are compared with three least-squares proxies fitted on the same rows (FLOPs, weight bytes,
FLOPs + operator count). When the best proxy predicts held-out rows better, the profile
blends with it (``proxy_blend``: the blend weight that minimises the held-out error,
possibly 1, i.e. the proxy alone) and the report says so.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paretoedge.errors import ConfigError, DataError

from ._cost import (
    RESTREAM_LEVELS,
    CostTerms,
    LatencyParams,
    cost_terms,
    lower_cached,
    proxy_value,
    soft_roofline,
    terms_latency_s,
)
from ._graph import prepare
from ._profile import KERNEL_KINDS, PROXY_KINDS, DeviceProfile, ProxyBlend

log = logging.getLogger(__name__)

_MIN_SCALE = 1e-3
#: Ridge weights tried by cross-validation; ``inf`` keeps the starting profile's balance,
#: rescaled by one global factor (what the measurements support when a free fit only
#: chases their noise).
_LAMBDAS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, math.inf)
_DEFAULT_LAMBDA = 1e-3
_HUBER_REL = 0.05  # relative error where the soft-L1 loss turns from quadratic to linear
_BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
_MIN_CV_ROWS = 5


@dataclass(frozen=True)
class CrossValidation:
    """Held-out (leave-one-out or k-fold) errors of the model and of each proxy.

    ``ridge`` is the one chosen (``inf``: the starting profile rescaled by one factor
    predicted best); ``mape`` values are percent; ``proxies`` maps a proxy name to (MAPE,
    Kendall tau) of its held-out predictions; ``blend_*`` say whether and how the fitted
    profile falls back to the best proxy; ``warning`` is the sentence ``calibrate`` prints
    when it does.
    """

    folds: int
    ridge: float
    model_mape: float
    model_tau: float
    proxies: dict[str, tuple[float, float]]
    best_proxy: str
    blend_weight: float
    blended_mape: float
    warning: str | None

    @property
    def kept_prior(self) -> bool:
        """Whether cross-validation kept the starting profile's balance (rescaled by one
        factor) over every free fit."""
        return math.isinf(self.ridge)


@dataclass(frozen=True)
class FitReport:
    profile: DeviceProfile
    mape: float
    kendall_tau: float
    n: int
    cv: CrossValidation | None = None


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two equally long sequences."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def mape(pred: list[float], meas: list[float]) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean([abs(p - m) / m for p, m in zip(pred, meas, strict=True)]) * 100)


def feature_rows(paths: list[Path], profile: DeviceProfile) -> list[CostTerms]:
    """The cost terms of each ONNX file on ``profile``'s target (lowered through the cache)."""
    rows = []
    for path in paths:
        prepared = prepare(path)
        lowered, _ = lower_cached(prepared, profile)
        rows.append(cost_terms(prepared, lowered, profile))
    return rows


def predict_from_features(row: CostTerms, profile: DeviceProfile) -> float:
    """Latency in ms of one model's terms under ``profile`` (the same model as predict)."""
    model_ms = terms_latency_s(row, LatencyParams.of(profile, row)) * 1e3
    blend = profile.proxy_blend
    if blend is None:
        return model_ms
    return (1 - blend.weight) * model_ms + blend.weight * proxy_value(row, blend.proxy, blend.coef)


# ---- proxies ---------------------------------------------------------------------------


def _proxy_x(rows: list[CostTerms], proxy: str) -> np.ndarray:
    ones = np.ones(len(rows))
    gflop = np.array([r.flops / 1e9 for r in rows])
    if proxy == "flops":
        return np.column_stack([ones, gflop])
    if proxy == "weight_bytes":
        return np.column_stack([ones, [r.weight_bytes / 1e6 for r in rows]])
    return np.column_stack([ones, gflop, [float(r.operators) for r in rows]])


def fit_proxy(rows: list[CostTerms], measured_ms: list[float], proxy: str) -> tuple[float, ...]:
    """Non-negative least squares of ``proxy``'s columns on relative error (ms)."""
    from scipy.optimize import nnls

    x = _proxy_x(rows, proxy)
    y = np.asarray(measured_ms, dtype=float)
    scale = np.maximum(np.abs(x).max(axis=0), 1e-12)
    coef, _ = nnls(x / scale / y[:, None], np.ones_like(y))
    return tuple(float(c) for c in coef / scale)


# ---- the model fit ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Stack:
    """All rows' kernels concatenated, so one evaluation costs a few numpy calls."""

    row: np.ndarray
    kind: np.ndarray
    compute_s: np.ndarray
    cache_bytes: np.ndarray
    dram_bytes: np.ndarray
    table_s: np.ndarray
    restream: np.ndarray
    kernels: np.ndarray
    operators: np.ndarray
    matvec: np.ndarray
    n: int
    peak_ref: float = 0.0

    @staticmethod
    def of(rows: list[CostTerms]) -> _Stack:
        return _Stack(
            row=np.concatenate([np.full(r.kernels, i) for i, r in enumerate(rows)]),
            kind=np.concatenate([r.kind for r in rows]),
            compute_s=np.concatenate([r.compute_s for r in rows]),
            cache_bytes=np.concatenate([r.cache_bytes for r in rows]),
            dram_bytes=np.concatenate([r.dram_bytes for r in rows]),
            table_s=np.concatenate([r.table_s for r in rows]),
            restream=np.concatenate([r.restream for r in rows]),
            kernels=np.array([r.kernels for r in rows], dtype=float),
            operators=np.array([r.operators for r in rows], dtype=float),
            matvec=np.concatenate([r.matvec for r in rows]),
            n=len(rows),
            peak_ref=rows[0].peak_fp32_gops if rows else 0.0,
        )

    def take(self, idx: np.ndarray) -> _Stack:
        keep = np.isin(self.row, idx)
        remap = np.full(self.n, -1)
        remap[idx] = np.arange(len(idx))
        return _Stack(
            row=remap[self.row[keep]],
            kind=self.kind[keep],
            compute_s=self.compute_s[keep],
            cache_bytes=self.cache_bytes[keep],
            dram_bytes=self.dram_bytes[keep],
            table_s=self.table_s[keep],
            restream=self.restream[keep],
            kernels=self.kernels[idx],
            operators=self.operators[idx],
            matvec=self.matvec[keep],
            n=len(idx),
            peak_ref=self.peak_ref,
        )

    def seconds(self, p: LatencyParams) -> np.ndarray:
        memory = self.cache_bytes / p.cache_bps + self.dram_bytes / p.dram_bps
        compute = self.compute_s * p.compute_scale * np.where(self.matvec, p.matvec_scale, 1.0)
        base = soft_roofline(compute, memory)
        base = np.where(np.isnan(self.table_s), base, self.table_s)
        t = base * np.asarray(p.kind_scale)[self.kind]
        t = t + self.restream @ (1.0 / np.asarray(p.restream_bps))
        per_row = np.bincount(self.row, weights=t, minlength=self.n)
        return per_row + self.kernels * p.launch_s + self.operators * p.op_s + p.call_s


@dataclass(frozen=True)
class _Space:
    """Which parameters the data can inform, and how a vector maps to :class:`LatencyParams`.

    Rates are log-multipliers on ``center`` (0 = the centre); overheads are in units of
    ``unit`` seconds (a tenth of the median latency spread over the median count).
    """

    center: LatencyParams
    log_names: tuple[str, ...]
    over_names: tuple[str, ...]
    over_unit: tuple[float, ...]

    def params(self, x: np.ndarray) -> LatencyParams:
        c = self.center
        compute, dram, cache = c.compute_scale, c.dram_bps, c.cache_bps
        matvec = c.matvec_scale
        kinds = list(c.kind_scale)
        restream = list(c.restream_bps)
        for name, v in zip(self.log_names, x[: len(self.log_names)], strict=True):
            f = math.exp(float(v))
            if name == "compute":
                compute *= f
            elif name == "matvec":
                matvec *= f
            elif name == "dram":
                dram /= f
            elif name == "cache":
                cache /= f
            elif name.startswith("kind:"):
                i = KERNEL_KINDS.index(name[5:])
                kinds[i] *= f
            else:
                j = RESTREAM_LEVELS.index(name[9:])
                restream[j] /= f
        over = dict(launch=c.launch_s, op=c.op_s, call=c.call_s)
        tail = x[len(self.log_names) :]
        for name, v, unit in zip(self.over_names, tail, self.over_unit, strict=True):
            over[name] = float(v) * unit
        return LatencyParams(
            compute_scale=compute,
            matvec_scale=matvec,
            dram_bps=dram,
            cache_bps=cache,
            kind_scale=tuple(kinds),
            restream_bps=tuple(restream),
            launch_s=over["launch"],
            op_s=over["op"],
            call_s=over["call"],
        )

    def prior(self) -> np.ndarray:
        c = self.center
        now = dict(launch=c.launch_s, op=c.op_s, call=c.call_s)
        return np.concatenate(
            [
                np.zeros(len(self.log_names)),
                [now[n] / u for n, u in zip(self.over_names, self.over_unit, strict=True)],
            ]
        )


def _space(profile: DeviceProfile, stack: _Stack, y_s: np.ndarray) -> _Space:
    base = LatencyParams.of(profile)
    if stack.peak_ref > 0:
        base = dataclasses.replace(base, compute_scale=stack.peak_ref / profile.peak_gops["fp32"])
    raw = stack.seconds(base)
    # one global factor first (robust: the median ratio), the centre of the ridge
    g = float(np.median(y_s / np.maximum(raw, 1e-12)))
    g = g if math.isfinite(g) and g > 0 else 1.0
    center = LatencyParams(
        compute_scale=base.compute_scale * g,
        matvec_scale=base.matvec_scale,
        dram_bps=base.dram_bps / g,
        cache_bps=base.cache_bps / g,
        kind_scale=base.kind_scale,
        restream_bps=tuple(b / g for b in base.restream_bps),
        launch_s=base.launch_s * g,
        op_s=base.op_s * g,
        call_s=base.call_s * g,
    )
    has_table = bool(np.any(~np.isnan(stack.table_s)))
    names = []
    if np.any(stack.compute_s > 0):
        names.append("compute")
    if np.any(stack.matvec & (stack.compute_s > 0) & np.isnan(stack.table_s)):
        names.append("matvec")
    if np.any(stack.dram_bytes > 0):
        names.append("dram")
    if np.any(stack.cache_bytes > 0):
        names.append("cache")
    for i, kind in enumerate(KERNEL_KINDS):
        present = np.any(stack.kind == i)
        # a matmul without a table is costed by compute and bandwidth alone (its factor
        # would be the same quantity twice)
        if present and (kind != "matmul" or has_table):
            names.append(f"kind:{kind}")
    for j, lv in enumerate(RESTREAM_LEVELS):
        if np.any(stack.restream[:, j] > 0):
            names.append(f"restream:{lv}")
    med = float(np.median(y_s))
    unit = (
        0.1 * med / max(1.0, float(np.median(stack.kernels))),
        0.1 * med / max(1.0, float(np.median(stack.operators))),
        0.1 * med,
    )
    return _Space(center, tuple(names), ("launch", "op", "call"), unit)


def _fit_params(space: _Space, stack: _Stack, y_s: np.ndarray, ridge: float) -> np.ndarray:
    from scipy.optimize import least_squares

    n = stack.n
    x0 = space.prior()
    n_log = len(space.log_names)
    sqrt_ridge = math.sqrt(ridge)

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = np.maximum(stack.seconds(space.params(x)), 1e-15)
        # log ratio: symmetric in over- and under-prediction, ~ relative error when small
        return np.concatenate([np.log(pred / y_s), sqrt_ridge * (x - x0)])

    def loss(z: np.ndarray) -> np.ndarray:
        # soft-L1 on the rows' relative errors (scaled by _HUBER_REL), quadratic on the ridge
        out = np.empty((3, z.size))
        d = _HUBER_REL**2
        zr = z[:n] / d
        root = np.sqrt(1 + zr)
        out[0, :n] = 2 * d * (root - 1)
        out[1, :n] = 1 / root
        out[2, :n] = -0.5 / (d * (1 + zr) ** 1.5)
        out[0, n:] = z[n:]
        out[1, n:] = 1.0
        out[2, n:] = 0.0
        return out

    lower = np.concatenate([np.full(n_log, -12.0), np.zeros(len(x0) - n_log)])
    upper = np.concatenate([np.full(n_log, 12.0), np.full(len(x0) - n_log, np.inf)])
    start = np.clip(x0, lower, upper)
    result = least_squares(
        residuals, start, bounds=(lower, upper), loss=loss, method="trf", max_nfev=400
    )
    return np.asarray(result.x)


def _folds(n: int) -> list[np.ndarray]:
    """Leave-one-out up to 10 rows, 10 interleaved folds above."""
    if n <= 10:
        return [np.array([i]) for i in range(n)]
    return [np.arange(n)[i::10] for i in range(10)]


def _solve(space: _Space, stack: _Stack, y_s: np.ndarray, ridge: float) -> LatencyParams:
    """The fitted parameters; an infinite ridge keeps the centre (the starting profile
    rescaled by one global factor)."""
    if math.isinf(ridge):
        return space.params(space.prior())
    return space.params(_fit_params(space, stack, y_s, ridge))


def _held_out(profile: DeviceProfile, stack: _Stack, y_s: np.ndarray, ridge: float) -> np.ndarray:
    pred = np.empty(stack.n)
    for test in _folds(stack.n):
        train = np.setdiff1d(np.arange(stack.n), test)
        sub = stack.take(train)
        space = _space(profile, sub, y_s[train])
        pred[test] = stack.take(test).seconds(_solve(space, sub, y_s[train], ridge))
    return pred


def _proxy_held_out(rows: list[CostTerms], y_ms: np.ndarray, proxy: str) -> np.ndarray:
    pred = np.empty(len(rows))
    for test in _folds(len(rows)):
        train = np.setdiff1d(np.arange(len(rows)), test)
        coef = fit_proxy([rows[i] for i in train], list(y_ms[train]), proxy)
        for i in test:
            pred[i] = proxy_value(rows[i], proxy, coef)
    return pred


def _mape_arr(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - y) / y) * 100)


def _robust_error(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean soft-L1 of held-out relative errors (the fit's own loss): chooses the ridge
    without letting one outlier row decide it."""
    rel = (pred - y) / y
    d = _HUBER_REL**2
    return float(np.mean(2 * d * (np.sqrt(1 + rel**2 / d) - 1)))


def _cross_validate(
    profile: DeviceProfile, rows: list[CostTerms], stack: _Stack, y_s: np.ndarray
) -> tuple[CrossValidation, np.ndarray]:
    y_ms = y_s * 1e3
    scored = []
    for ridge in _LAMBDAS:
        held = _held_out(profile, stack, y_s, ridge) * 1e3
        scored.append((_robust_error(held, y_ms), ridge, held))
    _, ridge, model_held = min(scored, key=lambda s: (s[0], -s[1]))
    model_mape = _mape_arr(model_held, y_ms)
    proxies: dict[str, tuple[float, float]] = {}
    proxy_held: dict[str, np.ndarray] = {}
    for proxy in PROXY_KINDS:
        held = _proxy_held_out(rows, y_ms, proxy)
        proxy_held[proxy] = held
        proxies[proxy] = (_mape_arr(held, y_ms), kendall_tau(list(held), list(y_ms)))
    best = min(proxies, key=lambda p: proxies[p][0])
    weight, blended = min(
        ((w, _mape_arr((1 - w) * model_held + w * proxy_held[best], y_ms)) for w in _BLEND_WEIGHTS),
        key=lambda t: (t[1], t[0]),
    )
    model_tau = kendall_tau(list(model_held), list(y_ms))
    warning = None
    if proxies[best][0] < model_mape:
        warning = (
            f"the cost model predicts held-out rows worse than the {best} proxy "
            f"(cross-validated MAPE {model_mape:.1f}% vs {proxies[best][0]:.1f}%, "
            f"tau {model_tau:.3f} vs {proxies[best][1]:.3f}); the profile blends "
            f"{weight:.2f} of the proxy in (held-out MAPE {blended:.1f}%)"
        )
    cv = CrossValidation(
        folds=len(_folds(stack.n)),
        ridge=ridge,
        model_mape=model_mape,
        model_tau=model_tau,
        proxies=proxies,
        best_proxy=best,
        blend_weight=weight if warning else 0.0,
        blended_mape=blended if warning else model_mape,
        warning=warning,
    )
    return cv, model_held


def _profile_of(
    profile: DeviceProfile, p: LatencyParams, name: str, has_table: bool
) -> DeviceProfile:
    scale = dict(profile.kernel_scale)
    for i, kind in enumerate(KERNEL_KINDS):
        if kind != "matmul" or has_table:
            scale[kind] = max(float(p.kind_scale[i]), _MIN_SCALE)
    peaks = {k: v / p.compute_scale for k, v in profile.peak_gops.items()}
    return dataclasses.replace(
        profile,
        name=name,
        peak_gops=peaks,
        memory_bandwidth_gbs=p.dram_bps / 1e9,
        cache_bandwidth_gbs=p.cache_bps / 1e9,
        kernel_scale=scale,
        restream_gbs={
            lv: min(p.restream_bps[j] / 1e9, 1e6) for j, lv in enumerate(RESTREAM_LEVELS)
        },
        matvec_compute_scale=p.matvec_scale,
        launch_overhead_us=p.launch_s * 1e6,
        op_overhead_us=p.op_s * 1e6,
        call_overhead_us=p.call_s * 1e6,
        proxy_blend=None,
    )


def fit_profile(
    profile: DeviceProfile,
    rows: list[CostTerms],
    measured_ms: list[float],
    *,
    name: str | None = None,
    note: str = "",
    cross_validate: bool = True,
) -> FitReport:
    """Fit ``profile``'s compute, bandwidth, kind factors and overheads to measurements.

    With ``cross_validate`` (and at least 5 rows) the ridge is chosen by held-out error and
    the model is checked against the FLOPs, weight-bytes and FLOPs+operators proxies fitted
    on the same rows; a profile that loses gets a ``proxy_blend`` (see the module doc).

    Raises:
        ConfigError: Fewer than two measurements, or a non-positive latency.
    """
    if len(rows) < 2:
        raise ConfigError("measurements", len(rows), "at least 2 rows")
    if len(rows) != len(measured_ms):
        raise ConfigError("measurements", len(measured_ms), f"{len(rows)} latencies")
    for m in measured_ms:
        if not (m > 0 and math.isfinite(m)):
            raise ConfigError("latency_ms", m, "a positive number")
    base = dataclasses.replace(profile, proxy_blend=None)
    y_s = np.asarray(measured_ms, dtype=float) * 1e-3
    stack = _Stack.of(rows)
    cv = None
    ridge = _DEFAULT_LAMBDA
    if cross_validate and len(rows) >= _MIN_CV_ROWS:
        cv, _ = _cross_validate(base, rows, stack, y_s)
        ridge = cv.ridge
    space = _space(base, stack, y_s)
    params = _solve(space, stack, y_s, ridge)
    if cv is not None and cv.kept_prior:
        log.warning(
            "calibration: a free fit predicts held-out rows worse than the starting profile "
            "rescaled by one factor; kept its balance (cross-validated MAPE %.1f%%)",
            cv.model_mape,
        )
    has_table = bool(np.any(~np.isnan(stack.table_s)))
    fitted = _profile_of(base, params, name or profile.name, has_table)
    if cv is not None and cv.blend_weight > 0:
        coef = fit_proxy(rows, list(measured_ms), cv.best_proxy)
        fitted = dataclasses.replace(
            fitted,
            proxy_blend=ProxyBlend(
                proxy=cv.best_proxy,  # type: ignore[arg-type]
                weight=cv.blend_weight,
                coef=coef,
                reason=cv.warning or "",
            ),
        )
        log.warning("calibration: %s", cv.warning)
    pred = [predict_from_features(r, fitted) for r in rows]
    err, tau = mape(pred, list(measured_ms)), kendall_tau(pred, list(measured_ms))
    calibration: dict[str, object] = {
        "fitted_on": len(rows),
        "fit_mape_pct": round(err, 2),
        "fit_kendall_tau": round(tau, 3),
        "note": note,
    }
    if cv is not None:
        calibration["cv_mape_pct"] = round(cv.model_mape, 2)
        calibration["cv_kendall_tau"] = round(cv.model_tau, 3)
        calibration["cv_proxies"] = {
            k: {"mape_pct": round(v[0], 2), "kendall_tau": round(v[1], 3)}
            for k, v in cv.proxies.items()
        }
        # None: the starting profile's balance was kept (an infinite ridge)
        calibration["ridge"] = None if cv.kept_prior else cv.ridge
    fitted = dataclasses.replace(fitted, calibration=calibration)
    return FitReport(fitted, err, tau, len(rows), cv)


def read_measurements(path: Path) -> list[tuple[Path, float]]:
    """Read a CSV with columns ``onnx`` (path, relative to the CSV allowed) and ``latency_ms``.

    Other columns (``paretoedge measure`` writes spread and thread count beside them) are
    ignored; lines starting with ``#`` are comments.

    Raises:
        DataError: Missing file or columns, unparsable latency, missing ONNX file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"measurements file {str(path)!r} does not exist")
    out: list[tuple[Path, float]] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            lines = [line for line in fh if not line.startswith("#")]
        if any("\x00" in line for line in lines):
            raise csv.Error("NUL byte")
    except (UnicodeDecodeError, csv.Error) as exc:
        # binary junk, invalid UTF-8 or NUL bytes: one line, not a traceback
        raise DataError(f"{path}: not a UTF-8 CSV file ({type(exc).__name__})") from None
    reader = csv.DictReader(lines)
    fields = set(reader.fieldnames or [])
    if not {"onnx", "latency_ms"} <= fields:
        raise DataError(f"{path}: needs columns onnx,latency_ms; found {sorted(fields) or 'none'}")
    for line, row in enumerate(reader, start=2):
        onnx_path = Path(row["onnx"])
        if not onnx_path.is_absolute():
            onnx_path = path.parent / onnx_path
        if not onnx_path.is_file():
            raise DataError(f"{path}:{line}: ONNX file {row['onnx']!r} does not exist")
        try:
            latency = float(row["latency_ms"])
        except ValueError:
            raise DataError(
                f"{path}:{line}: latency_ms={row['latency_ms']!r} is not a number"
            ) from None
        if not (latency > 0 and math.isfinite(latency)):
            raise DataError(f"{path}:{line}: latency_ms={latency} must be positive and finite")
        out.append((onnx_path, latency))
    if len(out) < 2:
        raise DataError(f"{path}: needs at least 2 measured models, found {len(out)}")
    return out
