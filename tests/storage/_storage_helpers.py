"""Shared data of the storage tests (imported by test modules and by the worker script)."""

from __future__ import annotations

import os
from typing import Any

PG_HOST = os.environ.get("PARETOEDGE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PARETOEDGE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("PARETOEDGE_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("PARETOEDGE_TEST_PG_DB", "test")

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


def expected_values(trial: int) -> dict[str, Any]:
    """What the concurrency workers write for a trial (the same in every process)."""
    return {
        "spec": {"quant.bits": [4, 8, 16, 32][trial % 4], "prune.sparsity": (trial % 7) / 10},
        "accuracy": 0.5 + (trial * 37 % 100) / 250,
        "size_bytes": 10_000 + trial * 313,
        "rpi4": 1.0 + (trial * 53 % 97) / 3,
        "jetson": 0.1 + (trial * 29 % 89) / 30,
    }
