"""What a person sees of a run: one plain line per finished trial when stderr is not a
terminal (CI, a log file, nohup)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _synthetic import SyntheticEvaluator, synthetic_config

from paretoedge.search import SearchRunner


def test_a_run_without_a_terminal_prints_a_line_per_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = SearchRunner(
        synthetic_config(),
        storage_url=f"sqlite:///{tmp_path / 'study.db'}",
        evaluator_factory=SyntheticEvaluator,
        artifacts_dir=tmp_path / "artifacts",
        progress=True,
    )
    runner.run()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("trial ")]
    assert len(lines) == 8
    assert all(re.match(r"trial \d+ \(\d/8\) ", ln) for ln in lines)
    assert [int(ln.split("(")[1].split("/")[0]) for ln in lines] == list(range(1, 9))
    assert all("dev-a front" in ln and "dev-b front" in ln for ln in lines)
    assert any("reused trial" in ln for ln in lines) or all(" s acc " in ln for ln in lines)
