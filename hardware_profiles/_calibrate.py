"""Fitting a profile's ``kernel_scale`` and overheads from measured latencies.

The fitter is kept apart from the predictor (as nn-Meter keeps its builder apart): it only
produces a new :class:`DeviceProfile`. The model is linear in its unknowns::

    latency = sum_kind s_kind * roofline_kind + n_kernels * launch + call

so the fit is a non-negative least squares on relative errors (each row divided by its
measured latency), which keeps small and large models equally important.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paretoedge.errors import ConfigError, DataError

from ._cost import RESTREAM_LEVELS, features, lower_cached
from ._graph import prepare
from ._profile import KERNEL_KINDS, DeviceProfile

_MIN_SCALE = 1e-3


@dataclass(frozen=True)
class FitReport:
    profile: DeviceProfile
    mape: float
    kendall_tau: float
    n: int


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two equally long sequences."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def mape(pred: list[float], meas: list[float]) -> float:
    """Mean absolute percentage error, in percent."""
    return float(np.mean([abs(p - m) / m for p, m in zip(pred, meas, strict=True)]) * 100)


def feature_rows(paths: list[Path], profile: DeviceProfile) -> list[dict[str, float]]:
    rows = []
    for path in paths:
        prepared = prepare(path)
        lowered, _ = lower_cached(prepared, profile)
        rows.append(features(lowered, prepared.weights, profile))
    return rows


def predict_from_features(row: dict[str, float], profile: DeviceProfile) -> float:
    """Latency in ms of a feature row under ``profile``'s factors (same model as predict)."""
    s = sum(row[k] * profile.kernel_scale[k] for k in KERNEL_KINDS)
    s += sum(row[f"restream_{lv}"] / profile.restream_gbs[lv] for lv in RESTREAM_LEVELS)
    s += row["kernels"] * profile.launch_overhead_us * 1e-6 + profile.call_overhead_us * 1e-6
    return s * 1e3


def fit_profile(
    profile: DeviceProfile,
    rows: list[dict[str, float]],
    measured_ms: list[float],
    *,
    name: str | None = None,
    note: str = "",
) -> FitReport:
    """Fit ``kernel_scale``, launch and call overhead of ``profile`` to measurements.

    Raises:
        ConfigError: Fewer than two measurements, or a non-positive latency.
    """
    from scipy.optimize import nnls

    if len(rows) < 2:
        raise ConfigError("measurements", len(rows), "at least 2 rows")
    for m in measured_ms:
        if not (m > 0 and math.isfinite(m)):
            raise ConfigError("latency_ms", m, "a positive number")
    levels = [f"restream_{lv}" for lv in RESTREAM_LEVELS]
    cols = [*KERNEL_KINDS, "kernels", "call", *levels]
    # units: ms per (roofline ms), ms per us of overhead, ms per (GB / (GB/s))
    a = np.array(
        [
            [r[k] * 1e3 for k in KERNEL_KINDS]
            + [r["kernels"] * 1e-3, 1e-3]
            + [r[c] * 1e3 for c in levels]
            for r in rows
        ]
    )
    y = np.array(measured_ms)
    # kinds without any work in the data set cannot be fitted; they keep the prior
    active = [j for j in range(len(cols)) if np.any(a[:, j] > 0)]
    x_active, _ = nnls(a[:, active] / y[:, None], np.ones_like(y))
    x = np.zeros(len(cols))
    x[active] = x_active
    scale = dict(profile.kernel_scale)
    for j, kind in enumerate(KERNEL_KINDS):
        if j in active:
            scale[kind] = max(float(x[j]), _MIN_SCALE)
    restream = dict(profile.restream_gbs)
    for j, lv in enumerate(RESTREAM_LEVELS, start=len(KERNEL_KINDS) + 2):
        if j in active:
            # a level whose re-reads cost nothing measurable gets a very high bandwidth
            restream[lv] = 1.0 / float(x[j]) if x[j] > 1e-6 else 1e6
    fitted = dataclasses.replace(
        profile,
        name=name or profile.name,
        kernel_scale=scale,
        restream_gbs=restream,
        launch_overhead_us=float(x[len(KERNEL_KINDS)]),
        call_overhead_us=float(x[len(KERNEL_KINDS) + 1]),
    )
    pred = [predict_from_features(r, fitted) for r in rows]
    err, tau = mape(pred, list(y)), kendall_tau(pred, list(y))
    fitted = dataclasses.replace(
        fitted,
        calibration={
            "fitted_on": len(rows),
            "fit_mape_pct": round(err, 2),
            "fit_kendall_tau": round(tau, 3),
            "note": note,
        },
    )
    return FitReport(fitted, err, tau, len(rows))


def read_measurements(path: Path) -> list[tuple[Path, float]]:
    """Read a CSV with columns ``onnx`` (path, relative to the CSV allowed) and ``latency_ms``.

    Raises:
        DataError: Missing file or columns, unparsable latency, missing ONNX file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"measurements file {str(path)!r} does not exist")
    out: list[tuple[Path, float]] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or [])
        if not {"onnx", "latency_ms"} <= fields:
            raise DataError(
                f"{path}: needs columns onnx,latency_ms; found {sorted(fields) or 'none'}"
            )
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
            if not latency > 0:
                raise DataError(f"{path}:{line}: latency_ms={latency} must be positive")
            out.append((onnx_path, latency))
    if len(out) < 2:
        raise DataError(f"{path}: needs at least 2 measured models, found {len(out)}")
    return out
