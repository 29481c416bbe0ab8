"""The ``paretoedge compress`` command: compress one model for one task and write it out.

``paretoedge compress MODEL --task T --set quant.bits=8 --set prune.sparsity=0.5 --out DIR``

MODEL is fine-tuned on T first (cached, as ``paretoedge finetune`` does) unless
``--no-finetune`` says it already is; the fine-tuned model is also the teacher of
distillation and recovery. DIR receives:

- the compressed model: ``save_pretrained`` files plus ``paretoedge_structure.json`` (the
  per-layer shapes, head counts, factored layers and quantisers a ``config.json`` cannot
  hold) and ``paretoedge_spec.json``; reload it with
  :func:`paretoedge.compression.load_compressed` (or pass DIR as MODEL again);
- ``model.onnx`` (static [1, seq_len] inputs, ``paretoedge.*`` metadata);
- ``model.int8.onnx`` (int8 QDQ, calibrated on train batches) when a layer has 8 bits;
- ``paretoedge_result.json``: the numbers printed.

Bad input (unknown key, bits 3, sparsity 1.5, more distill layers than the model has)
raises a ParetoEdgeError: one line, exit code 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import typer

from paretoedge.errors import ConfigError


def parse_sets(items: list[str]) -> dict[str, str]:
    """``["quant.bits=8", ...]`` -> ``{"quant.bits": "8", ...}``."""
    flat: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError("--set", item, "KEY=VALUE, e.g. quant.bits=8")
        flat[key.strip()] = value.strip()
    return flat


def _load_start_model(
    model: str, task_name: str, *, finetune: bool, seed: int, progress: bool, limit: int | None
):
    from paretoedge.compression._compose import STRUCTURE_FILE, load_compressed
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task

    task = load_task(task_name, limit=limit)
    path = Path(model).expanduser()
    if (path / STRUCTURE_FILE).is_file():
        return load_compressed(path), load_tokenizer(str(path)), task, None
    if not finetune:
        return (
            load_model(model, num_labels=task.num_labels, seed=seed),
            load_tokenizer(model),
            task,
            None,
        )
    from paretoedge.teachers import ensure_teacher

    teacher, tokenizer, info = ensure_teacher(model, task_name, seed=seed, progress=progress)
    return teacher, tokenizer, task, info


def compress_command(
    model: str = typer.Argument(..., help="Alias (minilm, tiny-bert) or a local HF directory."),
    task: str = typer.Option(..., "--task", help="Bundled task (sentiment) or a CSV/JSONL file."),
    sets: list[str] = typer.Option(  # noqa: B008
        [], "--set", help="Transform setting KEY=VALUE (repeatable), e.g. quant.bits=8."
    ),
    out: Path = typer.Option(..., "--out", help="Directory to write the compressed model to."),  # noqa: B008
    seed: int = typer.Option(0, "--seed", help="Seed of every random choice."),
    finetune: bool = typer.Option(
        True, "--finetune/--no-finetune", help="Fine-tune MODEL on TASK first (cached)."
    ),
    seq_len: int = typer.Option(64, "--seq-len", help="Static sequence length of the ONNX."),
    limit: int | None = typer.Option(
        None, "--limit", help="Use only the first N examples of each split (quick runs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Compress MODEL for TASK with the --set transforms; write HF + ONNX files to --out."""
    from paretoedge.commands._checks import check_limit, check_model_task, check_seed
    from paretoedge.compression import CompressionSpec

    spec = CompressionSpec.from_flat(parse_sets(sets))  # validate before loading anything
    if not 1 <= seq_len <= 4096:
        raise ConfigError("--seq-len", seq_len, "an integer in [1, 4096]")
    check_model_task(model, task, model_field="model")
    check_seed(seed)
    check_limit(limit)
    start = time.perf_counter()
    result = run_compress(
        model,
        task,
        spec,
        out=out,
        seed=seed,
        finetune=finetune,
        seq_len=seq_len,
        progress=not as_json,
        limit=limit,
    )
    result["total_wall_s"] = round(time.perf_counter() - start, 2)
    (out / "paretoedge_result.json").write_text(json.dumps(result, indent=2))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print_table(result)


def run_compress(
    model: str,
    task_name: str,
    spec: Any,
    *,
    out: Path,
    seed: int = 0,
    finetune: bool = True,
    seq_len: int = 64,
    progress: bool = False,
    limit: int | None = None,
) -> dict[str, Any]:
    """Do what the command does; returns the printed numbers (also for tests and bench)."""
    from paretoedge.compression import compress, export_onnx, model_stats, save_compressed
    from paretoedge.training import evaluate, make_batches

    start_model, tokenizer, task, info = _load_start_model(
        model, task_name, finetune=finetune, seed=seed, progress=progress, limit=limit
    )
    before = model_stats(start_model)
    result = compress(
        start_model,
        spec,
        teacher=start_model,
        tokenizer=tokenizer,
        task=task,
        seed=seed,
        progress=progress,
    )
    accuracy = evaluate(result.model, tokenizer, task.validation, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    save_compressed(result.model, out, tokenizer=tokenizer, spec=spec)
    files = [str(export_onnx(result.model, out / "model.onnx", seq_len=seq_len, spec=spec))]
    if 8 in result.stats.layer_bits.values():
        calibration = make_batches(tokenizer, task.train[:64], batch_size=16, max_length=seq_len)
        files.append(
            str(
                export_onnx(
                    result.model,
                    out / "model.int8.onnx",
                    seq_len=seq_len,
                    int8_qdq=True,
                    calibration=calibration,
                    spec=spec,
                )
            )
        )
    stats = result.stats
    return {
        "model": model,
        "task": task.name,
        "spec": spec.to_flat(),
        "applied": list(result.applied),
        "parameters": stats.parameters,
        "nonzero_parameters": stats.nonzero_parameters,
        "stored_bytes": stats.stored_bytes,
        "sparsity": round(stats.sparsity, 6),
        "validation_accuracy": round(accuracy, 6),
        "baseline_parameters": before.parameters,
        "baseline_stored_bytes": before.stored_bytes,
        "baseline_validation_accuracy": (
            round(info.validation_accuracy, 6) if info is not None else None
        ),
        "compress_wall_s": round(result.wall_s, 2),
        "out": str(out),
        "files": files,
    }


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"compress {result['model']} on {result['task']}")
    table.add_column("", style="bold")
    table.add_column("compressed", justify="right")
    table.add_column("original", justify="right")
    base_acc = result["baseline_validation_accuracy"]
    table.add_row("parameters", f"{result['parameters']:,}", f"{result['baseline_parameters']:,}")
    table.add_row(
        "stored bytes",
        f"{result['stored_bytes']:,} ({result['stored_bytes'] / 1e6:.2f} MB)",
        f"{result['baseline_stored_bytes']:,} ({result['baseline_stored_bytes'] / 1e6:.2f} MB)",
    )
    table.add_row("sparsity (encoder Linears)", f"{result['sparsity']:.4f}", "")
    table.add_row(
        "validation accuracy",
        f"{result['validation_accuracy']:.4f}",
        f"{base_acc:.4f}" if base_acc is not None else "",
    )
    table.add_row("wall time", f"{result['total_wall_s']:.1f} s", "")
    console = Console()
    console.print(table)
    console.print("steps: " + (" -> ".join(result["applied"]) or "none"))
    for f in result["files"]:
        console.print(f"wrote {f}")
    console.print(f"wrote {result['out']} (load with paretoedge.compression.load_compressed)")


def register(app: typer.Typer) -> None:
    """Add ``compress`` to ``app``."""
    app.command("compress")(compress_command)
