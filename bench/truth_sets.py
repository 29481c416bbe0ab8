"""Build and measure this machine's latency truth sets for calibration (bench/calibration.py).

Each set is one runtime on this host timing the same models: BERT encoders (varied layers,
width, heads, FFN, sequence) and decoder-style one-token steps (a KV cache of ``ctx`` tokens,
beam batch 1-8, a large output projection: vocabulary 8k-32k; the biggest decoders carry more
weights than the host's last-level cache, so their steps stream weights from DRAM).

    nice -n 10 python bench/truth_sets.py --runtimes torch,ort1,ort2 --out bench/truth
    nice -n 10 python bench/truth_sets.py --runtimes tvm --out bench/truth

Writes ``bench/truth/<runtime>.csv`` with one row per model: the spec (JSON; rebuilt
deterministically by :func:`build_onnx`), median and min latency in ms, and the command. ONNX
files go to ``--onnx-dir`` (not committed: the biggest are over 100 MB).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNTIMES = ("torch", "ort1", "ort2", "tvm")
DEFAULT_ONNX_DIR = Path("/tmp/paretoedge-truth-onnx")


def encoder_specs(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        heads = rng.choice([2, 4, 8])
        hidden = heads * rng.choice([16, 32, 48])
        out.append(
            {
                "arch": "bert",
                "layers": rng.randint(1, 4),
                "hidden": hidden,
                "heads": heads,
                "ffn": hidden * rng.choice([1, 2, 4]),
                "seq": rng.choice([16, 32, 64, 128]),
                "batch": 1,
                "vocab": rng.choice([1000, 8000, 30522]),
            }
        )
    return out


def decoder_specs(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed + 1)
    out = []
    for i in range(n):
        heads = rng.choice([4, 8])
        hidden = heads * rng.choice([32, 64, 96])
        out.append(
            {
                "arch": "decoder",
                "layers": rng.randint(1, 6),
                "hidden": hidden,
                "heads": heads,
                "ffn": hidden * 4,
                "ctx": rng.choice([16, 32, 64]),
                "batch": rng.choice([1, 2, 5, 8]),
                # every third decoder has the 32k vocabulary of a translation model
                "vocab": 32000 if i % 3 == 0 else rng.choice([8000, 16000, 32000]),
            }
        )
    return out


def spec_tag(spec: dict[str, Any]) -> str:
    keys = ("layers", "hidden", "heads", "ffn", "seq", "ctx", "batch", "vocab")
    return spec["arch"] + "-" + "-".join(f"{k[0]}{spec[k]}" for k in keys if k in spec)


def _decoder_module(spec: dict[str, Any]):  # -> torch.nn.Module
    import torch
    from torch import nn

    hidden, heads, b = spec["hidden"], spec["heads"], spec["batch"]
    d = hidden // heads

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(hidden)
            self.q = nn.Linear(hidden, hidden)
            self.k = nn.Linear(hidden, hidden)
            self.v = nn.Linear(hidden, hidden)
            self.proj = nn.Linear(hidden, hidden)
            self.ln2 = nn.LayerNorm(hidden)
            self.up = nn.Linear(hidden, spec["ffn"])
            self.down = nn.Linear(spec["ffn"], hidden)

        def forward(self, x, k_cache, v_cache):  # noqa: ANN001, ANN202
            # shapes are Python ints from the spec: the export stays static (no Shape ops)
            h = self.ln1(x)
            q, k, v = self.q(h), self.k(h), self.v(h)
            q = q.reshape(b, 1, heads, d).transpose(1, 2)
            k = torch.cat([k_cache, k.reshape(b, 1, heads, d).transpose(1, 2)], dim=2)
            v = torch.cat([v_cache, v.reshape(b, 1, heads, d).transpose(1, 2)], dim=2)
            att = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(d), dim=-1) @ v
            x = x + self.proj(att.transpose(1, 2).reshape(b, 1, hidden))
            return x + self.down(nn.functional.gelu(self.up(self.ln2(x))))

    class DecoderStep(nn.Module):
        """One incremental decoding step of a pre-LN decoder over a cache of ``ctx`` tokens."""

        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(spec["vocab"], hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(spec["layers"]))
            self.ln = nn.LayerNorm(hidden)
            self.head = nn.Linear(hidden, spec["vocab"], bias=False)

        def forward(self, ids, k_cache, v_cache):  # noqa: ANN001, ANN202
            x = self.emb(ids)
            for i, blk in enumerate(self.blocks):
                x = blk(x, k_cache[i], v_cache[i])
            return self.head(self.ln(x))

    return DecoderStep().eval()


def build_torch(spec: dict[str, Any]) -> tuple[Any, tuple[Any, ...], list[str]]:
    """The model of ``spec`` (random weights, seed 0), example inputs and their names."""
    import torch

    torch.manual_seed(0)
    if spec["arch"] == "bert":
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(  # type: ignore[call-arg]
            vocab_size=spec["vocab"],
            hidden_size=spec["hidden"],
            num_hidden_layers=spec["layers"],
            num_attention_heads=spec["heads"],
            intermediate_size=spec["ffn"],
            max_position_embeddings=max(128, spec["seq"]),
            attn_implementation="eager",
        )
        model = BertForSequenceClassification(config).eval()
        ids = torch.randint(0, 100, (spec["batch"], spec["seq"]))
        inputs = (ids, torch.ones_like(ids), torch.zeros_like(ids))
        return model, inputs, ["input_ids", "attention_mask", "token_type_ids"]
    model = _decoder_module(spec)
    d = spec["hidden"] // spec["heads"]
    cache = (spec["layers"], spec["batch"], spec["heads"], spec["ctx"], d)
    inputs = (
        torch.randint(0, 100, (spec["batch"], 1)),
        torch.randn(cache),
        torch.randn(cache),
    )
    return model, inputs, ["input_ids", "k_cache", "v_cache"]


def build_onnx(spec: dict[str, Any], onnx_dir: Path = DEFAULT_ONNX_DIR) -> Path:
    """Export ``spec`` to ``onnx_dir/<tag>.onnx`` once (structure is all the cost model reads)."""
    import warnings

    import torch

    path = Path(onnx_dir) / f"{spec_tag(spec)}.onnx"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    model, inputs, names = build_torch(spec)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(path),
            input_names=names,
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )
    return path


def _timed(fn: Callable[[], Any], repeats: int, warmup: int, budget_s: float) -> list[float]:
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < repeats and (len(samples) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def measure(spec: dict[str, Any], runtime: str, path: Path, repeats: int) -> list[float]:
    if runtime == "torch":
        import torch

        torch.set_num_threads(1)
        model, inputs, _ = build_torch(spec)
        with torch.inference_mode():
            return _timed(lambda: model(*inputs), repeats, 5, 8.0)
    from paretoedge.hardware_profiles._graph import prepare
    from paretoedge.hardware_profiles._measure import TvmRunner, example_inputs, ort_session

    prepared = prepare(path)
    feeds = example_inputs(prepared)
    if runtime == "tvm":
        runner = TvmRunner(path, "host")
        return _timed(lambda: runner.run(feeds), max(3, repeats // 4), 1, 10.0)
    session = ort_session(path, threads=1 if runtime == "ort1" else 2)
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in feeds.items() if k in names}
    return _timed(lambda: session.run(None, feeds), repeats, 5, 8.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default="torch,ort1,ort2")
    parser.add_argument("--encoders", type=int, default=26)
    parser.add_argument("--decoders", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("bench/truth"))
    parser.add_argument("--onnx-dir", type=Path, default=DEFAULT_ONNX_DIR)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the best of this pass and the CSV already there (per model: the lower min "
        "and the lower median): passes at different times filter out other jobs' load",
    )
    args = parser.parse_args(argv)
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    for r in runtimes:
        if r not in RUNTIMES:
            parser.error(f"--runtimes: {r!r} is not one of {', '.join(RUNTIMES)}")
    specs = []
    for spec in encoder_specs(args.encoders, args.seed) + decoder_specs(args.decoders, args.seed):
        if spec not in specs:
            specs.append(spec)
    command = "nice -n 10 python " + " ".join(sys.argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {r: [] for r in runtimes}
    before = {r: _previous(args.out / f"{r}.csv") if args.merge else {} for r in runtimes}
    started = time.time()
    for i, spec in enumerate(specs):
        path = build_onnx(spec, args.onnx_dir)
        for r in runtimes:
            samples = measure(spec, r, path, args.repeats)
            row = {
                "model": spec_tag(spec),
                "spec": json.dumps(spec, sort_keys=True),
                "median_ms": round(statistics.median(samples), 4),
                "min_ms": round(min(samples), 4),
                "repeats": len(samples),
                "passes": 1,
            }
            old = before[r].get(row["model"])
            if old is not None:
                row["median_ms"] = min(row["median_ms"], float(old["median_ms"]))
                row["min_ms"] = min(row["min_ms"], float(old["min_ms"]))
                row["repeats"] += int(old["repeats"])
                row["passes"] += int(old.get("passes") or 1)
            rows[r].append(row)
            print(
                f"[{time.time() - started:6.0f}s] {i + 1}/{len(specs)} {r:5s} {spec_tag(spec)}: "
                f"{statistics.median(samples):.3f} ms",
                flush=True,
            )
        _write(args.out, rows, command)  # after every model: a crash keeps what was measured
    return 0


def _write(out: Path, rows: dict[str, list[dict[str, Any]]], command: str) -> None:
    for r, table in rows.items():
        target = out / f"{r}.csv"
        with target.open("w", newline="") as fh:
            fh.write(f"# {command}\n# host: {platform.processor() or platform.machine()}, ")
            fh.write(
                f"{_cpu_name()}, {os.cpu_count()} CPUs, load average "
                f"{os.getloadavg()[0]:.1f} when written (other jobs make timings noisy); "
                f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n"
            )
            writer = csv.DictWriter(fh, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        print(f"wrote {target}", file=sys.stderr)


def _previous(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with path.open() as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return {row["model"]: row for row in csv.DictReader(lines)}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())
