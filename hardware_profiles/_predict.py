"""Score one model on many devices: prepare the graph once, lower and cost per device.

:func:`predict` answers one device; a candidate is scored on every device of a study, and
preparing (reading, folding constants, hashing the structure) is the part that does not
depend on the device, so it is done once here (nn-Meter's "prepare once, predict many").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from paretoedge.errors import ConfigError, LoweringError

from ._cost import Prediction, cost, lower_cached
from ._graph import prepare
from ._profile import DeviceProfile, resolve_profile

__all__ = ["predict_many"]


def predict_many(
    onnx_path: Path | str,
    devices: str | DeviceProfile | Sequence[str | DeviceProfile],
    *,
    use_cache: bool = True,
) -> dict[str, Prediction]:
    """Latency, memory and energy of one ONNX file on each device, keyed by device name.

    Every device name is resolved before the file is read, so a typo fails fast.

    Raises:
        ConfigError: no device given.
        UnknownNameError: an unknown device name.
        LoweringError: the file is not a static-shape ONNX model TVM can build for a target.
    """
    items = [devices] if isinstance(devices, str | DeviceProfile) else list(devices)
    if not items:
        raise ConfigError("devices", items, "at least one device name")
    profiles = {d if isinstance(d, str) else d.name: resolve_profile(d) for d in items}
    prepared = prepare(Path(onnx_path))
    out: dict[str, Prediction] = {}
    for name, profile in profiles.items():
        lowered, hit = lower_cached(prepared, profile, use_cache=use_cache)
        if not lowered.kernels:
            raise LoweringError(f"{onnx_path}: TVM produced no kernels for this model")
        out[name] = cost(prepared, lowered, profile, cache_hit=hit)
    return out
