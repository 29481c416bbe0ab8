"""``paretoedge studies``, ``front``, ``show`` and ``plot`` on a stored study."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "api"))

from _query_data import populate  # noqa: E402

from paretoedge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    u = f"sqlite:///{tmp_path_factory.mktemp('qdb') / 'pe.db'}"
    populate(u)
    return u


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _front_truth(url: str, device: str) -> list[tuple[int, float, float, int]]:
    """(trial, accuracy, latency, size) of every rank-0 candidate, from list_candidates and
    a fresh non-dominated sort (independent of the stored front)."""
    from paretoedge import storage as st
    from paretoedge.search import non_dominated_sort

    storage = st.open_storage(url)
    cands = [c for c in st.list_candidates(storage, study="qs", states=["complete"])]
    storage.close()
    rows = [(c, c.metrics_for(device)) for c in cands]
    ranks = non_dominated_sort(
        [[c.accuracy, m.latency_ms, c.size_bytes] for c, m in rows],
        ["maximize", "minimize", "minimize"],
    )
    return [
        (c.trial_number, c.accuracy, m.latency_ms, c.size_bytes)
        for (c, m), r in zip(rows, ranks, strict=True)
        if r == 0
    ]


def test_studies(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "studies", "--storage", url, "--json")
    assert code == 0
    (s,) = json.loads(out)
    assert (s["name"], s["trials_complete"], s["trials_failed"], s["trials_pruned"]) == (
        "qs", 38, 1, 1,
    )  # fmt: skip
    code, out, _ = _run(capsys, "studies", "--storage", url)
    assert code == 0 and "qs" in out and "rpi4, host" in out


@pytest.mark.parametrize("device", ["rpi4", "host"])
def test_front_json_with_filters(url: str, device: str, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _front_truth(url, device)
    code, out, _ = _run(capsys, "front", "qs", "--device", device, "--storage", url,
                        "--format", "json")  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert {e["trial"] for e in doc["entries"]} == {t for t, *_ in truth}
    assert {e["baseline"] for e in doc["entries"]} >= {"teacher", "int8"}
    lat_cut = sorted(lat for _, _, lat, _ in truth)[len(truth) // 2]
    code, out, _ = _run(capsys, "front", "qs", "--device", device, "--storage", url,
                        "--format", "json", "--max-latency-ms", str(lat_cut),
                        "--min-accuracy", "0.7", "--max-size-mb", "30",
                        "--sort", "accuracy")  # fmt: skip
    doc = json.loads(out)
    want = {t for t, a, lat, s in truth if lat <= lat_cut and a >= 0.7 and s <= 30e6}
    assert {e["trial"] for e in doc["entries"]} == want and doc["total"] == len(want)
    accs = [e["accuracy"] for e in doc["entries"]]
    assert accs == sorted(accs, reverse=True)


def test_front_csv_and_table(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "front", "qs", "--device", "rpi4", "--storage", url,
                        "--format", "csv", "--sort", "size")  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    sizes = [float(r["size_mb"]) for r in rows]
    assert sizes == sorted(sizes) and len(rows) == len(_front_truth(url, "rpi4"))
    assert {"trial", "config", "accuracy", "latency_ms", "baseline"} <= set(rows[0])
    code, out, _ = _run(capsys, "front", "qs", "--device", "rpi4", "--storage", url)
    assert code == 0 and "baseline teacher" in out and "Pareto front on rpi4" in out


def test_show(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "show", "qs", "5", "--storage", url, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["trial_number"] == 5 and set(doc["metrics"]) == {"rpi4", "host"}
    assert doc["spec"]["quant.bits"] in (32, 8, 4)
    code, out, _ = _run(capsys, "show", "qs", "5", "--storage", url)
    assert code == 0 and "validation accuracy" in out and "rpi4" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["front", "nope", "--device", "rpi4"], "study 'nope' not found"),
        (["front", "qs", "--device", "jetson"], "not a device of study 'qs'"),
        (["front", "qs", "--device", "rpi4", "--sort", "speed"], "invalid --sort='speed'"),
        (["front", "qs", "--device", "rpi4", "--format", "xml"], "invalid --format='xml'"),
        (["show", "qs", "999"], "trial 999 of study 'qs' not found"),
        (["plot", "qs", "--device", "rpi4", "--out", "x.svg"], "invalid --out='x.svg'"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    url: str, args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, *args, "--storage", url)
    assert code == 2 and needle in err and "Traceback" not in err


def test_plot_html_and_png(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = tmp_path / "front.html"
    code, _, _ = _run(capsys, "plot", "qs", "--device", "rpi4", "--device", "host",
                      "--out", str(html), "--storage", url)  # fmt: skip
    assert code == 0
    text = html.read_text()
    assert "plotly" in text.lower() and "trial 0 (baseline teacher)" in text
    png = tmp_path / "front.png"
    code, out, _ = _run(capsys, "plot", "qs", "--device", "rpi4", "--out", str(png),
                        "--storage", url)  # fmt: skip
    assert code == 0 and ("kaleido" in out or "matplotlib" in out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_falls_back_to_matplotlib(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: E501
    from paretoedge import _plot
    from paretoedge import storage as st

    monkeypatch.setattr(_plot, "find_chromium", lambda: None)
    storage = st.open_storage(url)
    points = _plot.front_points(storage, study="qs", devices=["rpi4", "host"])
    storage.close()
    fig = _plot.front_figure(points)
    assert _plot.write_png(fig, points, tmp_path / "f.png") == "matplotlib"
    from PIL import Image

    assert Image.open(tmp_path / "f.png").size[0] > 500


def test_api_without_fastapi_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from paretoedge.errors import MissingExtraError

    for name in [
        m for m in sys.modules if m == "paretoedge.api" or m.startswith("paretoedge.api.")
    ]:  # noqa: E501
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'paretoedge\[api\]'"):
        import paretoedge.api  # noqa: F401
    code = main(["serve", "--storage", "sqlite://"])
    assert code == 2


def test_dominated_baseline_is_listed_for_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A baseline that drops off the front is still listed (after it, with its rank) unless
    ``--no-baselines``."""
    from paretoedge import storage as st

    u = f"sqlite:///{tmp_path / 'pe.db'}"
    populate(u)
    storage = st.open_storage(u)
    everything = st.get_front(storage, study="qs", device="rpi4", max_rank=None, limit=500)
    ranks = {e.candidate.id: e.rank for e in everything.entries}
    teacher = next(
        e.candidate for e in everything.entries if e.candidate.baseline_name == "teacher"
    )
    st.replace_front(storage, study="qs", device="rpi4", ranks={**ranks, teacher.id: 2})
    storage.close()

    code, out, _ = _run(capsys, "front", "qs", "--device", "rpi4", "--storage", u,
                        "--format", "json")  # fmt: skip
    entries = json.loads(out)["entries"]
    assert code == 0 and entries[-1]["baseline"] == "teacher" and entries[-1]["rank"] == 2
    assert all(e["rank"] == 0 for e in entries[:-1])
    monkeypatch.setenv("COLUMNS", "250")  # one line per row in the table
    code, out, _ = _run(capsys, "front", "qs", "--device", "rpi4", "--storage", u)
    assert code == 0 and "baseline teacher (dominated, rank 2)" in out
    code, out, _ = _run(capsys, "front", "qs", "--device", "rpi4", "--storage", u,
                        "--format", "json", "--no-baselines")  # fmt: skip
    assert "teacher" not in {e["baseline"] for e in json.loads(out)["entries"]}


def test_front_and_show_give_the_worst_case_of_an_early_exit_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from _query_data import EXIT_STUDY, populate_exits

    url = f"sqlite:///{tmp_path / 'ex.db'}"
    truth = populate_exits(url)
    code, out, _ = _run(capsys, "front", EXIT_STUDY, "--device", "rpi4", "--storage", url,
                        "--format", "json")  # fmt: skip
    assert code == 0
    got = {e["trial"]: (e["latency_ms"], e["latency_worst_ms"]) for e in json.loads(out)["entries"]}
    assert got == truth
    code, out, _ = _run(capsys, "front", EXIT_STUDY, "--device", "rpi4", "--storage", url,
                        "--format", "csv")  # fmt: skip
    rows = {int(r["trial"]): r["latency_worst_ms"] for r in csv.DictReader(io.StringIO(out))}
    assert rows == {t: "" if w is None else str(w) for t, (_, w) in truth.items()}
    code, out, _ = _run(capsys, "front", EXIT_STUDY, "--device", "rpi4", "--storage", url)
    assert code == 0 and "worst ms" in out and f"{truth[1][1]:.3f}" in out
    code, out, _ = _run(capsys, "show", EXIT_STUDY, "1", "--storage", url)
    assert code == 0 and "worst ms" in out and f"{truth[1][1]:.3f}" in out
    code, out, _ = _run(capsys, "show", EXIT_STUDY, "1", "--storage", url, "--json")
    assert json.loads(out)["metrics"]["rpi4"]["latency_worst_ms"] == truth[1][1]
    # a study without early exits keeps its columns
    code, out, _ = _run(capsys, "show", EXIT_STUDY, "2", "--storage", url)
    assert code == 0 and "worst ms" not in out
