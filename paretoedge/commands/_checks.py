"""Checks of the flags of ``finetune`` and ``compress``, run before any model is loaded.

They reuse the study file's rules (:mod:`paretoedge.search._names`, the seed range), so a
model, task or seed the CLI refuses for a study is refused here with the same message.
"""

from __future__ import annotations

import math

from paretoedge.errors import ConfigError

#: Longest fine-tune, in epochs.
MAX_EPOCHS = 1000.0


def check_model_task(model: str, task: str, *, model_field: str) -> None:
    """The model is bundled or a local HF directory, the task bundled or a data file."""
    from paretoedge.search._names import check_model, check_task

    check_model(model, field=model_field)
    check_task(task, field="--task")


def check_seed(seed: int) -> int:
    """A seed in the range a study accepts."""
    from paretoedge.search._config import SEED_MAX

    if not 0 <= seed <= SEED_MAX:
        raise ConfigError("--seed", seed, f"an integer in [0, {SEED_MAX}]")
    return seed


def check_epochs(epochs: float) -> float:
    """A finite, positive number of epochs."""
    if not (math.isfinite(epochs) and 0 < epochs <= MAX_EPOCHS):
        raise ConfigError("--epochs", epochs, f"a number > 0 and <= {MAX_EPOCHS:g}")
    return epochs


def check_limit(limit: int | None) -> int | None:
    """A positive number of examples per split, or none."""
    if limit is not None and limit < 1:
        raise ConfigError("--limit", limit, "an integer >= 1")
    return limit
