"""``paretoedge studies``, ``front``, ``show``, ``plot``, ``export`` and ``serve``.

Everything is read through the keyword-only functions of :mod:`paretoedge.storage`; heavy
imports (SQLAlchemy, Plotly, torch, TVM, FastAPI) happen inside the command bodies so that
``paretoedge --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from collections.abc import Mapping

    from paretoedge.storage import FrontPage, MeasuredLatencyRecord, Storage

_STORAGE_HELP = "Database URL (default: PARETOEDGE_STORAGE or sqlite:///paretoedge.db)."
#: Largest trial number (trial numbers are 32-bit integers in the database).
TRIAL_MAX = 2**31 - 1
_FORMATS = ("table", "json", "csv")
_log = logging.getLogger(__name__)


def _open(storage: str | None) -> Storage:
    """The database of ``--storage``, opened without ever creating one (these commands read)."""
    from paretoedge.commands._storage import open_existing

    return open_existing(storage)


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.3f}"


def _num(value: float | None, pattern: str = "{:.4f}") -> str:
    return "-" if value is None else pattern.format(value)


def front_rows(
    page: FrontPage, measured: Mapping[int, MeasuredLatencyRecord] | None = None
) -> list[dict[str, Any]]:
    """Flat rows of a front page (the CSV/JSON output of ``paretoedge front``): one per
    distinct candidate, a twin's trial numbers in ``also_trials``; ``measured_ms`` is the
    latency ``paretoedge verify`` measured (by candidate id)."""
    from paretoedge._describe import collapse_twins, describe_spec

    rows = []
    for e, twins in collapse_twins(page.entries):
        c, m = e.candidate, e.metrics
        rows.append(
            {
                "trial": c.trial_number,
                "also_trials": list(twins),
                "rank": e.rank,
                "baseline": c.baseline_name if c.is_baseline else None,
                "config": describe_spec(c.flat),
                "accuracy": c.accuracy,
                "test_accuracy": c.test_accuracy,
                "latency_ms": m.latency_ms,
                "latency_worst_ms": m.latency_worst_ms,
                "measured_ms": (
                    measured[c.id].median_ms if measured and c.id in measured else None
                ),
                "size_mb": None if c.size_bytes is None else c.size_bytes / 1e6,
                "peak_memory_mb": m.peak_memory_bytes / 1e6,
                "energy_mj": m.energy_mj,
                "feasible": m.feasible,
                "spec": c.flat,
            }
        )
    return rows


def register(app: typer.Typer) -> None:
    """Add the query commands to ``app``."""

    @app.command("studies")
    def studies_cmd(
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """List studies with their status, trial counts and devices."""
        from paretoedge.storage import list_studies

        with _open(storage) as st:
            summaries = list_studies(st)
        if as_json:
            typer.echo(json.dumps([s.to_dict() for s in summaries], indent=2, default=str))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(summaries)} studies")
        for col in ("study", "status", "complete", "pruned", "failed", "running", "devices"):
            table.add_column(col, justify="left" if col in ("study", "devices") else "right")
        for s in summaries:
            table.add_row(
                s.study.name,
                s.study.status,
                str(s.trials_complete),
                str(s.trials_pruned),
                str(s.trials_failed),
                str(s.trials_running),
                ", ".join(s.study.devices),
            )
        Console().print(table)

    @app.command("front")
    def front_cmd(
        name: str = typer.Argument(..., help="Study name."),
        device: str = typer.Option(..., "--device", help="Device of the front."),
        max_latency_ms: float | None = typer.Option(None, "--max-latency-ms", min=0, max=1e12),
        min_accuracy: float | None = typer.Option(None, "--min-accuracy", min=0, max=1),
        max_size_mb: float | None = typer.Option(None, "--max-size-mb", min=0, max=1e9),
        sort: str = typer.Option("latency", "--sort", help="latency, accuracy or size."),
        fmt: str = typer.Option("table", "--format", help="table, json or csv."),
        limit: int = typer.Option(100, "--limit", min=1, max=1000, help="Rows at most."),
        baselines: bool = typer.Option(
            True,
            "--baselines/--no-baselines",
            help="List the baselines (teacher, int8) for reference even when dominated.",
        ),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    ) -> None:
        """The Pareto front of a study on one device, with filters (baselines marked; a
        dominated baseline is listed after the front for reference)."""
        from paretoedge.errors import ConfigError
        from paretoedge.storage import FRONT_SORTS, get_front, get_measured_latencies

        if sort not in FRONT_SORTS:
            raise ConfigError("--sort", sort, FRONT_SORTS)
        if fmt not in _FORMATS:
            raise ConfigError("--format", fmt, _FORMATS)
        with _open(storage) as st:
            page = get_front(
                st,
                study=name,
                device=device,
                max_latency_ms=max_latency_ms,
                min_accuracy=min_accuracy,
                max_size_bytes=None if max_size_mb is None else int(max_size_mb * 1e6),
                sort=sort,  # type: ignore[arg-type]
                limit=limit,
                baselines=baselines,
            )
            measured = get_measured_latencies(
                st, candidate_ids=[e.candidate.id for e in page.entries], device=device
            )
        rows = front_rows(page, measured)
        if fmt == "json":
            doc = {"study": name, "device": device, "total": page.total, "entries": rows}
            typer.echo(json.dumps(doc, indent=2))
            return
        if fmt == "csv":
            buf = io.StringIO()
            fields = [k for k in rows[0] if k != "spec"] if rows else ["trial"]
            writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(
                {**r, "also_trials": " ".join(map(str, r["also_trials"]))} for r in rows
            )
            typer.echo(buf.getvalue(), nl=False)
            return
        from rich.console import Console
        from rich.table import Table

        shown = f", first {len(rows)} shown" if len(rows) < page.total else ""
        table = Table(
            title=f"{name}: Pareto front on {device} ({page.total} match{shown}, by {sort})"
        )
        cols = ["trial", "config", "val acc", "test acc", "latency ms", "size MB", "fits"]
        worst = any(r["latency_worst_ms"] is not None for r in rows)
        if worst:
            cols.insert(5, "worst ms")
            table.caption = "early exit: latency ms is expected, worst ms takes no exit"
        if measured:
            cols.insert(5, "measured ms")
        for col in cols:
            table.add_column(col, justify="left" if col == "config" else "right")
        for r in rows:
            config = r["config"]
            if r["baseline"]:
                same = config in (r["baseline"], "uncompressed")
                config = f"[bold]baseline {r['baseline']}[/]" + ("" if same else f" ({config})")
                if r["rank"]:
                    config += f" [dim](dominated, rank {r['rank']})[/]"
            if r["also_trials"]:
                config += f" (also trials {', '.join(map(str, r['also_trials']))})"
            cells = [
                str(r["trial"]),
                config,
                _num(r["accuracy"]),
                _num(r["test_accuracy"]),
                f"{r['latency_ms']:.3f}",
                _num(r["size_mb"], "{:.3f}"),
                "yes" if r["feasible"] else "no",
            ]
            if worst:
                cells.insert(5, _num(r["latency_worst_ms"], "{:.3f}"))
            if measured:
                cells.insert(5, _num(r["measured_ms"], "{:.3f}"))
            table.add_row(*cells)
        Console().print(table)

    @app.command("show")
    def show_cmd(
        name: str = typer.Argument(..., help="Study name."),
        trial: int = typer.Argument(..., min=0, max=TRIAL_MAX, help="Trial number."),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """The full config and every metric of one candidate."""
        from paretoedge._plot import spec_summary
        from paretoedge.storage import get_candidate, list_artifacts

        with _open(storage) as st:
            cand = get_candidate(st, study=name, trial_number=trial)
            artifacts = list_artifacts(st, candidate_id=cand.id)
        if as_json:
            doc = {**cand.to_dict(), "artifacts": [a.to_dict() for a in artifacts]}
            typer.echo(json.dumps(doc, indent=2, default=str))
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        what = f"baseline {cand.baseline_name}" if cand.is_baseline else spec_summary(cand.flat)
        console.print(f"[bold]{name}[/] trial {cand.trial_number} ({cand.state}): {what}")
        spec = Table(title="configuration")
        spec.add_column("key")
        spec.add_column("value", justify="right")
        for k, v in sorted(cand.flat.items()):
            spec.add_row(k, str(v))
        console.print(spec)
        metrics = Table(title="measurements")
        metrics.add_column("metric")
        metrics.add_column("value", justify="right")
        for label, value in (
            ("validation accuracy", _num(cand.accuracy)),
            ("test accuracy", _num(cand.test_accuracy)),
            ("size MB", _mb(cand.size_bytes)),
            ("parameters", _num(cand.parameters, "{:,}")),
            ("sparsity", _num(cand.sparsity, "{:.3f}")),
            ("recovery steps", _num(cand.fidelity, "{}")),
            ("wall s", _num(cand.wall_s, "{:.1f}")),
        ):
            metrics.add_row(label, value)
        console.print(metrics)
        dev = Table(title="per device")
        worst = any(m.latency_worst_ms is not None for m in cand.metrics)
        cols = ["device", "latency ms", "peak mem MB", "energy mJ", "fits", "violations"]
        if worst:
            cols.insert(2, "worst ms")
            dev.caption = "early exit: latency is expected over the exit distribution"
        for col in cols:
            dev.add_column(col, justify="left" if col in ("device", "violations") else "right")
        for m in cand.metrics:
            dev.add_row(
                m.device,
                f"{m.latency_ms:.3f}",
                *([_num(m.latency_worst_ms, "{:.3f}")] if worst else []),
                _mb(m.peak_memory_bytes),
                _num(m.energy_mj, "{:.3f}"),
                "yes" if m.feasible else "no",
                "; ".join(m.violations),
            )
        console.print(dev)
        for a in artifacts:
            console.print(f"artifact {a.kind}: {a.path} ({a.bytes} bytes)")

    @app.command("plot")
    def plot_cmd(
        name: str = typer.Argument(..., help="Study name."),
        devices: list[str] = typer.Option(  # noqa: B008
            ..., "--device", help="Device (repeat for several panels side by side)."
        ),
        out: Path = typer.Option(  # noqa: B008
            Path("front.html"), "--out", help="front.html (interactive) or front.png."
        ),
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
    ) -> None:
        """Plot accuracy vs latency per device (size as marker size, dominated faint)."""
        from paretoedge._plot import front_figure, front_points, write_html, write_png
        from paretoedge.errors import ConfigError

        suffix = out.suffix.lower()
        if suffix not in (".html", ".png"):
            raise ConfigError("--out", str(out), "a path ending in .html or .png")
        with _open(storage) as st:
            points = front_points(st, study=name, devices=devices)
        title = f"{name}: accuracy vs latency"
        fig = front_figure(points, title=title)
        if suffix == ".html":
            write_html(fig, out)
            typer.echo(f"wrote {out}")
        else:
            renderer = write_png(fig, points, out, title=title)
            typer.echo(f"wrote {out} (rendered with {renderer})")

    @app.command("export")
    def export_cmd(
        name: str = typer.Argument(..., help="Study name."),
        trial: int = typer.Argument(..., min=0, max=TRIAL_MAX, help="Trial number."),
        device: str = typer.Option(..., "--device", help="Target device."),
        out: Path = typer.Option(..., "--out", help="Output directory."),  # noqa: B008
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
        formats: list[str] | None = typer.Option(  # noqa: B008
            None,
            "--format",
            help="Also write this format (onnx, executorch; repeatable). Default: the formats "
            "the device's class deploys, where installed.",
        ),
    ) -> None:
        """Rebuild a candidate and write HF model, ONNX, TVM library and a model card."""
        from rich.console import Console

        from paretoedge.export import export_candidate

        console = Console(stderr=True)
        with _open(storage) as st:
            with (
                console.status(f"rebuilding trial {trial} of {name} for {device}", spinner="dots")
                if progress
                else contextlib.nullcontext()
            ):
                result = export_candidate(
                    st,
                    study=name,
                    trial=trial,
                    device=device,
                    out=out,
                    progress=False,
                    formats=formats or None,
                )
        if as_json:
            typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
            return
        typer.echo(
            f"exported {name} trial {trial} for {device} to {out}: "
            f"validation accuracy {result.reproduced_accuracy:.4f} "
            f"(stored {_num(result.stored_accuracy)}), predicted latency "
            f"{result.predicted['latency_ms']:.3f} ms"
        )
        for kind, path in result.files.items():
            typer.echo(f"  {kind}: {path}")
        for c in result.runtime_checks:
            typer.echo(
                f"  {c.file} in {c.runtime}: agreement {c.agreement:.4f}, accuracy "
                f"{c.accuracy:.4f} (PyTorch {c.reference_accuracy:.4f}), "
                f"{'passed' if c.passed else 'FAILED'} ({c.criterion})"
            )

    @app.command("serve")
    def serve_cmd(
        storage: str | None = typer.Option(None, "--storage", help=_STORAGE_HELP),
        host: str = typer.Option("127.0.0.1", "--host"),
        port: int = typer.Option(8000, "--port", min=0, max=65535),
    ) -> None:
        """Serve the HTTP API (write endpoints need PARETOEDGE_API_TOKEN)."""
        from paretoedge.errors import MissingExtraError

        try:
            import uvicorn
        except ImportError as exc:
            raise MissingExtraError("uvicorn", "api") from exc
        from paretoedge.api import create_app
        from paretoedge.commands._storage import storage_url

        app = create_app(storage_url(storage))
        uvicorn.run(app, host=host, port=port, log_level="info")
