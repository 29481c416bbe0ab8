"""Public measurements of a real ARM board against the ``rpi4`` profile's memory model.

``bench/truth/rpi4_ollama_decode.csv``: decode speed of 11 LLMs on a Raspberry Pi 4
(ollama / llama.cpp, Q4_K_M, batch 1, one token per step; source in the file). A decode step
is matrix-vector work over every weight, so it tests exactly the regime the issue names:
weight streaming from LPDDR4. Each model's step is turned into cost terms from its
architecture (the kernels one llama.cpp step runs: 7 matmuls, 2 RMSNorms, ~6 elementwise
ops and 2 attention products per layer, the output projection), so the same fit that
``paretoedge calibrate`` runs applies; the split (fit / held) is fixed in the file.

    python bench/public_arm.py

Prints the held-out table (zero-shot and fitted on the 6 ``fit`` rows, against FLOPs and
weight-bytes proxies fitted on the same rows) and the bandwidth each row implies.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from paretoedge.hardware_profiles import kendall_tau, load_profile, mape
from paretoedge.hardware_profiles._calibrate import fit_profile, fit_proxy, predict_from_features
from paretoedge.hardware_profiles._cost import CostTerms, proxy_value
from paretoedge.hardware_profiles._profile import KERNEL_KINDS, DeviceProfile

DATA = Path(__file__).resolve().parent / "truth" / "rpi4_ollama_decode.csv"
Q4_K_M_BITS = 4.85  # llama.cpp k-quant blocks: 4-bit values, 6-bit block scales
Q6_K_BITS = 6.5625  # embeddings and output projection in a Q4_K_M file
CONTEXT = 128  # tokens already decoded (attention reads the KV cache; small either way)


def decode_step_terms(row: dict[str, str], profile: DeviceProfile) -> CostTerms:
    """Cost terms of one decode step of the row's architecture on ``profile``."""
    h, layers, ffn = int(row["hidden"]), int(row["layers"]), int(row["ffn"])
    vocab, heads, kv = int(row["vocab"]), int(row["heads"]), int(row["kv_heads"])
    d = h // heads
    peak = profile.peak_gops["int8"] * 1e9  # Q4 x Q8 dot products run on the int8 path
    mm, red, ew = (KERNEL_KINDS.index(k) for k in ("matmul", "reduction", "elementwise"))
    kind, compute, dram, cache, matvec = [], [], [], [], []

    def matmul(k_in: int, n_out: int, bits: float) -> None:
        kind.append(mm)
        compute.append(2.0 * k_in * n_out / peak)
        dram.append(k_in * n_out * bits / 8)
        cache.append(4.0 * (k_in + n_out))
        matvec.append(True)

    def small(k: int, nbytes: float, ops: float) -> None:
        kind.append(k)
        compute.append(ops / peak)
        dram.append(0.0)
        cache.append(nbytes)
        matvec.append(False)

    weights = 0.0
    for _ in range(layers):
        for k_in, n_out in [(h, h), (h, kv * d), (h, kv * d), (h, h)]:
            matmul(k_in, n_out, Q4_K_M_BITS)
            weights += k_in * n_out
        for k_in, n_out in [(h, ffn), (h, ffn), (ffn, h)]:
            matmul(k_in, n_out, Q4_K_M_BITS)
            weights += k_in * n_out
        for _ in range(2):  # scores and weighted values over the KV cache
            kind.append(mm)
            compute.append(2.0 * CONTEXT * h / peak)
            dram.append(0.0)
            cache.append(4.0 * CONTEXT * kv * d)
            matvec.append(True)
        for _ in range(2):
            small(red, 8.0 * h, 5.0 * h)
        for _ in range(6):
            small(ew, 12.0 * h, 1.0 * h)
    matmul(h, vocab, Q6_K_BITS)
    weight_bytes = weights * Q4_K_M_BITS / 8 + h * vocab * Q6_K_BITS / 8
    if row["tied"] == "0":
        weight_bytes += h * vocab * Q6_K_BITS / 8  # a separate embedding table
    n = len(kind)
    flops = float(sum(c * peak for c in compute))
    return CostTerms(
        kind=np.array(kind),
        compute_s=np.array(compute),
        cache_bytes=np.array(cache),
        dram_bytes=np.array(dram),
        table_s=np.full(n, np.nan),
        restream=np.zeros((n, 3)),
        operators=n,
        flops=flops,
        weight_bytes=weight_bytes,
        matvec=np.array(matvec),
        peak_fp32_gops=profile.peak_gops["fp32"],
    )


def main() -> int:
    with DATA.open() as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    profile = load_profile("rpi4")
    terms = [decode_step_terms(r, profile) for r in rows]
    ms = [1000.0 / float(r["tps"]) for r in rows]
    fit = [i for i, r in enumerate(rows) if r["split"] == "fit"]
    held = [i for i, r in enumerate(rows) if r["split"] == "held"]
    y_held = [ms[i] for i in held]
    for i, r in enumerate(rows):
        streamed = terms[i].dram_bytes.sum()
        print(f"{r['model']:18s} {ms[i]:8.1f} ms/token  streams {streamed / 1e9:5.2f} GB ", end="")
        print(f"-> {streamed / ms[i] / 1e6:4.2f} GB/s")
    print()
    print(
        "| set | profile | shots / held out | model tau | model MAPE | FLOPs tau | FLOPs MAPE ",
        end="",
    )
    print("| weight-bytes tau | weight-bytes MAPE | proxy check fired |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    zero = [predict_from_features(terms[i], profile) for i in held]
    print(
        f"| rpi4 ollama decode | rpi4 | 0 / {len(held)} | {kendall_tau(zero, y_held):.3f} "
        f"| {mape(zero, y_held):.1f}% | {kendall_tau([terms[i].flops for i in held], y_held):.3f}"
        f" | – | {kendall_tau([terms[i].weight_bytes for i in held], y_held):.3f} | – | – |"
    )
    report = fit_profile(profile, [terms[i] for i in fit], [ms[i] for i in fit])
    pred = [predict_from_features(terms[i], report.profile) for i in held]
    cells = []
    for proxy in ("flops", "weight_bytes"):
        coef = fit_proxy([terms[i] for i in fit], [ms[i] for i in fit], proxy)
        p = [proxy_value(terms[i], proxy, coef) for i in held]
        cells.append(f"{kendall_tau(p, y_held):.3f} | {mape(p, y_held):.1f}%")
    fired = report.cv is not None and report.cv.warning is not None
    print(
        f"| rpi4 ollama decode | rpi4 | {len(fit)} / {len(held)} | {kendall_tau(pred, y_held):.3f}"
        f" | {mape(pred, y_held):.1f}% | {cells[0]} | {cells[1]} | {int(fired)}/1 |"
    )
    fitted = report.profile
    print(
        f"\nfitted: DRAM {fitted.memory_bandwidth_gbs:.2f} GB/s, int8 compute "
        f"{fitted.peak_gops['int8']:.1f} Gop/s x 1/{fitted.matvec_compute_scale:.2f} for "
        f"matrix-vector work; rpi4 profile says {profile.memory_bandwidth_gbs} GB/s"
    )
    if report.cv is not None and report.cv.warning:
        print(f"proxy check: {report.cv.warning}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
