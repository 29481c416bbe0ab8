"""Device profiles, lowering through TVM and the latency/memory/energy model.

Importing this package does not import TVM, torch or onnxruntime; they load when a model is
lowered, measured or exported.
"""

from __future__ import annotations

from ._cache import cache_dir
from ._calibrate import FitReport, fit_profile, kendall_tau, mape, read_measurements
from ._cost import KernelCost, Prediction, cost, features, lower_cached, predict
from ._graph import PreparedGraph, WeightInfo, prepare, with_weight_facts
from ._lower import KernelRecord, LoweredGraph, kernel_kind, lower
from ._measure import Measurement, TvmRunner, example_inputs, measure_ort, measure_tvm
from ._predict import predict_many
from ._profile import (
    KERNEL_KINDS,
    DeviceProfile,
    list_profiles,
    load_profile,
    parse_profile,
    profile_names,
    resolve_profile,
    write_profile,
)

__all__ = [
    "KERNEL_KINDS",
    "DeviceProfile",
    "FitReport",
    "KernelCost",
    "KernelRecord",
    "LoweredGraph",
    "Measurement",
    "Prediction",
    "PreparedGraph",
    "TvmRunner",
    "WeightInfo",
    "cache_dir",
    "cost",
    "example_inputs",
    "features",
    "fit_profile",
    "kendall_tau",
    "kernel_kind",
    "list_profiles",
    "load_profile",
    "lower",
    "lower_cached",
    "mape",
    "measure_ort",
    "measure_tvm",
    "parse_profile",
    "predict",
    "predict_many",
    "prepare",
    "profile_names",
    "read_measurements",
    "resolve_profile",
    "with_weight_facts",
    "write_profile",
]
