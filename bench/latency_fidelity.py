"""How well does the latency model rank and predict real latencies on this machine?

Builds N varied BERT candidates (layers, hidden, heads, FFN width, sequence length), measures
each for real on this machine with the TVM default build in the Relax VM and with
onnxruntime (median of repeats: the machine is shared, medians resist the noise), fits the
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
from paretoedge.hardware_profiles._synthetic import BertShape, make_bert_onnx

RUNTIMES = {"tvm-default": ("host", measure_tvm), "onnxruntime": ("host-ort", measure_ort)}


def candidates(n: int, seed: int) -> list[BertShape]:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=36)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.6)
    parser.add_argument("--out", type=Path, default=Path("/tmp/paretoedge-fidelity"))
    parser.add_argument("--write-profiles", action="store_true")
    parser.add_argument(
        "--statistic",
        choices=["median", "min"],
        default="median",
        help="which measured statistic the written profiles are fitted to",
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

    shapes = candidates(args.n, args.seed)
    paths = []
    for shape in shapes:
        p = args.out / f"{shape.tag}.onnx"
        if not p.exists():
            make_bert_onnx(p, shape)
        paths.append(p)

    meas_file = args.out / "measurements.csv"
    measured: dict[tuple[str, str], tuple[float, float]] = {}
    if meas_file.exists():
        with meas_file.open() as fh:
            for row in csv.DictReader(fh):
                measured[(row["onnx"], row["runtime"])] = (
                    float(row["median_ms"]),
                    float(row["min_ms"]),
                )
    for i, p in enumerate(paths):
        for runtime, (_, fn) in RUNTIMES.items():
            if (p.name, runtime) in measured:
                continue
            start = time.perf_counter()
            m = fn(p)
            measured[(p.name, runtime)] = (m.median_ms, m.min_ms)
            print(
                f"[{i + 1}/{len(paths)}] {p.stem:28s} {runtime:12s} {m.median_ms:9.3f} ms "
                f"(min {m.min_ms:.3f}, {time.perf_counter() - start:.1f}s)",
                file=sys.stderr,
            )
            with meas_file.open("w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["onnx", "runtime", "median_ms", "min_ms"])
                for (name, rt), (med, best) in sorted(measured.items()):
                    w.writerow([name, rt, f"{med:.5f}", f"{best:.5f}"])

    order = list(range(len(paths)))
    random.Random(args.seed + 1).shuffle(order)
    n_train = int(round(len(order) * args.train_fraction))
    train, test = order[:n_train], order[n_train:]
    results = {}
    stat_index = {"median": 0, "min": 1}
    for stat, runtime in [(s, r) for r in RUNTIMES for s in ("median", "min")]:
        device = RUNTIMES[runtime][0]
        profile = load_profile(device)
        rows = feature_rows(paths, profile)
        y = [measured[(p.name, runtime)][stat_index[stat]] for p in paths]
        report = fit_profile(
            profile,
            [rows[i] for i in train],
            [y[i] for i in train],
            note=f"bench/latency_fidelity.py --n {args.n} --seed {args.seed}: "
            f"{stat} latencies, {len(train)} fitted, {len(test)} held out",
        )
        pred = [predict_from_features(rows[i], report.profile) for i in test]
        meas = [y[i] for i in test]
        prior = [predict_from_features(rows[i], profile) for i in test]
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
        results[f"{runtime}/{stat}"] = {
            "device": device,
            "train_n": len(train),
            "test_n": len(test),
            "fit_mape_pct": report.mape,
            "fit_tau": report.kendall_tau,
            "test_kendall_tau": test_tau,
            "test_mape_pct": test_mape,
            "test_within_10pct": within10,
            "prior_test_tau": kendall_tau(prior, meas),
            "kernel_scale": fitted.kernel_scale,
            "launch_overhead_us": fitted.launch_overhead_us,
            "call_overhead_us": fitted.call_overhead_us,
            "measured_range_ms": [min(y), max(y)],
        }
        print(
            f"{runtime:12s} {stat:6s} ({device}): fit on {len(train)}: MAPE {report.mape:.1f}% "
            f"tau {report.kendall_tau:.3f} | held-out {len(test)}: tau {test_tau:.3f}, "
            f"MAPE {test_mape:.1f}%, within 10%: {within10}/{len(test)}"
        )
        if args.write_profiles and stat == args.statistic:
            src = Path(__file__).resolve().parents[1] / "hardware_profiles" / "devices"
            target = src / f"{device}.yaml"
            write_profile(fitted, target, header=_header(target))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
