"""``paretoedge verify``, ``measure`` and ``export-set``: latency truth from real runtimes.

``measure`` imports only :mod:`paretoedge.measure` (numpy and the runtime asked for), so
it runs on a board; ``verify`` and ``export-set`` rebuild models and import torch, TVM and
the storage inside their bodies.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

_STORAGE_HELP = "Database URL (default: PARETOEDGE_STORAGE or sqlite:///paretoedge.db)."


def _open(storage: str | None):  # noqa: ANN202
    from paretoedge.settings import get_settings
    from paretoedge.storage import open_storage

    return open_storage(storage or get_settings().storage)


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None or math.isnan(value) else pattern.format(value)


def register(app: typer.Typer) -> None:
    """Add ``verify``, ``measure`` and ``export-set`` to ``app``."""

    @app.command("measure")
    def measure_cmd(
        files: Annotated[list[Path], typer.Argument(help="Model files (.onnx, .pte, .tflite).")],
        out: Annotated[Path, typer.Option("--out", help="CSV to write (what calibrate reads).")],
        runtime: str = typer.Option(
            "onnxruntime", "--runtime", help="onnxruntime, executorch, tflite."
        ),
        threads: int = typer.Option(1, "--threads", help="Intra-op threads of the runtime."),
        repeats: int = typer.Option(20, "--repeats", help="Timed runs per file (median)."),
        warmup: int = typer.Option(3, "--warmup", help="Untimed runs first."),
        max_spread: float = typer.Option(
            0.25, "--max-spread", help="Refuse a file whose (p90-p10)/median is larger."
        ),
        cpus: str | None = typer.Option(None, "--cpus", help="Pin to these CPUs, e.g. 0,1."),
    ) -> None:
        """Time model files on this machine and write the CSV `paretoedge calibrate` reads
        (no TVM, Optuna or torch imported; on a board: python -m paretoedge.measure)."""
        from paretoedge.measure import MeasureOptions, measure_files, write_csv
        from paretoedge.measure.__main__ import parse_cpus

        options = MeasureOptions(
            runtime=runtime,
            threads=threads,
            repeats=repeats,
            warmup=warmup,
            max_spread=max_spread,
            cpus=parse_cpus(cpus),
        )

        def report(r) -> None:  # noqa: ANN001
            t = r.timing
            typer.echo(f"{r.file}: median {t.median_ms:.3f} ms, spread {t.spread:.1%}")

        results = measure_files(files, options, on_done=report)
        typer.echo(f"wrote {write_csv(results, out)} ({len(results)} files)")

    @app.command("verify")
    def verify_cmd(
        name: str = typer.Argument(..., help="Study name."),
        device: str = typer.Option(..., "--device", help="A device whose runtime runs here."),
        top: int | None = typer.Option(None, "--top", help="Only the K fastest (predicted)."),
        repeats: int = typer.Option(20, "--repeats", help="Timed runs per member."),
        warmup: int = typer.Option(3, "--warmup", help="Untimed runs first."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Rebuild the front's members, time them on the device's runtime, store the
        measured latency beside the prediction and score the prediction."""
        from paretoedge.verify import verify_front

        with _open(storage) as st:
            report = verify_front(
                st, study=name, device=device, top=top, repeats=repeats, warmup=warmup
            )
        if as_json:
            typer.echo(json.dumps(report.to_dict(), indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(
            title=f"{name} on {device}: {report.runtime}, {report.threads} thread(s), "
            f"median of {repeats}"
        )
        for col in ("trial", "val acc", "size MB", "predicted ms", "measured ms", "error", "front"):
            table.add_column(col, justify="right")
        for m in report.members:
            table.add_row(
                str(m.trial),
                _fmt(m.accuracy, "{:.4f}"),
                _fmt(None if m.size_bytes is None else m.size_bytes / 1e6),
                f"{m.predicted_ms:.3f}",
                f"{m.measured.median_ms:.3f}",
                f"{m.measured.error_pct:+.1f}%",
                "yes" if m.non_dominated_measured else "no",
            )
        c = Console()
        c.print(table)
        c.print(
            f"Kendall tau {_fmt(report.kendall_tau)}, MAPE {_fmt(report.mape_pct, '{:.1f}')}% on "
            f"{len(report.members)} members; {report.still_non_dominated} stay non-dominated "
            "under measured latency"
        )

    @app.command("export-set")
    def export_set_cmd(
        out: Annotated[Path, typer.Option("--out", help="Folder to write the set into.")],
        name: str = typer.Argument(..., help="Study name."),
        device: str = typer.Option(..., "--device", help="Device profile to start from."),
        n: int = typer.Option(24, "--n", help="How many structures."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print the manifest."),
    ) -> None:
        """Export a calibration set spanning the study's space, for `measure` on a board."""
        from rich.progress import Progress

        from paretoedge.calibration_set import export_set

        with _open(storage) as st, Progress(transient=True) as bar:
            task = bar.add_task("exporting the calibration set", total=n)
            manifest = export_set(
                st,
                study=name,
                device=device,
                out=out,
                n=n,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        if as_json:
            typer.echo(json.dumps(manifest, indent=2, default=str))
            return
        spread = manifest["spread"]
        typer.echo(
            f"wrote {manifest['n']} structures and manifest.json to {out} "
            f"(weight bytes x{spread['weight_bytes']['ratio']:.1f}, "
            f"linear MACs x{spread['linear_macs']['ratio']:.1f})"
        )
        for step in manifest["steps"]:
            typer.echo(f"  {step}")
