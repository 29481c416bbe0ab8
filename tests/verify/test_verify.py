"""``paretoedge verify`` on a tiny-bert study stored in SQLite: rebuild, time with
onnxruntime, store beside the prediction, tau/MAPE, the measured column in ``front`` and
in the HTTP API's front response."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import kendalltau

from paretoedge.cli import main
from paretoedge.errors import ConfigError

DEVICE = "host-ort"
STUDY: dict[str, Any] = {
    "name": "tiny-verify",
    "model": "tiny-bert",
    "task": "sentiment",
    "seed": 0,
    "seq_len": 16,
    "data": {"train_limit": 32, "validation_limit": 16, "test_limit": 16},
    "teacher": {"epochs": 0.01},
    "space": {"ffn.keep": [1.0, 0.5], "quant.bits": [32, 8]},
    "objectives": ["accuracy", "latency_ms", "size_bytes"],
    "devices": [DEVICE, "rpi4", "host"],
    "sampler": {"name": "random"},
    "budget": {"trials": 2},
    "recovery": {"steps": 0},
    "baselines": ["teacher", "int8"],
}
# trial -> (spec, accuracy, size bytes, predicted ms): all three on the predicted front
CANDIDATES = {
    0: ({}, 0.90, 17_000_000, 3.0),
    1: ({"quant.bits": 8, "quant.scheme": "uniform"}, 0.85, 4_400_000, 1.5),
    2: ({"ffn.keep": 0.5}, 0.80, 3_000_000, 1.0),
}


@pytest.fixture
def study_url(tmp_path: Path) -> str:
    from paretoedge import storage as st
    from paretoedge.search import parse_config

    url = f"sqlite:///{tmp_path / 'pe.db'}"
    cfg = parse_config(STUDY)
    with st.open_storage(url) as storage:
        st.create_study(
            storage,
            name=cfg.name,
            config=cfg.to_dict(),
            devices=list(cfg.devices),
            objectives=[
                {"name": o.name, "device": o.device, "direction": o.direction}
                for o in cfg.objectives
            ],
            seed=cfg.seed,
        )
        ids = {}
        for trial, (spec, acc, size, ms) in CANDIDATES.items():
            cand = st.upsert_candidate(
                storage,
                study=cfg.name,
                trial_number=trial,
                state="complete",
                spec=spec,
                accuracy=acc,
                size_bytes=size,
            )
            ids[trial] = cand.id
            for device in cfg.devices:
                st.upsert_device_metrics(
                    storage,
                    candidate_id=cand.id,
                    device=device,
                    latency_ms=ms,
                    peak_memory_bytes=size,
                )
        for device in cfg.devices:
            st.replace_front(
                storage, study=cfg.name, device=device, ranks={i: 0 for i in ids.values()}
            )
    return url


@pytest.mark.slow
def test_verify_times_the_front_and_stores_it_beside_the_prediction(
    study_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from paretoedge import storage as st
    from paretoedge.search._pareto import non_dominated_sort

    args = ["verify", "tiny-verify", "--device", DEVICE, "--repeats", "5", "--warmup", "1"]
    assert main([*args, "--storage", study_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runtime"] == "onnxruntime" and report["threads"] == 1  # host-ort: 1 core
    members = {m["trial"]: m for m in report["members"]}
    assert sorted(members) == [0, 1, 2]
    assert members[1]["artifact"] == "onnx-int8"  # an 8-bit candidate runs as int8 QDQ
    assert members[0]["artifact"] == members[2]["artifact"] == "onnx"

    with st.open_storage(study_url) as storage:
        cands = {t: st.get_candidate(storage, study="tiny-verify", trial_number=t) for t in members}
        stored = st.get_measured_latencies(
            storage, candidate_ids=[c.id for c in cands.values()], device=DEVICE
        )
        assert (
            st.get_measured_latencies(
                storage, candidate_ids=[c.id for c in cands.values()], device="rpi4"
            )
            == {}
        )
    for t, c in cands.items():
        row = stored[c.id]
        assert row.median_ms == pytest.approx(members[t]["measured_ms"])
        assert row.predicted_ms == CANDIDATES[t][3] and row.repeats == 5
        assert row.min_ms <= row.median_ms and row.spread >= 0
        # the prediction itself is kept as it was
        assert c.metrics_for(DEVICE).latency_ms == CANDIDATES[t][3]  # type: ignore[union-attr]

    predicted = [CANDIDATES[t][3] for t in sorted(members)]
    measured = [members[t]["measured_ms"] for t in sorted(members)]
    assert report["kendall_tau"] == pytest.approx(kendalltau(predicted, measured).statistic)
    mape = sum(abs(p - m) / m for p, m in zip(predicted, measured, strict=True)) / 3 * 100
    assert report["mape_pct"] == pytest.approx(mape)
    ranks = non_dominated_sort(
        [[CANDIDATES[t][1], members[t]["measured_ms"], CANDIDATES[t][2]] for t in sorted(members)],
        ["maximize", "minimize", "minimize"],
    )
    assert report["still_non_dominated"] == ranks.count(0)
    assert [members[t]["non_dominated_measured"] for t in sorted(members)] == [
        r == 0 for r in ranks
    ]

    # the measured column of `paretoedge front`, JSON and table
    assert main(["front", "tiny-verify", "--device", DEVICE, "--storage", study_url,
                 "--format", "json"]) == 0  # fmt: skip
    rows = {r["trial"]: r for r in json.loads(capsys.readouterr().out)["entries"]}
    assert {t: r["measured_ms"] for t, r in rows.items()} == pytest.approx(
        {t: m["measured_ms"] for t, m in members.items()}
    )
    assert main(["front", "tiny-verify", "--device", DEVICE, "--storage", study_url]) == 0
    assert "measured" in capsys.readouterr().out
    assert main(["front", "tiny-verify", "--device", "rpi4", "--storage", study_url,
                 "--format", "json"]) == 0  # fmt: skip
    rpi = json.loads(capsys.readouterr().out)["entries"]
    assert [r["measured_ms"] for r in rpi] == [None, None, None]

    # ... and of the HTTP API's front response (the app in-process)
    from fastapi.testclient import TestClient

    from paretoedge.api import create_app

    with TestClient(create_app(storage_url=study_url)) as client:
        got = client.get("/studies/tiny-verify/front", params={"device": DEVICE}).json()
        rpi_got = client.get("/studies/tiny-verify/front", params={"device": "rpi4"}).json()
    api = {e["trial"]: e["measured_latency_ms"] for e in got["entries"]}
    assert api == pytest.approx({t: m["measured_ms"] for t, m in members.items()})
    assert [e["measured_latency_ms"] for e in rpi_got["entries"]] == [None, None, None]

    # --top 1 re-measures only the fastest predicted member (trial 2) and replaces its row
    assert main([*args, "--top", "1", "--storage", study_url, "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert [m["trial"] for m in again["members"]] == [2] and again["kendall_tau"] is None


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--device", "rpi4"], "runs on this machine"),
        (["--device", "pixel-a76"], "device='pixel-a76'"),
        (["--device", DEVICE, "--top", "0"], "--top"),
        (["--device", DEVICE, "--repeats", "1"], "--repeats"),
    ],
    ids=["board", "not-in-study", "top", "repeats"],
)
def test_verify_errors_are_one_line_exit_2(
    study_url: str, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    assert main(["verify", "tiny-verify", *extra, "--storage", study_url]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.tvm
def test_verify_on_tvm_times_the_host_build(
    study_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["verify", "tiny-verify", "--device", "host", "--top", "1", "--repeats", "3"]
    assert main([*args, "--storage", study_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runtime"] == "tvm-default" and report["threads"] == 2
    (member,) = report["members"]
    assert member["trial"] == 2 and member["artifact"] == "tvm" and member["measured_ms"] > 0


def test_unknown_study_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert main(["verify", "nope", "--device", DEVICE, "--storage", url]) == 2
    assert "nope" in capsys.readouterr().err


def test_prediction_scores_and_local_runtime() -> None:
    from paretoedge.hardware_profiles import load_profile
    from paretoedge.verify import local_runtime, prediction_scores

    tau, err = prediction_scores([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert tau == pytest.approx(1 / 3) and err == pytest.approx((0 + 1 / 3 + 1 / 2) / 3 * 100)
    assert local_runtime(load_profile("host-ort")) == "onnxruntime"
    assert local_runtime(load_profile("host")) == "tvm-default"
    with pytest.raises(ConfigError, match="export-set"):
        local_runtime(load_profile("pixel-a76"))
