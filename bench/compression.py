"""Compression benchmark on the bundled task: transform -> size, accuracy, ORT latency.

Usage::

    python bench/compression.py            # minilm teacher on sentiment, full test split
    python bench/compression.py --quick    # fewer recovery steps, first 300 test examples

The teacher comes from ``paretoedge.teachers.get_teacher`` (fine-tuned once and cached).
Every row is compressed from that teacher with :func:`paretoedge.compression.compress`,
evaluated on the test split in PyTorch, exported to static-shape ONNX ([1, 64]) and timed
in onnxruntime on this CPU, and its latency predicted by the hardware model on the
``--devices`` profiles (default rpi4 and stm32h7). Latencies are measured side by side in
one run: the sessions are timed round-robin (a block of runs of each model in turn,
repeated), so load from other processes hits all rows alike, and each row reports the
median against the uncompressed model's median. The int8 QDQ row is the real int8 ONNX
file of the int8 row, and its accuracy is measured by running that file in onnxruntime.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _rows(recovery: int, distill: int) -> list[tuple[str, dict[str, Any]]]:
    rec = {"recovery.steps": recovery, "recovery.batch_size": 16}
    # binary/ternary: weight-only, trained through the quantisers (STE) with a larger lr
    low_bit = {"quant.qat": True, "quant.act_bits": "none", **rec, "recovery.lr": 2e-4}
    return [
        ("fp32 (teacher)", {}),
        ("int8 PTQ (weights + act)", {"quant.bits": 8}),
        ("int4 uniform + recovery", {"quant.bits": 4, "quant.layer_bits.embeddings": 8, **rec}),
        ("int4 cluster", {"quant.bits": 4, "quant.scheme": "cluster", "quant.act_bits": "none"}),
        ("prune 50% + recovery", {"prune.sparsity": 0.5, **rec}),
        ("heads 50% + recovery", {"heads.keep": 0.5, **rec}),
        ("ffn 50% + recovery", {"ffn.keep": 0.5, **rec}),
        ("low-rank e=0.9 + recovery", {"lowrank.energy": 0.9, **rec}),
        (
            "distill 4 layers",
            {"distill.layers": 4, "distill.steps": distill, "distill.batch_size": 16},
        ),
        (
            "distill 4 + prune 50% + int8",
            {
                "distill.layers": 4,
                "distill.steps": distill,
                "distill.batch_size": 16,
                "prune.sparsity": 0.5,
                "quant.bits": 8,
                **rec,
            },
        ),
        (
            "binary (1-bit) QAT + recovery",
            {"quant.bits": 1, "quant.layer_bits.embeddings": 8, **low_bit},
        ),
        (
            "ternary (2-bit) QAT + recovery",
            {"quant.bits": 2, "quant.layer_bits.embeddings": 8, **low_bit},
        ),
        ("hidden 75% + recovery", {"hidden.keep": 0.75, **rec}),
        ("share 3 groups (of 6 layers) + recovery", {"share.groups": 3, **rec}),
        ("hashed 25% (attention + ffn) + recovery", {"hash.ratio": 0.25, **rec}),
        *_toolbox_rows(rec),
    ]


def _toolbox_rows(rec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Tensor decomposition, efficient attention and early exit (issue 14, items 5-7)."""
    return [
        (
            "tensor TT r=16 (emb + QKV) + recovery",
            {"tensor.method": "tt", "tensor.rank": 16, **rec},
        ),
        (
            "tensor CP r=32 (QKV) + recovery",
            {"tensor.method": "cp", "tensor.rank": 32, "tensor.targets": "attention", **rec},
        ),
        (
            "local attention w=16 + recovery",
            {"attention.kind": "local", "attention.window": 16, **rec},
        ),
        ("linear attention + recovery", {"attention.kind": "linear", **rec}),
        (
            "early exit after 2,4 @0.9 (expected)",
            {"exit.layers": "2,4", "exit.threshold": 0.9, "exit.steps": 200},
        ),
    ]


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _ort_accuracy(session: Any, tokenizer: Any, examples: Any, seq_len: int) -> float:
    correct = 0
    for ex in examples:
        enc = tokenizer(
            ex.text, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np"
        )
        feeds = {k: enc[k].astype("int64") for k in ("input_ids", "attention_mask")}
        feeds["token_type_ids"] = enc.get("token_type_ids", feeds["input_ids"] * 0).astype("int64")
        logits = session.run(["logits"], feeds)[0]
        correct += int(logits.argmax(-1)[0] == ex.label)
    return correct / len(examples)


def _time_side_by_side(
    sessions: dict[str, Any], feeds: dict[str, Any], *, rounds: int, block: int
) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():  # warm-up
        for _ in range(3):
            session.run(["logits"], feeds)
    for _ in range(rounds):
        for name, session in sessions.items():
            for _ in range(block):
                t = time.perf_counter()
                session.run(["logits"], feeds)
                times[name].append((time.perf_counter() - t) * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--quick", action="store_true", help="small budgets, 300 test examples")
    parser.add_argument("--recovery-steps", type=int, default=None)
    parser.add_argument("--distill-steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--rows", default="", help="comma-separated row numbers to run")
    parser.add_argument(
        "--devices", default="rpi4,stm32h7", help="hardware-model predictions (empty: none)"
    )
    parser.add_argument(
        "--long-seq", type=int, default=256, help="second sequence length of attention rows"
    )
    parser.add_argument(
        "--exit-layers", default="2,4", help="exit.layers of the early-exit row (tiny-bert: 1)"
    )
    args = parser.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.table import Table

    from paretoedge.compression import CompressionSpec, compress, export_onnx
    from paretoedge.hardware_profiles import predict
    from paretoedge.tasks import load_task
    from paretoedge.teachers import get_teacher
    from paretoedge.training import evaluate, make_batches

    torch.set_num_threads(2)
    devices = [d for d in args.devices.split(",") if d]
    recovery = (
        args.recovery_steps if args.recovery_steps is not None else (30 if args.quick else 100)
    )
    distill = args.distill_steps if args.distill_steps is not None else (60 if args.quick else 200)
    console = Console(stderr=True)
    teacher, tokenizer = get_teacher(args.model, args.task, progress=True)
    task = load_task(args.task)
    test = task.test[:300] if args.quick else task.test
    calibration = make_batches(tokenizer, task.train[:64], batch_size=16, max_length=args.seq_len)
    rows = _rows(recovery, distill)
    if args.rows:
        wanted = {int(i) for i in args.rows.split(",")}
        rows = [r for i, r in enumerate(rows) if i == 0 or i in wanted]

    results: list[dict[str, Any]] = []
    sessions: dict[str, Any] = {}
    long_rows: list[dict[str, Any]] = []
    long_sessions: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, flat) in enumerate(rows):
            start = time.perf_counter()
            if "exit.layers" in flat:
                flat = {**flat, "exit.layers": args.exit_layers}
                name = name.replace("2,4", args.exit_layers)
            spec = CompressionSpec.from_flat(flat)
            result = compress(teacher, spec, teacher=teacher, tokenizer=tokenizer, task=task)
            path = export_onnx(result.model, Path(tmp) / f"{i}.onnx", seq_len=args.seq_len)
            fractions: tuple[float, ...] = ()
            if spec.exit is not None:
                accuracy, fractions, predicted = _exit_row(
                    result.model, tokenizer, test, path, args, devices, sessions, name
                )
            else:
                accuracy = evaluate(result.model, tokenizer, test, batch_size=64)
                sessions[name] = _ort_session(path, args.threads)
                predicted = _predict(path, devices)
            if i == 0 or spec.attention is not None:
                long_path = export_onnx(
                    result.model, Path(tmp) / f"{i}.long.onnx", seq_len=args.long_seq
                )
                long_sessions[name] = _ort_session(long_path, args.threads)
                long_rows.append(
                    {"name": name, "short": predicted, "long": _predict(long_path, devices)}
                )
            results.append(
                {
                    "name": name,
                    "parameters": result.stats.parameters,
                    "stored_mb": result.stats.stored_bytes / 1e6,
                    "accuracy": accuracy,
                    "wall_s": time.perf_counter() - start,
                    "predicted": predicted,
                    "fractions": fractions,
                }
            )
            console.log(f"{name}: acc {accuracy:.4f}, {results[-1]['wall_s']:.0f} s")
            if flat == {"quant.bits": 8}:
                qname = "int8 QDQ ONNX (onnxruntime)"
                qpath = export_onnx(
                    result.model,
                    Path(tmp) / f"{i}.int8.onnx",
                    seq_len=args.seq_len,
                    int8_qdq=True,
                    calibration=calibration,
                )
                sessions[qname] = _ort_session(qpath, args.threads)
                results.append(
                    {
                        "name": qname,
                        "parameters": result.stats.parameters,
                        "stored_mb": qpath.stat().st_size / 1e6,
                        "accuracy": _ort_accuracy(sessions[qname], tokenizer, test, args.seq_len),
                        "wall_s": 0.0,
                        "predicted": {d: predict(qpath, d).latency_ms for d in devices},
                    }
                )
                console.log(f"{qname}: acc {results[-1]['accuracy']:.4f}")
        feeds = {
            k: v[:1]
            for k, v in make_batches(tokenizer, test[:1], batch_size=1, max_length=args.seq_len)[
                0
            ].items()
        }
        from paretoedge.compression._export import fit_inputs

        feed = fit_inputs(feeds, batch_size=1, seq_len=args.seq_len)[0]
        latency = _time_side_by_side(sessions, feed, rounds=5 if args.quick else 10, block=10)
        long_latency: dict[str, float] = {}
        if long_sessions:
            long_feed = fit_inputs(
                {
                    k: v[:1]
                    for k, v in make_batches(
                        tokenizer, test[:1], batch_size=1, max_length=args.long_seq
                    )[0].items()
                },
                batch_size=1,
                seq_len=args.long_seq,
            )[0]
            long_latency = _time_side_by_side(long_sessions, long_feed, rounds=3, block=5)
    for r in results:
        if r.get("fractions"):  # early exit: expected ORT latency over the exit distribution
            prefixes = [latency.pop(f"{r['name']}#{k}") for k in range(len(r["fractions"]))]
            latency[r["name"]] = sum(f * t for f, t in zip(r["fractions"], prefixes, strict=True))

    base = latency[results[0]["name"]]
    table = Table(
        title=f"{args.model} on {args.task}: test accuracy on {len(test)} examples, "
        f"onnxruntime CPU latency [1, {args.seq_len}], {args.threads} thread(s)"
    )
    cols = ("transform", "parameters", "stored MB", "test acc", "latency ms", "x fp32")
    for col in (*cols, *(f"{d} ms (model)" for d in devices)):
        table.add_column(col, justify="left" if col == "transform" else "right")
    for r in results:
        ms = latency[r["name"]]
        table.add_row(
            r["name"],
            f"{r['parameters']:,}",
            f"{r['stored_mb']:.2f}",
            f"{r['accuracy']:.4f}",
            f"{ms:.2f}",
            f"{ms / base:.2f}",
            *(f"{r['predicted'][d]:.2f}" for d in devices),
        )
        if r.get("fractions"):
            print(f"{r['name']}: exit distribution {[round(f, 3) for f in r['fractions']]}")
    Console(width=160).print(table)
    if long_rows:
        _print_long(long_rows, long_latency, latency, devices, args)
    print(
        f"recovery steps {recovery}, distill steps {distill}; stored MB of the int8 QDQ row is "
        "the .onnx file size; others count packed weights (see model_stats)."
    )
    return 0


def _predict(path: Path, devices: list[str]) -> dict[str, float]:
    from paretoedge.hardware_profiles import predict

    return {d: predict(path, d).latency_ms for d in devices}


def _exit_row(
    model: Any,
    tokenizer: Any,
    test: Any,
    path: Path,
    args: Any,
    devices: list[str],
    sessions: dict[str, Any],
    name: str,
) -> tuple[float, tuple[float, ...], dict[str, float]]:
    """Accuracy with exits on, the exit distribution on the test split, and the expected
    hardware-model latency from one ONNX per exit prefix (as the search scores it)."""
    from paretoedge.compression import exit_inference, export_exits
    from paretoedge.search._exits import score_exits
    from paretoedge.training import make_batches

    batches = make_batches(tokenizer, test, batch_size=64, max_length=args.seq_len)
    outcome = exit_inference(model, batches)
    paths = export_exits(model, path, seq_len=args.seq_len)
    for k, n in enumerate(sorted(paths)):
        sessions[f"{name}#{k}"] = _ort_session(paths[n], args.threads)
    metrics, _ = score_exits(paths, outcome.fractions, devices)
    predicted = {d: metrics[d].latency_ms for d in devices}
    return outcome.accuracy, outcome.fractions, predicted


def _print_long(
    rows: list[dict[str, Any]],
    long_latency: dict[str, float],
    latency: dict[str, float],
    devices: list[str],
    args: Any,
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"attention at [1, {args.seq_len}] vs [1, {args.long_seq}] tokens")
    table.add_column("transform")
    for seq in (args.seq_len, args.long_seq):
        table.add_column(f"ORT ms @{seq}", justify="right")
        for d in devices:
            table.add_column(f"{d} @{seq}", justify="right")
    for r in rows:
        cells = [r["name"], f"{latency[r['name']]:.2f}"]
        cells += [f"{r['short'][d]:.2f}" for d in devices]
        cells += [f"{long_latency[r['name']]:.2f}"]
        cells += [f"{r['long'][d]:.2f}" for d in devices]
        table.add_row(*cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    sys.exit(main())
