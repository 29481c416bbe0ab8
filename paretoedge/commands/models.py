"""The ``paretoedge finetune`` command: fine-tune and cache a task's teacher.

Fine-tuning the bundled teacher takes minutes on a laptop CPU, and every compression
study needs it, so it is done once per (model, task, seed, epochs) and cached; a second
run loads the cache and says so. torch is imported inside the command, so
``paretoedge --help`` stays fast.
"""

from __future__ import annotations

import json
import time

import typer


def finetune_command(
    model: str = typer.Option(
        "minilm", "--model", help="Alias (minilm, tiny-bert) or a local Hugging Face directory."
    ),
    task: str = typer.Option(
        "sentiment", "--task", help="Bundled task (sentiment) or a CSV/JSONL file."
    ),
    epochs: float = typer.Option(1.0, "--epochs", help="Training epochs (fractions allowed)."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, order and dropout."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Fine-tune MODEL on TASK once and cache it; later runs reuse the cache."""
    from paretoedge.commands._checks import check_epochs, check_model_task, check_seed
    from paretoedge.teachers import ensure_teacher

    check_model_task(model, task, model_field="--model")
    check_seed(seed)
    check_epochs(epochs)
    start = time.perf_counter()
    _, _, info = ensure_teacher(model, task, seed=seed, epochs=epochs, progress=not as_json)
    wall = time.perf_counter() - start
    result = {**info.to_dict(), "wall_s": round(wall, 2)}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"teacher {model} on {task}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("test accuracy", f"{info.test_accuracy:.4f}")
    table.add_row("validation accuracy", f"{info.validation_accuracy:.4f}")
    table.add_row("seed / epochs", f"{info.seed} / {info.epochs:g}")
    table.add_row("cache", "reused (loaded, not trained)" if info.reused else "built now")
    table.add_row("cache path", str(info.path))
    table.add_row("fine-tuning time", f"{info.train_wall_s:.1f} s")
    table.add_row("wall time (this run)", f"{wall:.1f} s")
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to ``app``."""
    app.command("finetune")(finetune_command)
