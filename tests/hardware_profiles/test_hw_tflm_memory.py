"""The MCU memory model: TFLM's tensor arena (SRAM) and flatbuffer (flash).

The planner is checked on hand-made schedules, the schedule on a real tiny-bert export,
and the whole model against TFLM's own measurements (bench/truth/tflm_memory.csv).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from paretoedge.errors import DeviceError
from paretoedge.hardware_profiles import load_profile, predict
from paretoedge.hardware_profiles._graph import prepare
from paretoedge.hardware_profiles._profile import DeviceProfile, parse_profile
from paretoedge.hardware_profiles._tflm_arena import TflmGraph, arena_bytes, greedy_plan
from paretoedge.hardware_profiles._tflm_bert import (
    bert_structure,
    flatbuffer_bytes,
    tflm_schedule,
)

ROOT = Path(__file__).resolve().parents[2]
TRUTH = ROOT / "bench" / "truth" / "tflm_memory.csv"


def test_greedy_plan_reuses_gaps_largest_first() -> None:
    # 100 B live at steps 1-2, 50 B at 2-3, 50 B at 3-4: the last fits under the first
    assert greedy_plan([(100, 1, 2), (50, 2, 3), (50, 3, 4)]) == 150
    # nothing overlaps in time: one slot
    assert greedy_plan([(64, 1, 1), (32, 2, 2), (48, 3, 3)]) == 64
    # all live together: the sum
    assert greedy_plan([(16, 1, 3), (32, 1, 3), (48, 2, 3)]) == 96
    # largest first, then first fit: 30 goes above 40 (overlaps it), 20 fits below 40's end
    assert greedy_plan([(40, 1, 2), (30, 2, 3), (20, 3, 3)]) == 70


def test_arena_counts_live_tensors_and_persistent_structs() -> None:
    g = TflmGraph()
    a, w, b, c = g.tensor(1000), g.tensor(4096, const=True), g.tensor(2000), g.tensor(10)
    g.inputs, g.outputs = [a], [c]
    g.op("FULLY_CONNECTED", [a, w, -1], [b], persistent=(256, 256))
    g.op("SOFTMAX", [b], [c])
    host, board = arena_bytes(g, pointer_bytes=8), arena_bytes(g, pointer_bytes=4)
    # a and b are live together at step 1, b and c at step 2: 1008 + 2000 (16-aligned)
    assert host.plan_bytes == board.plan_bytes == 3008
    assert host.head_bytes == 3008
    # the constant lives in flash; the structs shrink with 4-byte pointers
    assert board.tail_bytes < host.tail_bytes
    assert host.arena_bytes == host.head_bytes + host.tail_bytes


@pytest.fixture(scope="module")
def tiny_bert_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-bert with the mcu study's transforms (low-rank embeddings and FFN, 4 of 4 heads
    kept, FFN halved), exported to ONNX as the search does."""
    from paretoedge.compression import CompressionSpec, compress, export_onnx
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.tasks import load_task

    spec = CompressionSpec.from_flat({"lowrank.targets": "embeddings,ffn", "lowrank.rank": 8,
                                      "ffn.keep": 0.5, "heads.keep": 0.5, "quant.bits": 8,
                                      "recovery.steps": 0})  # fmt: skip
    task, tok = load_task("sentiment"), load_tokenizer("tiny-bert")
    model = compress(load_model("tiny-bert").eval(), spec, task=task, tokenizer=tok).model.eval()
    return export_onnx(model, tmp_path_factory.mktemp("tflm") / "m.onnx", seq_len=32)


def test_structure_of_a_compressed_tiny_bert(tiny_bert_onnx: Path) -> None:
    st = bert_structure(prepare(tiny_bert_onnx))
    assert st is not None
    assert (st.seq, st.hidden, st.vocab, st.word_width, st.labels) == (32, 64, 30522, 8, 2)
    assert len(st.layers) == 2
    for layer in st.layers:
        assert (layer.heads, layer.head_dim) == (2, 16)
        assert layer.intermediate.out == 64 and layer.intermediate.rank == 8
        assert layer.output.rank == 8 and layer.output.out == 64
    graph, consts = tflm_schedule(st, pointer_bytes=4)
    kinds = [op.kind for op in graph.ops]
    assert kinds.count("BATCH_MATMUL") == 4 and kinds.count("SOFTMAX") == 2
    assert kinds.count("FULLY_CONNECTED") == 1 + 2 * (4 + 4) + 2
    # the flatbuffer holds at least the int8 word table and its float row scales
    assert flatbuffer_bytes(graph, consts) > 30522 * (8 + 4)


def test_stm32h7_costs_flash_and_sram_in_tflm(tiny_bert_onnx: Path) -> None:
    board = load_profile("stm32h7")
    assert (board.memory_runtime, board.pointer_bytes) == ("tflite-micro", 4)
    pred = predict(tiny_bert_onnx, board)
    host = predict(tiny_bert_onnx, dataclasses.replace(board, pointer_bytes=8))
    st = bert_structure(prepare(tiny_bert_onnx))
    assert st is not None
    graph, consts = tflm_schedule(st, pointer_bytes=4)
    assert pred.flash_bytes == flatbuffer_bytes(graph, consts)
    assert pred.sram_bytes == arena_bytes(graph, pointer_bytes=4).arena_bytes
    assert pred.sram_bytes is not None and host.sram_bytes is not None
    assert pred.sram_bytes < host.sram_bytes
    assert pred.flash_bytes == host.flash_bytes
    # a 1 KB SRAM board: the same structure is refused, naming the arena
    tiny = dataclasses.replace(board, sram_bytes=1024)
    assert any(v.startswith("sram") for v in predict(tiny_bert_onnx, tiny).violations)


def profile_from_dict(raw: dict[str, Any]) -> DeviceProfile:
    import yaml

    return parse_profile(yaml.safe_dump(raw), "test.yaml")


def test_memory_section_is_validated() -> None:
    raw = load_profile("stm32h7").to_yaml_dict()
    assert profile_from_dict(raw).memory_runtime == "tflite-micro"
    with pytest.raises(DeviceError, match="pointer_bytes"):
        profile_from_dict({**raw, "memory": {"runtime": "tflite-micro", "pointer_bytes": 2}})
    with pytest.raises(DeviceError, match="runtime"):
        profile_from_dict({**raw, "memory": {"runtime": "cmsis", "pointer_bytes": 4}})
    legacy = {k: v for k, v in raw.items() if k != "memory"}
    assert profile_from_dict(legacy).memory_runtime == "tvm"


def _truth() -> list[dict[str, Any]]:
    lines = [ln for ln in TRUTH.read_text().splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines))


def test_truth_set_has_both_splits_and_the_study_space() -> None:
    rows = _truth()
    splits = {r["split"] for r in rows}
    assert splits == {"dev", "held-out"}
    text = " ".join(r["spec"] for r in rows)
    for token in ("heads", "sparsity", "bits 4", "cluster", "ffn 0.5", "ffn 1.0"):
        assert token in text


@pytest.mark.slow
@pytest.mark.parametrize("split", ["dev", "held-out"])
def test_model_within_10_percent_of_tflm(split: str, tmp_path: Path) -> None:
    """Rebuild two truth structures per split and predict them again: within 10 % of what
    TFLM measured (its arena at the host's 8-byte pointers), and never under by more than
    1 % (a candidate the model says fits must fit)."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import tflm_memory
    finally:
        sys.path.remove(str(ROOT / "bench"))
    rows = [r for r in _truth() if r["split"] == split][:2]
    for row in rows:
        flat = tflm_memory.SPECS[int(row["index"])][1]
        host, _board = tflm_memory._predict({"spec": json.loads(json.dumps(flat))}, tmp_path)
        for measured, predicted in (
            (int(row["flash_measured"]), host.flash_bytes),
            (int(row["sram_measured_host"]), host.sram_bytes),
        ):
            assert abs(predicted - measured) <= 0.10 * measured, row
            assert predicted >= 0.99 * measured, row
