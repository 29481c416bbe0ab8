"""``paretoedge devices``, ``paretoedge predict`` and ``paretoedge calibrate``.

TVM, torch and onnxruntime are imported inside the command bodies so ``paretoedge --help``
stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paretoedge.errors import ConfigError, LoweringError


def _console():
    from rich.console import Console

    return Console()


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    if n >= 2**20:
        return f"{n / 2**20:.2f} MiB"
    return f"{n / 2**10:.1f} KiB"


def _resolve_model(model: str, seq_len: int, batch: int) -> Path:
    """An ONNX path as given, or a model name/dir exported through the compression half."""
    path = Path(model)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise LoweringError(f"ONNX file {model!r} does not exist")
        return path
    try:
        from paretoedge.compression import export_onnx
        from paretoedge.models import load_model
    except ImportError:
        raise ConfigError(
            "MODEL", model, "a path to a .onnx file (model export is not available)"
        ) from None
    from paretoedge.settings import get_settings

    out = get_settings().home / "exports" / f"{path.name or model}-b{batch}-s{seq_len}.onnx"
    if not out.exists():
        export_onnx(load_model(model), out, seq_len=seq_len, batch=batch)
    return out


def register(app: typer.Typer) -> None:
    """Add ``devices``, ``predict`` and ``calibrate`` to ``app``."""

    @app.command("devices")
    def devices(
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """List device profiles (bundled and from $PARETOEDGE_DEVICES_DIR)."""
        from paretoedge.hardware_profiles import list_profiles

        profiles = list_profiles()
        if as_json:
            typer.echo(
                json.dumps([p.to_yaml_dict() | {"source": p.source} for p in profiles], indent=2)
            )
            return
        from rich.table import Table

        table = Table(title="Device profiles")
        for col in (
            "name",
            "kind",
            "runtime",
            "target",
            "fp32 GOP/s",
            "int8 GOP/s",
            "GB/s",
            "limits",
            "source",
        ):
            table.add_column(col)
        for p in profiles:
            limits = ", ".join(
                f"{k} {v / 2**20:g}M"
                for k, v in (("ram", p.ram_bytes), ("flash", p.flash_bytes), ("sram", p.sram_bytes))
                if v is not None
            )
            target = p.target.get("mcpu") or p.target.get("device") or p.target.get("kind")
            table.add_row(
                p.name,
                p.kind,
                p.runtime,
                f"{p.target['kind']}/{target}",
                f"{p.peak_gops['fp32']:g}",
                f"{p.peak_gops['int8']:g}",
                f"{p.memory_bandwidth_gbs:g}",
                limits,
                p.source,
            )
        _console().print(table)

    @app.command("predict")
    def predict_cmd(
        model: Annotated[str, typer.Argument(help="An ONNX file, or a model name/directory.")],
        device: Annotated[str, typer.Option("--device", "-d", help="Device profile name.")],
        seq_len: Annotated[int, typer.Option(help="Sequence length when exporting.")] = 64,
        batch: Annotated[int, typer.Option(help="Batch size when exporting.")] = 1,
        top: Annotated[int, typer.Option(help="How many kernels to list.")] = 5,
        no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Predict latency, memory and energy of MODEL on a device (TVM-lowered)."""
        from paretoedge.hardware_profiles import predict

        if seq_len < 1:
            raise ConfigError("seq-len", seq_len, "an integer >= 1")
        if batch < 1:
            raise ConfigError("batch", batch, "an integer >= 1")
        from paretoedge.hardware_profiles import load_profile

        profile = load_profile(device)  # unknown device fails before any export or build
        path = _resolve_model(model, seq_len, batch)
        with _console().status(f"lowering {path.name} for {device} with TVM"):
            pred = predict(path, profile, use_cache=not no_cache)
        if as_json:
            d = pred.to_dict(kernels=False)
            d["top_kernels"] = [k.__dict__ for k in pred.top_kernels(top)]
            d["onnx"] = str(path)
            typer.echo(json.dumps(d, indent=2))
            return
        from rich.table import Table

        c = _console()
        c.print(
            f"[bold]{path.name}[/] on [bold]{pred.device}[/] ({pred.runtime})"
            f"{'  [dim](cached build)[/]' if pred.cache_hit else ''}"
        )
        c.print(f"latency      {pred.latency_ms:.3f} ms")
        c.print(
            f"peak memory  {_fmt_bytes(pred.peak_memory_bytes)} "
            f"(weights {_fmt_bytes(pred.weight_bytes)}, "
            f"activations {_fmt_bytes(pred.activation_bytes)})"
        )
        if pred.flash_bytes is not None:
            c.print(f"flash        {_fmt_bytes(pred.flash_bytes)}")
            c.print(f"sram         {_fmt_bytes(pred.sram_bytes)}")
        c.print(f"energy       {pred.energy_mj:.3f} mJ")
        c.print("feasible     " + ("yes" if pred.feasible else "NO: " + "; ".join(pred.violations)))
        table = Table(title=f"top {top} kernels")
        for col in ("kernel", "kind", "dtype", "MOP", "KiB", "ms", "share"):
            table.add_column(col)
        for k in pred.top_kernels(top):
            table.add_row(
                k.name,
                k.kind,
                k.dtype,
                f"{k.ops / 1e6:.2f}",
                f"{k.bytes / 1024:.1f}",
                f"{k.latency_ms:.4f}",
                f"{k.share:.1%}",
            )
        c.print(table)

    @app.command("calibrate")
    def calibrate(
        device: Annotated[str, typer.Option("--device", "-d", help="Profile to start from.")],
        measurements: Annotated[
            Path, typer.Option(help="CSV with columns onnx,latency_ms (your device's timings).")
        ],
        name: Annotated[str | None, typer.Option(help="Name of the new profile.")] = None,
        output: Annotated[Path | None, typer.Option(help="YAML file to write.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Fit a profile's compute throughput, bandwidths, kernel factors and overheads to
        measured latencies, check the fit against FLOPs / weight-bytes / FLOPs+operators
        proxies on held-out rows, and write a new profile."""
        from paretoedge.hardware_profiles import fit_profile, load_profile, write_profile
        from paretoedge.hardware_profiles._calibrate import feature_rows, read_measurements
        from paretoedge.settings import get_settings

        profile = load_profile(device)
        rows = read_measurements(measurements)
        new_name = name or f"{device}-calibrated"
        with _console().status(f"lowering {len(rows)} models for {device}"):
            feats = feature_rows([p for p, _ in rows], profile)
        with _console().status(f"fitting {len(rows)} rows (with cross-validation)"):
            report = fit_profile(
                profile,
                feats,
                [m for _, m in rows],
                name=new_name,
                note=f"calibrated from {measurements}",
            )
        if output is None:
            base = get_settings().devices_dir or (get_settings().home / "devices")
            output = Path(base) / f"{new_name}.yaml"
        write_profile(
            report.profile,
            output,
            header=f"Calibrated from {profile.name} ({profile.source}) with {measurements}:\n"
            f"fit MAPE {report.mape:.2f}% , Kendall tau {report.kendall_tau:.3f} "
            f"on {report.n} models.",
        )
        fitted = report.profile
        cv = report.cv
        result = {
            "profile": new_name,
            "written": str(output),
            "n": report.n,
            "fit_mape_pct": report.mape,
            "fit_kendall_tau": report.kendall_tau,
            "peak_gops": fitted.peak_gops,
            "memory_bandwidth_gbs": fitted.memory_bandwidth_gbs,
            "cache_bandwidth_gbs": fitted.cache_bandwidth_gbs,
            "kernel_scale": fitted.kernel_scale,
            "launch_overhead_us": fitted.launch_overhead_us,
            "op_overhead_us": fitted.op_overhead_us,
            "call_overhead_us": fitted.call_overhead_us,
            "cross_validation": None
            if cv is None
            else {
                "folds": cv.folds,
                "ridge": None if cv.kept_prior else cv.ridge,
                "kept_prior": cv.kept_prior,
                "model_mape_pct": cv.model_mape,
                "model_kendall_tau": cv.model_tau,
                "proxies": {
                    k: {"mape_pct": v[0], "kendall_tau": v[1]} for k, v in cv.proxies.items()
                },
                "proxy_blend_weight": cv.blend_weight,
                "warning": cv.warning,
            },
        }
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        c = _console()
        c.print(f"wrote {output}")
        c.print(
            f"fit on {report.n} models: MAPE {report.mape:.2f}%, "
            f"Kendall tau {report.kendall_tau:.3f}"
        )
        c.print(
            f"compute {fitted.peak_gops['fp32']:.1f} GFLOP/s fp32, DRAM "
            f"{fitted.memory_bandwidth_gbs:.1f} GB/s, cache {fitted.cache_gbs:.1f} GB/s, "
            f"launch {fitted.launch_overhead_us:.2f} us, per operator "
            f"{fitted.op_overhead_us:.2f} us, per call {fitted.call_overhead_us:.1f} us"
        )
        if cv is None:
            c.print("too few rows to cross-validate (needs 5): no check against the proxies")
        else:
            proxies = ", ".join(f"{k} {v[0]:.1f}% / {v[1]:.3f}" for k, v in cv.proxies.items())
            c.print(
                f"held out ({cv.folds}-fold): model MAPE {cv.model_mape:.1f}% / tau "
                f"{cv.model_tau:.3f}; proxies (MAPE / tau) {proxies}"
            )
            if cv.kept_prior:
                c.print(
                    f"kept {profile.name}'s balance, rescaled by one factor: every free fit "
                    "predicted held-out rows worse (more rows would let the fit move it)"
                )
            if cv.warning:
                c.print(f"[yellow]warning:[/yellow] {cv.warning}")
        devices_dir = get_settings().devices_dir
        if devices_dir is None or Path(output).parent != Path(devices_dir):
            c.print(f"use it with PARETOEDGE_DEVICES_DIR={Path(output).parent}")
