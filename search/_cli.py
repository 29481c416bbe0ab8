"""``paretoedge search``, ``resume`` and ``add-device``.

Heavy imports (torch, Optuna, SQLAlchemy) happen inside the command bodies so that
``paretoedge --help`` stays fast.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from paretoedge.search._controller import SearchRunner, SearchSummary

_STORAGE_HELP = "Database URL (default: PARETOEDGE_STORAGE or sqlite:///paretoedge.db)."


def _storage_url(storage: str | None) -> str:
    from paretoedge.settings import get_settings

    return storage or get_settings().storage


def _fronts_json(runner: SearchRunner, summary: SearchSummary) -> dict[str, Any]:
    from paretoedge.storage import get_front

    return {
        "study": summary.study,
        "storage": summary.storage,
        "trials_complete": summary.trials_complete,
        "trials_failed": summary.trials_failed,
        "trainings_saved": summary.trainings_saved,
        "fronts": {
            d: get_front(runner.storage, study=summary.study, device=d, limit=1000).to_dict()[
                "entries"
            ]
            for d in summary.fronts
        },
    }


_SHORT = {
    "prune.sparsity": "sparsity",
    "heads.keep": "heads",
    "ffn.keep": "ffn",
    "lowrank.rank": "rank",
    "lowrank.energy": "energy",
    "distill.layers": "layers",
}


def describe_spec(spec: Any) -> str:
    """A compact one-line description of a flat spec (recovery and defaults left out)."""
    parts = []
    for key, value in spec.items():
        if key in _SHORT:
            parts.append(
                f"{_SHORT[key]} {value:g}" if isinstance(value, float) else f"{_SHORT[key]} {value}"
            )
        elif key == "quant.bits":
            parts.append("fp32" if value == 32 else "fp16" if value == 16 else f"int{value}")
        elif key == "quant.scheme" and value == "cluster":
            parts.append("k-means")
        elif key.startswith("quant.layer_bits."):
            parts.append(f"{key.rsplit('.', 1)[1]}:{value}b")
    return " ".join(parts) or "uncompressed"


def print_fronts(runner: SearchRunner, summary: SearchSummary, *, as_json: bool) -> None:
    """One table per device: the front members, fastest first."""
    from rich.console import Console
    from rich.table import Table

    from paretoedge.storage import get_front

    if as_json:
        typer.echo(json.dumps(_fronts_json(runner, summary), indent=2, default=str))
        return
    console = Console()
    for device in summary.fronts:
        page = get_front(
            runner.storage, study=summary.study, device=device, limit=1000, baselines=True
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
        for e in page.entries:
            c, m = e.candidate, e.metrics
            what = c.baseline_name or describe_spec(c.spec)
            if e.rank:  # a baseline listed for reference
                what = f"{what} (baseline, dominated)"
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
    from paretoedge.search._controller import get_backend

    if name != "ray":
        if address is not None:
            raise ConfigError("--address", address, "only with --backend ray")
        if workers is not None:
            raise ConfigError("--workers", workers, "only with --backend ray")
        return get_backend(name)
    return get_backend(name, address=address, workers=workers)


def _run_interruptible(runner: SearchRunner, **kwargs: Any) -> SearchSummary:
    """Run; on Ctrl-C say how to continue and exit 130 instead of a traceback."""
    try:
        return runner.run(**kwargs)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: continue with paretoedge resume {runner.name} "
            f"--storage {runner.storage.url}",
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
        trials: int | None = typer.Option(None, "--trials", min=1, help="Override budget.trials."),
        timeout: float | None = typer.Option(None, "--timeout", min=0, help="Seconds to run."),
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
        from paretoedge.search._config import load_config
        from paretoedge.search._controller import SearchRunner

        sets = list(overrides)
        if trials is not None:
            sets.append(f"budget.trials={trials}")
        if timeout is not None:
            sets.append(f"budget.timeout_s={timeout}")
        be = _backend(backend, address, workers)
        cfg = load_config(config, sets)
        runner = SearchRunner(
            cfg, storage_url=_storage_url(storage), study_name=study, progress=progress
        )
        summary = _run_interruptible(runner, backend=be)
        print_fronts(runner, summary, as_json=as_json)

    @app.command("resume")
    def resume_cmd(
        name: str = typer.Argument(..., help="Name of the stored study."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        trials: int | None = typer.Option(
            None, "--trials", min=1, help="Run at most this many more trials."
        ),
        timeout: float | None = typer.Option(None, "--timeout", min=0, help="Seconds to run."),
        backend: str = typer.Option("optuna", "--backend", help="optuna (local) or ray."),
        address: str | None = typer.Option(
            None, "--address", help="Ray cluster address (auto, ray://host:10001)."
        ),
        workers: int | None = typer.Option(None, "--workers", min=1, help="Ray: trials at once."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        as_json: bool = typer.Option(False, "--json", help="Print the fronts as JSON."),
    ) -> None:
        """Continue a study after a crash or Ctrl-C; completed trials are kept."""
        from paretoedge.search._controller import resume_runner

        be = _backend(backend, address, workers)
        runner = resume_runner(name, storage_url=_storage_url(storage), progress=progress)
        summary = _run_interruptible(runner, n_trials=trials, timeout=timeout, backend=be)
        print_fronts(runner, summary, as_json=as_json)

    @app.command("add-device")
    def add_device_cmd(
        name: str = typer.Argument(..., help="Name of the stored study."),
        device: str = typer.Option(..., "--device", help="Device profile to add."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the front as JSON."),
    ) -> None:
        """Score every stored candidate on a new device (no retraining) and store its front."""
        from paretoedge.search._controller import add_device

        runner, summary = add_device(name, device=device, storage_url=_storage_url(storage))
        print_fronts(runner, summary, as_json=as_json)
