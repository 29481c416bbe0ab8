"""Shared data of the storage tests (imported by test modules and by the worker script)."""

from __future__ import annotations

from typing import Any

OBJECTIVES = [
    {"name": "accuracy", "device": None, "direction": "maximize"},
    {"name": "latency_ms", "device": "rpi4", "direction": "minimize"},
    {"name": "latency_ms", "device": "jetson", "direction": "minimize"},
]
DEVICES = ["rpi4", "jetson"]


def study_kwargs(name: str = "s1", **over: Any) -> dict[str, Any]:
    """Arguments of create_study for a small realistic study."""
    kwargs: dict[str, Any] = {
        "name": name,
        "config": {
            "model": "tiny-bert",
            "task": "sentiment",
            "space": {"prune.sparsity": [0.0, 0.9], "quant.bits": [4, 8, 16, 32]},
            "budget": {"trials": 20},
            "lr": 5e-5,
        },
        "devices": list(DEVICES),
        "objectives": list(OBJECTIVES),
        "seed": 7,
    }
    kwargs.update(over)
    return kwargs
