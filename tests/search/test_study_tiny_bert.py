"""End to end on the real pipeline: tiny-bert, the bundled task (small subsets), real
compression, ONNX export, hardware models and storage, driven through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from paretoedge.cli import main


@pytest.fixture
def devices() -> list[str]:
    from paretoedge.hardware_profiles import profile_names

    names = profile_names()
    assert len(names) >= 3, names
    return names[:3]


def _study(tmp_path: Path, devices: list[str]) -> Path:
    doc = {
        "name": "tiny",
        "model": "tiny-bert",
        "task": "sentiment",
        "seed": 0,
        "seq_len": 32,
        "data": {"train_limit": 64, "validation_limit": 64, "test_limit": 64},
        "teacher": {"epochs": 0.05},
        "space": {
            "prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.5},
            "quant.bits": [32, 8, 4],
        },
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": devices[:2],
        "sampler": {"name": "nsga2", "options": {"population_size": 4}},
        "budget": {"trials": 5},
        "recovery": {"steps": 2},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tiny_bert_study_stores_a_front_per_device(
    tmp_path: Path,
    devices: list[str],
    shared_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from paretoedge import storage as st

    url = f"sqlite:///{tmp_path / 'pe.db'}"
    cfg = _study(tmp_path, devices)
    assert main(["search", str(cfg), "--storage", url, "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trials_complete"] == 5
    assert set(out["fronts"]) == set(devices[:2])

    storage = st.open_storage(url)
    cands = st.list_candidates(storage, study="tiny")
    assert len(cands) == 5 and all(c.state == "complete" for c in cands)
    assert {c.baseline_name for c in cands if c.is_baseline} == {"teacher", "int8"}
    teacher = next(c for c in cands if c.baseline_name == "teacher")
    int8 = next(c for c in cands if c.baseline_name == "int8")
    # measured, not assumed: int8 weights are about 4x smaller than float32
    assert int8.size_bytes < 0.4 * teacher.size_bytes
    for device in devices[:2]:
        page = st.get_front(storage, study="tiny", device=device)
        assert page.total >= 1
        for e in page.entries:
            assert e.metrics.latency_ms > 0
            assert e.candidate.test_accuracy is not None  # front members get test accuracy
        assert out["fronts"][device]
    for c in cands:
        arts = st.list_artifacts(storage, candidate_id=c.id)
        assert [a.kind for a in arts] == ["onnx"] and Path(arts[0].path).is_file()

    # a finished study resumes to nothing new
    assert main(["resume", "tiny", "--storage", url, "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials_complete"] == 5

    # a third device is scored from the stored ONNX files, without retraining; a candidate
    # whose file is gone is rebuilt (compression + recovery) without measuring its accuracy
    import shutil

    import paretoedge.training
    from paretoedge.search._evaluator import predict_devices

    lost_cand = next(c for c in cands if not c.is_baseline)
    lost = Path(st.list_artifacts(storage, candidate_id=lost_cand.id)[0].path)
    kept = tmp_path / "original.onnx"
    shutil.move(lost, kept)

    def no_accuracy(*args: object, **kwargs: object) -> float:
        raise AssertionError("add-device measured a validation accuracy")

    monkeypatch.setattr(paretoedge.training, "evaluate", no_accuracy)
    new = devices[2]
    assert main(["add-device", "tiny", "--device", new, "--storage", url, "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert list(added["fronts"]) == [new] and added["fronts"][new]
    cands = st.list_candidates(storage, study="tiny", device=new)
    assert all(c.metrics_for(new) is not None for c in cands)
    rebuilt = st.get_candidate(storage, study="tiny", trial_number=lost_cand.trial_number)
    assert rebuilt.accuracy == lost_cand.accuracy
    art = st.list_artifacts(storage, candidate_id=lost_cand.id)[-1]
    assert Path(art.path).is_file()
    # the rebuild is the same model (seeded compression and recovery): same device metrics
    assert predict_devices(Path(art.path), [new]) == predict_devices(kept, [new])
    storage.engine.dispose()


def test_cli_reports_config_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: tiny-bert\ntask: sentiment\nspace: {quant.bits: [3]}\n"
        "objectives: [accuracy, size_bytes]\ndevices: [nowhere]\n"
    )
    assert main(["search", str(path), "--storage", f"sqlite:///{tmp_path}/x.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: invalid devices[0]='nowhere'") and "\n" not in err
    assert main(["search", "quickstart", "--set", "budget.trials=0"]) == 2
    assert "budget.trials" in capsys.readouterr().err
    assert main(["resume", "no-such-study", "--storage", f"sqlite:///{tmp_path}/x.db"]) == 2


@pytest.mark.slow
def test_sigkill_real_cli_mid_trial_then_resume(
    tmp_path: Path, devices: list[str], shared_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same kill/resume contract as test_resume_kill.py, on the real pipeline and CLI."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from paretoedge.search import GRACE_PERIOD_S

    cfg = _study(tmp_path, devices)
    doc = yaml.safe_load(cfg.read_text())
    doc["devices"] = devices[:1]
    cfg.write_text(yaml.safe_dump(doc))
    db = tmp_path / "pe.db"
    url = f"sqlite:///{db}"

    def rows() -> list[tuple]:
        if not db.exists():
            return []
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute(
                "SELECT trial_number, state, accuracy, created_at, spec FROM pe_candidates "
                "ORDER BY trial_number"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paretoedge.cli",
            "search",
            str(cfg),
            "--storage",
            url,
            "--no-progress",
        ],
        env={**os.environ, "PARETOEDGE_HOME": str(shared_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        end = time.monotonic() + 600
        while time.monotonic() < end:
            r = rows()
            if sum(x[1] == "complete" for x in r) >= 2 and any(x[1] == "running" for x in r):
                break
            assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = rows()
    complete_before = {x[0]: x for x in before if x[1] == "complete"}
    killed = [x for x in before if x[1] == "running"]
    assert len(killed) == 1 and len(complete_before) >= 2, before

    time.sleep(GRACE_PERIOD_S + 1)  # the dead trial's heartbeat goes stale
    assert main(["resume", "tiny", "--storage", url, "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    after = rows()
    complete_after = {x[0]: x for x in after if x[1] == "complete"}
    for n, row in complete_before.items():
        assert complete_after[n] == row  # kept, not recomputed
    assert {x[0]: x[1] for x in after}[killed[0][0]] == "failed"
    assert killed[0][4] in {x[4] for x in complete_after.values()}  # retried
    assert out["trials_complete"] == len(complete_after) == 5
