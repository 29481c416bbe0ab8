"""``paretoedge export`` on a real tiny-bert study: rebuilt model, ONNX, TVM library, card."""

from __future__ import annotations

import importlib.util
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from paretoedge.cli import main

STUDY = {
    "name": "tiny-export",
    "model": "tiny-bert",
    "task": "sentiment",
    "seed": 0,
    "seq_len": 32,
    "data": {"train_limit": 64, "validation_limit": 64, "test_limit": 64},
    "teacher": {"epochs": 0.05},
    "space": {"prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.5}, "quant.bits": [32, 8]},
    "objectives": ["accuracy", "latency_ms", "size_bytes"],
    "devices": ["host", "rpi4"],
    "sampler": {"name": "random"},
    "budget": {"trials": 2},
    "recovery": {"steps": 2},
    "baselines": ["teacher", "int8"],
}


def _logits(onnx_path: Path, tokenizer: object, texts: list[str], seq_len: int) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = []
    for text in texts:
        enc = tokenizer(  # type: ignore[operator]
            [text], padding="max_length", truncation=True, max_length=seq_len, return_tensors="np"
        )
        feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        out.append(sess.run(["logits"], feed)[0])
    return np.concatenate(out)


@pytest.mark.slow
@pytest.mark.tvm
def test_export_rebuilds_the_stored_candidate(
    tmp_path: Path, shared_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from paretoedge import storage as st
    from paretoedge.export import build_tvm, load_tvm_library
    from paretoedge.models import load_tokenizer
    from paretoedge.tasks import load_task

    url = f"sqlite:///{tmp_path / 'pe.db'}"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(STUDY))
    assert main(["search", str(cfg), "--storage", url, "--no-progress", "--json"]) == 0
    capsys.readouterr()
    storage = st.open_storage(url)
    int8 = next(
        c for c in st.list_candidates(storage, study="tiny-export") if c.baseline_name == "int8"
    )
    (searched_onnx,) = [a.path for a in st.list_artifacts(storage, candidate_id=int8.id)]

    out = tmp_path / "export"
    args = ["export", "tiny-export", str(int8.trial_number), "--device", "host", "--out",
            str(out), "--storage", url, "--no-progress", "--json"]  # fmt: skip
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)

    # the rebuild is the searched model: same validation accuracy, same logits as the
    # ONNX the search exported and scored
    assert doc["reproduced_accuracy"] == pytest.approx(int8.accuracy, abs=1e-9)
    tokenizer = load_tokenizer("tiny-bert")
    texts = [e.text for e in load_task("sentiment").test[:8]]
    ours = _logits(out / "model.onnx", tokenizer, texts, 32)
    np.testing.assert_allclose(ours, _logits(Path(searched_onnx), tokenizer, texts, 32), atol=1e-4)
    # onnxruntime on the exported files gives the stored test accuracy (int8 QDQ within 5%)
    assert int8.test_accuracy is None or doc["onnx_test_accuracy"]["model.onnx"] == pytest.approx(
        int8.test_accuracy, abs=1e-9
    )
    assert (
        abs(doc["onnx_test_accuracy"]["model.int8.onnx"] - doc["onnx_test_accuracy"]["model.onnx"])
        <= 0.05
    )  # noqa: E501
    import onnx

    q = onnx.load(str(out / "model.int8.onnx"))
    assert any(n.op_type == "DequantizeLinear" for n in q.graph.node)
    assert doc["predicted"]["latency_ms"] == pytest.approx(
        int8.metrics_for("host").latency_ms, rel=1e-6
    )

    # the TVM library for the host profile loads and computes the same logits
    assert doc["tvm_linked"] and Path(doc["tvm_library"]).name == "model.so"
    run = load_tvm_library(out / "tvm")
    enc = tokenizer([texts[0]], padding="max_length", truncation=True, max_length=32,
                    return_tensors="np")  # fmt: skip
    tvm_logits = run(**{k: np.asarray(v, dtype=np.int64) for k, v in enc.items()})
    np.testing.assert_allclose(tvm_logits, ours[:1], atol=1e-3)

    # a device with another target gets object files for that target (AArch64 ELF)
    lib, linked = build_tvm(out / "model.onnx", "rpi4", tmp_path / "rpi4")
    assert not linked and lib.suffix == ".tar"
    with tarfile.open(lib) as tar:
        objects = [m for m in tar.getmembers() if m.name.endswith(".o")]
        head = tar.extractfile(objects[0]).read(20)  # type: ignore[union-attr]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64

    card = (out / "README.md").read_text()
    assert "baseline `int8`" in card and "predicted latency on host" in card
    assert "onnxruntime.InferenceSession" in card and "load_tvm_library" in card
    # every exported file ran in its runtime on the test split; the card records it
    checks = {c["file"]: c for c in doc["runtime_checks"]}
    has_et = importlib.util.find_spec("executorch") is not None
    pte = ["model.pte", "model.int8.pte"] if has_et else []
    assert sorted(checks) == sorted(["model.onnx", "model.int8.onnx", *pte])
    for name, c in checks.items():
        assert c["examples"] == 64 and c["passed"], c
        assert c["int8"] == ("int8" in name)
        assert f"| `{name}` | {c['runtime']} | 64 | {c['agreement']:.4f} |" in card
    assert checks["model.onnx"]["agreement"] == 1.0
    kinds = sorted(a.kind for a in st.list_artifacts(storage, candidate_id=int8.id))
    # the search's ONNX, then ours: model.onnx, model.int8.onnx, hf, tvm, the card and
    # (host is a CPU: ExecuTorch when installed) model.pte, model.int8.pte
    assert kinds == sorted(
        ["card", "hf", "onnx", "onnx", "onnx", "tvm"] + ["executorch"] * len(pte)
    )
    from paretoedge.compression import load_compressed

    assert load_compressed(out / "hf") is not None
    storage.close()


def test_export_refuses_a_foreign_device_and_an_unfinished_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.path.insert(0, str(Path(__file__).parent / "api"))
    from _query_data import populate

    url = f"sqlite:///{tmp_path / 'pe.db'}"
    populate(url)
    base = ["--out", str(tmp_path / "x"), "--storage", url, "--no-progress"]
    assert main(["export", "qs", "3", "--device", "jetson", *base]) == 2
    assert "invalid device='jetson': allowed rpi4, host" in capsys.readouterr().err
    assert main(["export", "qs", "38", "--device", "rpi4", *base]) == 2  # the pruned trial
    assert "a complete trial (trial is pruned)" in capsys.readouterr().err
    assert main(["export", "qs", "404", "--device", "rpi4", *base]) == 2
    assert "trial 404" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
