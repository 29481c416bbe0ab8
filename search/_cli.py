"""``paretoedge search``, ``resume`` and ``add-device``.

Heavy imports (torch, Optuna, SQLAlchemy) happen inside the command bodies so that
``paretoedge --help`` stays fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from paretoedge._describe import collapse_twins, describe_spec

if TYPE_CHECKING:
    from paretoedge._study import Study
    from paretoedge.search._runner import SearchSummary

_STORAGE_HELP = "Database URL (default: PARETOEDGE_STORAGE or sqlite:///paretoedge.db)."


def _storage_url(storage: str | None) -> str:
    from paretoedge.commands._storage import storage_url

    return storage_url(storage)


def _fronts_json(study: Study, summary: SearchSummary) -> dict[str, Any]:
    from paretoedge.storage import get_front

    return {
        "study": summary.study,
        "storage": summary.storage,
        "trials_complete": summary.trials_complete,
        "trials_failed": summary.trials_failed,
        "trainings_saved": summary.trainings_saved,
        "fronts": {
            d: get_front(study.storage, study=summary.study, device=d, limit=1000).to_dict()[
                "entries"
            ]
            for d in summary.fronts
        },
    }


def print_fronts(study: Study, summary: SearchSummary, *, as_json: bool) -> None:
    """One table per device: the front members, fastest first."""
    from rich.console import Console
    from rich.table import Table

    from paretoedge.storage import get_front

    if as_json:
        typer.echo(json.dumps(_fronts_json(study, summary), indent=2, default=str))
        return
    console = Console()
    for device in summary.fronts:
        page = get_front(
            study.storage, study=summary.study, device=device, limit=1000, baselines=True
        )
        on_front = sum(e.rank == 0 for e in page.entries)
        table = Table(title=f"Pareto front on {device} ({on_front} candidates)")
        for col in (
            "trial",
            "candidate",
            "val acc",
            "test acc",
            "latency ms",
            "size MB",
            "feasible",
        ):
            table.add_column(col, justify="left" if col == "candidate" else "right")
        for e, twins in collapse_twins(page.entries):
            c, m = e.candidate, e.metrics
            what = c.baseline_name or describe_spec(c.flat)
            if e.rank:  # a baseline listed for reference
                what = f"{what} (baseline, dominated)"
            if twins:
                what += f" (also trials {', '.join(map(str, twins))})"
            table.add_row(
                str(c.trial_number),
                what or "teacher",
                f"{c.accuracy:.3f}" if c.accuracy is not None else "-",
                f"{c.test_accuracy:.3f}" if c.test_accuracy is not None else "-",
                f"{m.latency_ms:.2f}",
                f"{(c.size_bytes or 0) / 1e6:.2f}",
                "yes" if m.feasible else "no",
            )
        console.print(table)
    console.print(
        f"study [bold]{summary.study}[/]: {summary.trials_complete} complete, "
        f"{summary.trials_failed} failed trials; "
        f"{summary.trainings_saved} screened out before training (trainings saved); "
        f"database {summary.storage}"
    )


def _backend(name: str, address: str | None, workers: int | None) -> Any:
    """The backend object for ``--backend`` (Ray options only make sense with ray)."""
    from paretoedge.errors import ConfigError
    from paretoedge.search._backends import get_backend

    if name != "ray":
        if address is not None:
            raise ConfigError("--address", address, "only with --backend ray")
        if workers is not None:
            raise ConfigError("--workers", workers, "only with --backend ray")
        return get_backend(name)
    return get_backend(name, address=address, workers=workers)


#: Longest ``--timeout`` (a year), as ``budget.timeout_s`` of a study file.
TIMEOUT_MAX_S = 366 * 86400


def _check_timeout(timeout: float | None) -> float | None:
    """``--timeout`` if it is a finite number of seconds in (0, :data:`TIMEOUT_MAX_S`]."""
    import math

    from paretoedge.errors import ConfigError

    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= TIMEOUT_MAX_S):
        raise ConfigError("--timeout", timeout, f"seconds, a number > 0 and <= {TIMEOUT_MAX_S}")
    return timeout


def _preflight_task(task: str) -> None:
    """Read a user's task file once before the study is stored, so that a malformed file
    is refused up front (bundled tasks are known good)."""
    from paretoedge.tasks import BUNDLED_TASKS, load_task

    if task not in BUNDLED_TASKS:
        load_task(task, limit=1)


def _run_interruptible(study: Study, **kwargs: Any) -> SearchSummary:
    """Optimize; on Ctrl-C say how to continue and exit 130 instead of a traceback."""
    try:
        return study.optimize(**kwargs)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: continue with paretoedge resume {study.name} "
            f"--storage {study.storage.url}",
            err=True,
        )
        raise typer.Exit(130) from None


def register(app: typer.Typer) -> None:
    """Add ``search``, ``resume`` and ``add-device`` to ``app``."""

    @app.command("search")
    def search_cmd(
        config: str = typer.Argument(
            ..., help="Study YAML file, or a bundled study name (quickstart)."
        ),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        study: str | None = typer.Option(
            None, "--study", help="Study name (default: config name)."
        ),
        trials: int | None = typer.Option(
            None, "--trials", min=1, max=1_000_000, help="Override budget.trials."
        ),
        timeout: float | None = typer.Option(None, "--timeout", help="Seconds to run."),
        overrides: list[str] = typer.Option(  # noqa: B008
            [], "--set", help="Override any config field: KEY=VALUE (repeatable)."
        ),
        backend: str = typer.Option("optuna", "--backend", help="optuna (local) or ray."),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster address (auto, ray://host:10001)."
        ),
        workers: int | None = typer.Option(None, "--workers", min=1, help="Ray: trials at once."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        as_json: bool = typer.Option(False, "--json", help="Print the fronts as JSON."),
    ) -> None:
        """Run a multi-objective compression search and store a Pareto front per device."""
        from paretoedge._study import create_study
        from paretoedge.search._config import load_config
        from paretoedge.search._names import check_study_name

        # Everything is checked before the database is opened: a refused flag or study
        # file leaves no study row behind.
        sets = list(overrides)
        if trials is not None:
            sets.append(f"budget.trials={trials}")
        if timeout is not None:
            sets.append(f"budget.timeout_s={_check_timeout(timeout)}")
        if study is not None:
            check_study_name(study, field="--study")
        url = _storage_url(storage)
        be = _backend(backend, address, workers)
        cfg = load_config(config, sets)
        _preflight_task(cfg.task)
        handle = create_study(cfg, storage=url, study_name=study)
        summary = _run_interruptible(handle, backend=be, progress=progress)
        print_fronts(handle, summary, as_json=as_json)

    @app.command("resume")
    def resume_cmd(
        name: str = typer.Argument(..., help="Name of the stored study."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        trials: int | None = typer.Option(
            None, "--trials", min=1, max=1_000_000, help="Run at most this many more trials."
        ),
        timeout: float | None = typer.Option(None, "--timeout", help="Seconds to run."),
        backend: str = typer.Option("optuna", "--backend", help="optuna (local) or ray."),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster address (auto, ray://host:10001)."
        ),
        workers: int | None = typer.Option(None, "--workers", min=1, help="Ray: trials at once."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        as_json: bool = typer.Option(False, "--json", help="Print the fronts as JSON."),
    ) -> None:
        """Continue a study after a crash or Ctrl-C; completed trials are kept."""
        from paretoedge._study import load_study

        _check_timeout(timeout)
        be = _backend(backend, address, workers)
        handle = load_study(name, storage=_storage_url(storage))
        summary = _run_interruptible(
            handle, n_trials=trials, timeout=timeout, backend=be, progress=progress
        )
        print_fronts(handle, summary, as_json=as_json)

    @app.command("add-device")
    def add_device_cmd(
        name: str = typer.Argument(..., help="Name of the stored study."),
        device: str = typer.Option(..., "--device", help="Device profile to add."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the front as JSON."),
    ) -> None:
        """Score every stored candidate on a new device (no retraining) and store its front."""
        from paretoedge._study import load_study

        handle = load_study(name, storage=_storage_url(storage))
        summary = handle.add_device(device, progress=True)
        print_fronts(handle, summary, as_json=as_json)
