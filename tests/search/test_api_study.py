"""The public Python API (``paretoedge.create_study`` & co.) over the real controller and
storage, with the synthetic evaluator standing in for compression and hardware models."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _synthetic import SyntheticEvaluator, synthetic_config

import paretoedge
from paretoedge.errors import ConfigError, NotFoundError


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API writes artifacts under PARETOEDGE_HOME: keep them out of the session's home,
    which other suites check stays empty."""
    from paretoedge.settings import get_settings

    monkeypatch.setenv("PARETOEDGE_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _create(tmp_path: Path, **kwargs: object) -> paretoedge.Study:
    return paretoedge.create_study(
        synthetic_config(),
        storage=f"sqlite:///{tmp_path / 'api.db'}",
        evaluator_factory=SyntheticEvaluator,
        **kwargs,  # type: ignore[arg-type]
    )


def test_create_optimize_front_and_reload(tmp_path: Path) -> None:
    study = _create(tmp_path, study_name="api")
    assert study.name == "api"
    assert study.trials == ()  # created, nothing run: baselines are only enqueued
    summary = study.optimize(n_trials=5)
    assert summary.trials_complete == 5
    assert len(study.trials) == 5
    front = study.front("dev-a")
    assert front and all(e.rank == 0 for e in front)
    assert [e.metrics.latency_ms for e in front] == sorted(e.metrics.latency_ms for e in front)
    # the budget counts stored trials: the rest of the 8, then nothing
    again = paretoedge.load_study(
        "api", storage=f"sqlite:///{tmp_path / 'api.db'}", evaluator_factory=SyntheticEvaluator
    )
    assert again.optimize().trials_complete == 8
    assert again.optimize().trials_complete == 8
    assert again.config == study.config


def test_add_device_and_filters(tmp_path: Path) -> None:
    study = _create(tmp_path)
    study.optimize(n_trials=4)
    summary = study.add_device("rpi4")  # a real profile name; the evaluator is synthetic
    assert "rpi4" in summary.fronts
    assert "rpi4" in study.devices
    fast = study.front("rpi4", max_latency_ms=1e9, sort="accuracy")
    assert [e.candidate.accuracy for e in fast] == sorted(
        (e.candidate.accuracy for e in fast), reverse=True
    )
    with pytest.raises(ConfigError, match="filters"):
        study.front("dev-a", colour="red")


def test_joining_with_another_config_is_refused(tmp_path: Path) -> None:
    _create(tmp_path)
    with pytest.raises(ConfigError):
        paretoedge.create_study(
            synthetic_config(seed=4),
            storage=f"sqlite:///{tmp_path / 'api.db'}",
            evaluator_factory=SyntheticEvaluator,
        )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"n_trials": 0}, "n_trials"), ({"timeout": -1.0}, "timeout"), ({"backend": "dask"}, "")],
)
def test_optimize_rejects_bad_arguments(tmp_path: Path, kwargs: dict, field: str) -> None:
    study = _create(tmp_path)
    with pytest.raises(ConfigError, match=field):
        study.optimize(**kwargs)
    assert study.trials == ()


def test_load_unknown_study_and_bad_storage(tmp_path: Path) -> None:
    _create(tmp_path)
    with pytest.raises(NotFoundError):
        paretoedge.load_study("nope", storage=f"sqlite:///{tmp_path / 'api.db'}")
    with pytest.raises(ConfigError, match="storage"):
        paretoedge.load_study("synthetic", storage="")


def test_overrides_apply_to_a_config_object(tmp_path: Path) -> None:
    study = _create(tmp_path, overrides=["budget.trials=3"])
    assert study.config.budget.trials == 3
    assert study.optimize().trials_complete == 3


def test_import_loads_no_heavy_stack() -> None:
    code = (
        "import sys, paretoedge; paretoedge.create_study; paretoedge.Study;"
        "heavy = [m for m in ('torch', 'tvm', 'ray', 'optuna', 'sqlalchemy') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
