"""How well does the latency model rank and predict real latencies on this machine?

Builds N varied BERT candidates (layers, hidden, heads, FFN width, sequence length), measures
each for real on this machine with the TVM default build in the Relax VM and with
onnxruntime (median of repeats: the machine is shared, medians resist the noise), optionally
one-token decoder steps for onnxruntime (``--n-decoders``, none of bench/truth's), fits the
``host`` / ``host-ort`` profile factors on a random part and reports Kendall tau and MAPE of
predicted vs measured latency on the rest.

    python bench/latency_fidelity.py --n 36 --out /tmp/fidelity [--write-profiles]

``--write-profiles`` writes the fitted factors back into hardware_profiles/devices/host*.yaml
(keeping their source comments).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import random
import statistics
import sys
import time
from pathlib import Path

from paretoedge.hardware_profiles import (
    fit_profile,
    kendall_tau,
    load_profile,
    mape,
    measure_ort,
    measure_tvm,
    write_profile,
)
from paretoedge.hardware_profiles._calibrate import feature_rows, predict_from_features
from paretoedge.hardware_profiles._graph import prepare
from paretoedge.hardware_profiles._measure import (
    Measurement,
    example_inputs,
    measure_matmul_table,
    ort_session,
)
from paretoedge.hardware_profiles._profile import MatmulTable
from paretoedge.hardware_profiles._synthetic import BertShape, make_bert_onnx

RUNTIMES = {"tvm-default": "host", "onnxruntime": "host-ort", "onnxruntime-1t": "host-ort"}
# the runtimes whose fits --write-profiles writes: host-ort models ONE onnxruntime thread, as
# 2-thread timings on this shared 2-vCPU machine measure the other jobs' load (see README)
WRITTEN = ("tvm-default", "onnxruntime-1t")
_VOCAB = 30522  # the teacher's vocabulary: embeddings are part of what a candidate moves

# Variants as onnxruntime / TVM really execute them. Bit-widths written only as
# paretoedge.layers metadata are NOT in the truth set: both runtimes run such a file in fp32,
# so its measured latency says nothing about an int8 kernel. Quantisation enters as real int8
# QDQ exports of MiniLM instead (onnxruntime only: TVM legalizes QDQ to fp32 kernels).
_VARIANTS: list[dict[str, float | int]] = [{}, {}, {}, {"sparsity": 0.8}]
# real compressed MiniLM variants (no training: latency does not depend on weight values);
# value = (flat CompressionSpec, int8 QDQ export)
_REAL_SPECS: dict[str, tuple[dict[str, float | int], bool]] = {
    "minilm": ({}, False),
    "minilm-h50-f50": ({"heads.keep": 0.5, "ffn.keep": 0.5}, False),
    "minilm-l3-f50": ({"distill.layers": 3, "distill.steps": 0, "ffn.keep": 0.5}, False),
    "minilm-l4-h75": ({"distill.layers": 4, "distill.steps": 0, "heads.keep": 0.75}, False),
    "minilm-p80": ({"prune.sparsity": 0.8}, False),
    "minilm-qdq8": ({}, True),
    "minilm-h50-f50-qdq8": ({"heads.keep": 0.5, "ffn.keep": 0.5}, True),
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One ONNX file of the fidelity set and its analytic encoder FLOPs (for stratifying)."""

    path: Path
    gflop: float
    real: bool
    int8: bool = False


def _encoder_gflop(layers: int, hidden: int, attn: int, ffn: int, seq: int) -> float:
    """Multiply-adds x 2 of the encoder Linears and the two attention batched matmuls."""
    linears = 2 * seq * layers * (3 * hidden * attn + attn * hidden + 2 * hidden * ffn)
    return (linears + 4 * layers * seq * seq * attn) / 1e9


def synthetic_shapes(n: int, seed: int) -> list[tuple[BertShape, dict[str, float | int]]]:
    """``n`` distinct candidates spanning tiny models to MiniLM-L6 scale, with variants."""
    rng = random.Random(seed)
    out: list[tuple[BertShape, dict[str, float | int]]] = []
    seen = set()
    while len(out) < n:
        hidden = rng.choice([128, 192, 256, 320, 384])
        heads = rng.choice([h for h in (2, 4, 6, 8, 12) if hidden % h == 0])
        shape = BertShape(
            layers=rng.randint(1, 6),
            hidden=hidden,
            heads=heads,
            ffn=rng.choice([256, 512, 768, 1024, 1536]),
            seq_len=rng.choice([32, 64, 96, 128]),
            vocab=_VOCAB,
            keep_heads=rng.choice([None, None, None, max(1, heads // 2)]),
        )
        kw = rng.choice(_VARIANTS)
        tag = _tag(shape, kw)
        if tag not in seen:
            seen.add(tag)
            out.append((shape, kw))
    return out


def _tag(shape: BertShape, kw: dict[str, float | int]) -> str:
    return shape.tag + "".join(f"-{k}{v}" for k, v in sorted(kw.items()))


def build_candidates(n: int, seed: int, out: Path, *, real: bool) -> list[Candidate]:
    cands = []
    for shape, kw in synthetic_shapes(n, seed):
        path = out / f"{_tag(shape, kw)}.onnx"
        if not path.exists():
            make_bert_onnx(path, shape, seed=seed, **kw)  # type: ignore[arg-type]
        attn = (shape.keep_heads or shape.heads) * (shape.hidden // shape.heads)
        gflop = _encoder_gflop(shape.layers, shape.hidden, attn, shape.ffn, shape.seq_len)
        cands.append(Candidate(path, gflop, False))
    if real:
        cands.extend(real_candidates(out))
    return cands


def real_candidates(out: Path, seq_len: int = 64) -> list[Candidate]:
    """The bundled teacher and compressed variants of it, exported by the compression half."""
    from paretoedge.compression import CompressionSpec, compress, export_onnx
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task
    from paretoedge.training import make_batches

    tokenizer = load_tokenizer("minilm")
    task = load_task("sentiment", limit=64)
    calibration = make_batches(tokenizer, task.train[:32], batch_size=8, max_length=seq_len)
    cands = []
    for name, (flat, qdq) in _REAL_SPECS.items():
        path = out / f"{name}-S{seq_len}.onnx"
        model = load_model("minilm")
        if flat:
            spec = CompressionSpec.from_flat(flat)
            model = compress(model, spec, teacher=load_model("minilm")).model
        if not path.exists():
            export_onnx(
                model, path, seq_len=seq_len, int8_qdq=qdq, calibration=calibration if qdq else None
            )
        layers = len(model.bert.encoder.layer)
        first = model.bert.encoder.layer[0]
        attn = first.attention.self.query.out_features
        ffn = first.intermediate.dense.out_features
        gflop = _encoder_gflop(layers, model.config.hidden_size, attn, ffn, seq_len)
        cands.append(Candidate(path, gflop, True, qdq))
    return cands


def small_shapes(n: int, seed: int) -> list[BertShape]:
    """``n`` distinct small BERTs (hidden 32-256, vocabulary 1000) below the sweep above: the
    TVM set needs them, its fit otherwise extrapolates to tiny models (the ones tests use)."""
    rng = random.Random(seed)
    out: list[BertShape] = []
    seen = set()
    while len(out) < n:
        hidden = rng.choice([32, 64, 96, 128, 192, 256])
        heads = rng.choice([h for h in (1, 2, 4, 8) if hidden % h == 0 and hidden // h >= 8])
        shape = BertShape(
            layers=rng.choice([1, 2, 3, 4]),
            hidden=hidden,
            heads=heads,
            ffn=hidden * rng.choice([1, 2, 4]),
            seq_len=rng.choice([16, 32, 64, 128]),
        )
        if shape.tag not in seen:
            seen.add(shape.tag)
            out.append(shape)
    return out


def small_candidates(n: int, seed: int, out: Path) -> list[Candidate]:
    cands = []
    for shape in small_shapes(n, seed):
        path = out / "small" / f"{shape.tag}.onnx"
        if not path.exists():
            make_bert_onnx(path, shape, seed=seed)
        gflop = _encoder_gflop(shape.layers, shape.hidden, shape.hidden, shape.ffn, shape.seq_len)
        cands.append(Candidate(path, gflop, False))
    return cands


#: Seed offset of the decoder steps fitted here: bench/truth_sets.py draws its (held-out)
#: decoders with the run's seed, these with another, and any repeat of a truth-set shape is
#: dropped (:func:`decoder_candidates`).
_DECODER_SEED_OFFSET = 1000


def _truth_tags(truth_dir: Path) -> set[str]:
    """The model tags of the committed truth sets (never fitted here: they check the fit)."""
    tags: set[str] = set()
    for csv_path in truth_dir.glob("*.csv"):
        with csv_path.open() as f:
            lines = [line for line in f if not line.startswith("#")]
        tags.update(row["model"] for row in csv.DictReader(lines) if "model" in row)
    return tags


def decoder_candidates(n: int, seed: int, out: Path) -> list[Candidate]:
    """``n`` one-token decoder steps (KV cache, beam batch, large vocabulary projection) of
    the family bench/truth_sets.py measures, none of them a truth-set shape.

    Why: to check whether an encoder-only fit extrapolates to decoder steps (batch-1 GEMVs,
    a 32k-wide output projection, Concat on the cache). Measured 2026-11-24 on one quiet AMD
    EPYC, truth sets and fits from the same hour: adding 12 of them to the fit did not help
    the truth sets' held-out rows (bench/calibration.py zero-shot host-ort, ort1: tau 0.967 /
    MAPE 11.1 % encoder-only, 0.950 / 13.6 % with decoders; ort2: 0.917 / 63.0 % and
    0.933 / 66.5 %), so the default is none.
    """
    import truth_sets  # the sibling script: one definition of the decoder family

    banned = _truth_tags(Path(__file__).parent / "truth")
    cands: list[Candidate] = []
    draw = seed + _DECODER_SEED_OFFSET
    while len(cands) < n:
        for spec in truth_sets.decoder_specs(n, draw):
            tag = truth_sets.spec_tag(spec)
            if tag in banned or any(c.path.stem == tag for c in cands) or len(cands) >= n:
                continue
            path = truth_sets.build_onnx(spec, out / "decoders")
            h, b = spec["hidden"], spec["batch"]
            per_layer = 4 * h * h + 2 * h * spec["ffn"] + 2 * spec["ctx"] * h
            gflop = 2 * b * (spec["layers"] * per_layer + h * spec["vocab"]) / 1e9
            cands.append(Candidate(path, gflop, False))
        draw += 1
    return cands


def stratified_split(
    cands: list[Candidate], train_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Sort by size and split every block of 5 neighbours: held-out models span all sizes.

    The bundled teacher is always held out: it is the model whose prediction matters most.
    """
    rng = random.Random(seed)
    order = sorted(range(len(cands)), key=lambda i: cands[i].gflop)
    n_test_block = max(1, round(5 * (1 - train_fraction)))
    train, test = [], []
    for b in range(0, len(order), 5):
        block = order[b : b + 5]
        held = set(rng.sample(block, min(n_test_block, len(block) - 1 or 1)))
        for i in block:
            (test if i in held else train).append(i)
    for i, c in enumerate(cands):
        if c.real and c.path.stem.startswith("minilm-S") and i in train:
            train.remove(i)
            test.append(i)
    return train, test


def spread(indices: list[int], cands: list[Candidate], k: int) -> list[int]:
    """``k`` of ``indices`` evenly spaced in size (the TVM set: its builds are slow)."""
    order = sorted(indices, key=lambda i: cands[i].gflop)
    if k >= len(order):
        return order
    return sorted({order[round(j * (len(order) - 1) / (k - 1))] for j in range(k)})


def measure_ort_threads(path: Path, threads: int, repeats: int, warmup: int) -> Measurement:
    prepared = prepare(path)
    session = ort_session(path, threads=threads)
    names = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in example_inputs(prepared).items() if k in names}
    samples = []
    for _ in range(warmup):
        session.run(None, feeds)
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds)
        samples.append((time.perf_counter() - start) * 1e3)
    return Measurement(f"onnxruntime-{threads}t", statistics.median(samples), min(samples), repeats)


def prediction_table(out: Path) -> str:
    """Markdown table of predicted latency on every bundled device for the bundled teacher
    (MiniLM-L6 exported at seq 64) and compressed-shape variants with bit-width metadata."""
    from paretoedge.compression import export_onnx
    from paretoedge.hardware_profiles import predict
    from paretoedge.models import load_model

    out.mkdir(parents=True, exist_ok=True)
    models: dict[str, Path] = {}
    teacher = out / "minilm-s64.onnx"
    if not teacher.exists():
        export_onnx(load_model("minilm"), teacher, seq_len=64)
    models["minilm fp32 (L6 H384)"] = teacher
    vocab = 30522
    w8: dict[str, int] = {"bits": 8, "act_bits": 8}
    variants = {
        "L6 H384 w8a8": (BertShape(6, 384, 12, 1536, 64, 1, vocab), w8),
        "L4 H384 F768 fp32": (BertShape(4, 384, 12, 768, 64, 1, vocab), {}),
        "L4 H384 F768 w8a8": (BertShape(4, 384, 12, 768, 64, 1, vocab), w8),
        "L2 H256 F512 w4a8": (BertShape(2, 256, 8, 512, 64, 1, vocab), {"bits": 4, "act_bits": 8}),
        "L2 H128 F256 V8k w8a8": (BertShape(2, 128, 4, 256, 64, 1, 8000), w8),
    }
    for name, (shape, kw) in variants.items():
        path = out / (shape.tag + "-" + "-".join(f"{k}{v}" for k, v in kw.items()) + ".onnx")
        if not path.exists():
            make_bert_onnx(path, shape, **kw)
        models[name] = path
    devices = ["host", "host-ort", "rpi4", "pixel-a76", "mali-g76", "stm32h7"]
    lines = [
        "| model | " + " | ".join(devices) + " | stm32h7 memory |",
        "|---|" + "---|" * (len(devices) + 1),
    ]
    for name, path in models.items():
        cells, mcu = [], ""
        for device in devices:
            pred = predict(path, device)
            cells.append(f"{pred.latency_ms:.2f}")
            if device == "stm32h7":
                mcu = "ok" if pred.feasible else "; ".join(pred.violations)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mcu} |")
    return "\n".join(lines)


def _header(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(lines)


def _load_measurements(path: Path) -> dict[tuple[str, str], tuple[float, float]]:
    measured: dict[tuple[str, str], tuple[float, float]] = {}
    if path.exists():
        with path.open() as fh:
            for row in csv.DictReader(fh):
                measured[(row["onnx"], row["runtime"])] = (
                    float(row["median_ms"]),
                    float(row["min_ms"]),
                )
    return measured


def _save_measurements(path: Path, measured: dict[tuple[str, str], tuple[float, float]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["onnx", "runtime", "median_ms", "min_ms"])
        for (name, rt), (med, best) in sorted(measured.items()):
            w.writerow([name, rt, f"{med:.5f}", f"{best:.5f}"])


# Weight shapes of the matmul table: the K and N of every candidate family here (hidden
# sizes, FFN widths, head-pruned attention widths, head dims and sequence lengths).
TABLE_DIMS = [8, 16, 32, 48, 64, 96, 128, 192, 256, 288, 320, 384, 512, 768, 1024, 1152, 1536]


def host_matmul_table(out: Path) -> MatmulTable:
    """The host's TVM matmul table, measured once into ``out/matmul_table.json``."""
    path = out / "matmul_table.json"
    if path.exists():
        data = json.loads(path.read_text())
    else:
        start = time.perf_counter()
        grid = measure_matmul_table(TABLE_DIMS, TABLE_DIMS)
        data = {"k": TABLE_DIMS, "n": TABLE_DIMS, "ns_per_mac": grid}
        path.write_text(json.dumps(data))
        print(
            f"matmul table: {len(grid) * len(grid[0])} shapes in "
            f"{time.perf_counter() - start:.0f}s",
            file=sys.stderr,
        )
    data["source"] = (
        "bench/latency_fidelity.py --matmul-table: TVM default matmul kernels built "
        "and timed in the Relax VM on this machine (M=64, fastest of 3-15 calls)"
    )
    return MatmulTable.from_dict(data, source=str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="synthetic candidates")
    parser.add_argument("--n-tvm", type=int, default=16, help="candidates also built by TVM")
    parser.add_argument("--no-real", action="store_true", help="skip the MiniLM variants")
    parser.add_argument(
        "--n-small", type=int, default=36, help="small BERTs (hidden 32-256) for the TVM set only"
    )
    parser.add_argument(
        "--n-decoders",
        type=int,
        default=0,
        help="one-token decoder steps for the onnxruntime sets (none of bench/truth's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.6)
    parser.add_argument("--ort-repeats", type=int, default=60)
    parser.add_argument("--tvm-repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("/tmp/paretoedge-fidelity"))
    parser.add_argument("--write-profiles", action="store_true")
    parser.add_argument(
        "--statistic",
        choices=["median", "min"],
        default="min",
        help="which measured statistic the written profiles are fitted to",
    )
    parser.add_argument(
        "--matmul-table",
        action="store_true",
        help="measure the TVM matmul kernel table on this machine (K x N grid) and cost the "
        "host's matmuls from it (written with --write-profiles)",
    )
    parser.add_argument(
        "--prediction-table",
        action="store_true",
        help="only print the predicted-latency table of the teacher and variants",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.prediction_table:
        print(prediction_table(args.out / "table"))
        return 0

    cands = build_candidates(args.n, args.seed, args.out, real=not args.no_real)
    paths = [c.path for c in cands]
    everything = list(range(len(cands)))
    teacher = [i for i, c in enumerate(cands) if c.real and c.path.stem.startswith("minilm-S")]
    fp32 = [i for i, c in enumerate(cands) if not c.int8]
    tvm_set = sorted(set(spread(fp32, cands, args.n_tvm)) | set(teacher))
    small = small_candidates(args.n_small, args.seed, args.out)
    tvm_set += list(range(len(cands), len(cands) + len(small)))
    cands += small
    paths += [c.path for c in small]
    decoders = decoder_candidates(args.n_decoders, args.seed, args.out)
    ort_set = everything + list(range(len(cands), len(cands) + len(decoders)))
    cands += decoders
    paths += [c.path for c in decoders]
    subsets = {"onnxruntime": ort_set, "onnxruntime-1t": ort_set, "tvm-default": tvm_set}

    meas_file = args.out / "measurements.csv"
    measured = _load_measurements(meas_file)
    jobs = {
        "onnxruntime": lambda p: measure_ort(p, repeats=args.ort_repeats),
        "onnxruntime-1t": lambda p: measure_ort_threads(p, 1, args.ort_repeats, 5),
        # small models run in milliseconds: more repeats for them
        "tvm-default": lambda p: measure_tvm(
            p, repeats=15 if p.parent.name == "small" else args.tvm_repeats, warmup=1
        ),
    }
    for runtime, fn in jobs.items():
        for i in subsets[runtime]:
            p = paths[i]
            if (p.name, runtime) in measured:
                continue
            start = time.perf_counter()
            m = fn(p)
            measured[(p.name, runtime)] = (m.median_ms, m.min_ms)
            print(
                f"{runtime:14s} {p.stem:44s} {cands[i].gflop:6.3f} GFLOP {m.median_ms:9.3f} ms "
                f"(min {m.min_ms:.3f}, {time.perf_counter() - start:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            _save_measurements(meas_file, measured)

    results: dict[str, dict] = {}
    stat_index = {"median": 0, "min": 1}
    rows_by_device: dict[str, list[dict[str, float]]] = {}
    for stat, runtime in [(s, r) for r in RUNTIMES for s in ("median", "min")]:
        device = RUNTIMES[runtime]
        profile = load_profile(device)
        if device == "host" and args.matmul_table:
            profile = dataclasses.replace(profile, matmul_table=host_matmul_table(args.out))
        if device not in rows_by_device:
            rows_by_device[device] = dict(zip(paths, feature_rows(paths, profile), strict=True))
        rows = [rows_by_device[device][p] for p in paths]
        subset = subsets[runtime]
        sub = [cands[i] for i in subset]
        tr, te = stratified_split(sub, args.train_fraction, args.seed)
        train, test = [subset[j] for j in tr], [subset[j] for j in te]
        y = {i: measured[(paths[i].name, runtime)][stat_index[stat]] for i in subset}
        report = fit_profile(
            profile,
            [rows[i] for i in train],
            [y[i] for i in train],
            note=f"bench/latency_fidelity.py --n {args.n} --n-tvm {args.n_tvm} "
            f"--n-decoders {args.n_decoders} --seed "
            f"{args.seed}: {stat} latencies ({runtime}), {len(train)} fitted, "
            f"{len(test)} held out (stratified by size)",
        )
        pred = [predict_from_features(rows[i], report.profile) for i in test]
        meas = [y[i] for i in test]
        test_tau, test_mape = kendall_tau(pred, meas), mape(pred, meas)
        within10 = sum(abs(p - m) / m <= 0.10 for p, m in zip(pred, meas, strict=True))
        fitted = report.profile
        calib = dict(fitted.calibration or {})
        calib.update(
            {
                "test_n": len(test),
                "test_kendall_tau": round(test_tau, 3),
                "test_mape_pct": round(test_mape, 2),
            }
        )
        fitted = dataclasses.replace(fitted, calibration=calib)
        per_model = {
            paths[i].stem: {
                "gflop": round(cands[i].gflop, 4),
                "measured_ms": round(y[i], 3),
                "predicted_ms": round(predict_from_features(rows[i], fitted), 3),
                "held_out": i in test,
            }
            for i in subset
        }
        results[f"{runtime}/{stat}"] = {
            "device": device,
            "train_n": len(train),
            "test_n": len(test),
            "fit_mape_pct": report.mape,
            "fit_tau": report.kendall_tau,
            "test_kendall_tau": test_tau,
            "test_mape_pct": test_mape,
            "test_within_10pct": within10,
            "kernel_scale": fitted.kernel_scale,
            "restream_gbs": fitted.restream_gbs,
            "launch_overhead_us": fitted.launch_overhead_us,
            "call_overhead_us": fitted.call_overhead_us,
            "measured_range_ms": [min(y.values()), max(y.values())],
            "models": per_model,
        }
        teach = [per_model[paths[i].stem] for i in teacher if i in subset]
        teach_s = (
            f" | teacher: predicted {teach[0]['predicted_ms']:.2f} ms, measured "
            f"{teach[0]['measured_ms']:.2f} ms"
            if teach
            else ""
        )
        print(
            f"{runtime:14s} {stat:6s} ({device}): fit on {len(train)}: MAPE {report.mape:.1f}% "
            f"tau {report.kendall_tau:.3f} | held-out {len(test)}: tau {test_tau:.3f}, "
            f"MAPE {test_mape:.1f}%, within 10%: {within10}/{len(test)}" + teach_s
        )
        if args.write_profiles and stat == args.statistic and runtime in WRITTEN:
            src = Path(__file__).resolve().parents[1] / "hardware_profiles" / "devices"
            target = src / f"{device}.yaml"
            write_profile(fitted, target, header=_header(target))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
