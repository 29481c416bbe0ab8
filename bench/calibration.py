"""Zero-shot and few-shot calibration against FLOPs and weight-bytes proxies, per truth set.

For each truth set (``bench/truth/*.csv``: one runtime on this host, made by
``bench/truth_sets.py``; ``hardware_profiles/truth/*.csv``: public measurements of real
boards), the rows are split once into a fit pool and a held-out part (stratified by measured
latency: 2 of every 5 neighbours held out). Then, on the held-out rows:

* zero-shot: the bundled profile as it is (Kendall tau, MAPE), against the ranking of FLOPs
  and weight bytes;
* k-shot (k = 10, 20): ``fit_profile`` (cross-validated ridge and proxy check, as
  ``paretoedge calibrate`` runs it) on k rows drawn from the pool, and three least-squares
  proxies fitted on the same k rows (FLOPs, weight bytes, FLOPs + operator count); mean over
  ``--draws`` random draws.

    python bench/calibration.py [--sets torch,ort1,ort2,tvm] [--draws 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from paretoedge.hardware_profiles import kendall_tau, load_profile, mape
from paretoedge.hardware_profiles._calibrate import (
    feature_rows,
    fit_profile,
    fit_proxy,
    predict_from_features,
)
from paretoedge.hardware_profiles._cost import CostTerms, proxy_value

sys.path.insert(0, str(Path(__file__).parent))
from truth_sets import DEFAULT_ONNX_DIR, build_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# truth set -> (CSV, profile used zero-shot and as the starting point of calibration)
SETS: dict[str, tuple[Path, str]] = {
    "torch": (ROOT / "bench/truth/torch.csv", "host-torch"),
    "ort1": (ROOT / "bench/truth/ort1.csv", "host-ort"),
    "ort2": (ROOT / "bench/truth/ort2.csv", "host-ort"),
    "tvm": (ROOT / "bench/truth/tvm.csv", "host"),
}
SHOTS = (10, 20)


@dataclass(frozen=True)
class Scores:
    tau: float
    mape: float


def read_truth(path: Path, statistic: str) -> list[tuple[dict, float]]:
    with path.open() as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return [(json.loads(r["spec"]), float(r[f"{statistic}_ms"])) for r in csv.DictReader(lines)]


def split(measured: list[float]) -> tuple[list[int], list[int]]:
    order = sorted(range(len(measured)), key=lambda i: measured[i])
    held = [i for j, i in enumerate(order) if j % 5 in (1, 3)]
    pool = [i for i in order if i not in held]
    return pool, held


def _score(pred: list[float], meas: list[float]) -> Scores:
    return Scores(kendall_tau(pred, meas), mape(pred, meas))


def _mean(scores: list[Scores]) -> Scores:
    return Scores(statistics.fmean(s.tau for s in scores), statistics.fmean(s.mape for s in scores))


def evaluate(name: str, csv_path: Path, device: str, draws: int, statistic: str) -> list[str]:
    truth = read_truth(csv_path, statistic)
    profile = load_profile(device)
    paths = [build_onnx(spec, DEFAULT_ONNX_DIR) for spec, _ in truth]
    rows: list[CostTerms] = feature_rows(paths, profile)
    y = [m for _, m in truth]
    pool, held = split(y)
    y_held = [y[i] for i in held]
    out = []
    zero = _score([predict_from_features(rows[i], profile) for i in held], y_held)
    flops_rank = kendall_tau([rows[i].flops for i in held], y_held)
    bytes_rank = kendall_tau([rows[i].weight_bytes for i in held], y_held)
    out.append(
        f"| {name} | {device} | 0 / {len(held)} | {zero.tau:.3f} | {zero.mape:.1f}% "
        f"| {flops_rank:.3f} | – | {bytes_rank:.3f} | – | – | – | – |"
    )
    for k in SHOTS:
        if k > len(pool):
            continue
        model, proxies = [], {p: [] for p in ("flops", "weight_bytes", "flops_ops")}
        warned = 0
        for d in range(draws if k < len(pool) else 1):
            fit_idx = random.Random(d).sample(pool, k)
            report = fit_profile(profile, [rows[i] for i in fit_idx], [y[i] for i in fit_idx])
            warned += report.cv is not None and report.cv.warning is not None
            model.append(
                _score([predict_from_features(rows[i], report.profile) for i in held], y_held)
            )
            for proxy, acc in proxies.items():
                coef = fit_proxy([rows[i] for i in fit_idx], [y[i] for i in fit_idx], proxy)
                acc.append(_score([proxy_value(rows[i], proxy, coef) for i in held], y_held))
        m = _mean(model)
        f, b, fo = (_mean(proxies[p]) for p in ("flops", "weight_bytes", "flops_ops"))
        out.append(
            f"| {name} | {device} | {k} / {len(held)} | {m.tau:.3f} | {m.mape:.1f}% "
            f"| {f.tau:.3f} | {f.mape:.1f}% | {b.tau:.3f} | {b.mape:.1f}% "
            f"| {fo.tau:.3f} | {fo.mape:.1f}% | {warned}/{len(model)} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--statistic", choices=("min", "median"), default="min")
    args = parser.parse_args(argv)
    print(
        "| set | profile | shots / held out | model tau | model MAPE | FLOPs tau | FLOPs MAPE "
        "| weight-bytes tau | weight-bytes MAPE | FLOPs+ops tau | FLOPs+ops MAPE "
        "| proxy check fired |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.sets.split(","):
        csv_path, device = SETS[name]
        if not csv_path.is_file():
            print(f"| {name} | {device} | no truth file {csv_path.name} |")
            continue
        start = time.time()
        for line in evaluate(name, csv_path, device, args.draws, args.statistic):
            print(line, flush=True)
        print(f"<!-- {name}: {time.time() - start:.0f} s -->", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
