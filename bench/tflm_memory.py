"""Measured TFLM memory of the mcu study's kind of candidates next to the hardware model's.

Two steps, because the converter (litert-torch) cannot be installed beside apache-tvm
(see paretoedge/exporters/_tflm.py):

1. in an environment with ``litert-torch==0.10.0 torch==2.13.0 tflite-micro`` (paretoedge
   on PYTHONPATH): ``python bench/tflm_memory.py measure --out tflm.json`` compresses
   tiny-bert with each spec below (no training: memory depends on the structure), writes
   the int8 flatbuffer, measures flash and the smallest TFLM arena, and runs the test
   split in TFLM against the PyTorch model;
2. in the project's environment: ``python bench/tflm_memory.py compare tflm.json``
   exports the same specs to ONNX, asks the ``stm32h7`` profile for its SRAM/flash
   prediction and prints the table (measured / predicted).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

SEQ_LEN = 32
BASE = {"lowrank.targets": "embeddings,ffn", "recovery.steps": 0}
SPECS: list[dict[str, Any]] = [
    {"lowrank.rank": 8, "ffn.keep": 0.5, "quant.bits": 8},
    {"lowrank.rank": 16, "ffn.keep": 0.5, "quant.bits": 8},
    {"lowrank.rank": 16, "ffn.keep": 1.0, "quant.bits": 8},
    {"lowrank.rank": 32, "ffn.keep": 1.0, "quant.bits": 8},
    {"lowrank.rank": 32, "ffn.keep": 0.5, "prune.sparsity": 0.5, "quant.bits": 8},
]


def _model(flat: dict[str, Any]) -> Any:
    from paretoedge.compression import CompressionSpec, compress
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task

    model = load_model("tiny-bert").eval()
    spec = CompressionSpec.from_flat({**BASE, **flat})
    task, tok = load_task("sentiment"), load_tokenizer("tiny-bert")
    return compress(model, spec, task=task, tokenizer=tok).model.eval()


def measure(out: Path, n_test: int) -> None:
    from paretoedge.exporters import check_runtime, example_feeds, torch_logits
    from paretoedge.exporters._tflm import export_tflite, tflm_memory, tflm_runner
    from paretoedge.models import load_tokenizer
    from paretoedge.tasks import load_task
    from paretoedge.training import make_batches

    tok = load_tokenizer("tiny-bert")
    task = load_task("sentiment")
    cal = make_batches(tok, task.train[:32], batch_size=16, max_length=SEQ_LEN)
    feeds = example_feeds(tok, task.test[:n_test], SEQ_LEN)
    labels = [e.label for e in task.test[:n_test]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, flat in enumerate(SPECS):
            model = _model(flat)
            path = export_tflite(model, Path(tmp) / f"m{i}.tflite", seq_len=SEQ_LEN,
                                 calibration=cal)  # fmt: skip
            mem = tflm_memory(path)
            check = check_runtime(file=path.name, runtime="tflite-micro", int8=True,
                                  run=tflm_runner(path, arena_bytes=mem.arena_bytes),
                                  feeds=feeds, labels=labels,
                                  reference=torch_logits(model, feeds))  # fmt: skip
            rows.append({"spec": flat, **mem.to_dict(), "check": check.to_dict()})
            print(json.dumps(rows[-1]), flush=True)
    out.write_text(json.dumps(rows, indent=2))


def compare(measured: Path) -> None:
    from paretoedge.compression import export_onnx
    from paretoedge.hardware_profiles import predict

    rows = json.loads(measured.read_text())
    print(
        "| spec | flatbuffer | pred. weights | ratio | pred. flash (+TVM code) | TFLM arena "
        "| pred. SRAM | ratio | TFLM agreement | int8 acc. (PyTorch) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            onnx = export_onnx(_model(row["spec"]), Path(tmp) / "m.onnx", seq_len=SEQ_LEN)
            p = predict(onnx, "stm32h7")
            spec = ", ".join(f"{k}={v}" for k, v in row["spec"].items())
            c = row["check"]
            print(f"| {spec} | {row['flash_bytes']:,} | {p.weight_bytes:,} | "
                  f"{row['flash_bytes'] / p.weight_bytes:.2f} | {p.flash_bytes:,} | "
                  f"{row['arena_bytes']:,} | {p.sram_bytes:,} | "
                  f"{row['arena_bytes'] / p.sram_bytes:.2f} | {c['agreement']:.3f} | "
                  f"{c['accuracy']:.3f} ({c['reference_accuracy']:.3f}) |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--out", type=Path, default=Path("tflm.json"))
    m.add_argument("--n-test", type=int, default=200)
    c = sub.add_parser("compare")
    c.add_argument("measured", type=Path)
    args = parser.parse_args()
    if args.cmd == "measure":
        measure(args.out, args.n_test)
    else:
        compare(args.measured)


if __name__ == "__main__":
    main()
