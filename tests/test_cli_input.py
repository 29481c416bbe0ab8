"""The CLI on malformed study files and flags: exit 2, one line, no traceback, and the
database and the working directory exactly as they were.

One populated SQLite database is shared by the module; every case hashes its tables before
and after. Study files come from the catalog of ``tests/_malformed.py`` (each entry is
checked to be refused by the config suite, so no case here can start a real search).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _malformed import MUTATIONS, Mutation, db_digest, sqlite_path, valid_study
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "api"))

from _query_data import populate  # noqa: E402

from paretoedge.cli import main  # noqa: E402

_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    u = f"sqlite:///{tmp_path_factory.mktemp('clidb') / 'pe.db'}"
    populate(u)
    return u


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """An empty current directory, so that a stray ``paretoedge.db`` would be seen."""
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture(autouse=True)
def _no_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a check regress, fail at once instead of running a real search."""
    from paretoedge.search import SearchRunner

    def started(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a refused input started a search")

    monkeypatch.setattr(SearchRunner, "setup", started)
    monkeypatch.setattr(SearchRunner, "run", started)


def _run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[:500]
    assert "Traceback" not in err and len(lines[0]) < 700


def _state(url: str, home: Path) -> tuple[str, list[str]]:
    """The database's table hash and every path under the artifacts directory (other
    suites of the session may have left artifacts there: what matters is that a refused
    command adds none)."""
    artifacts = home / "artifacts"
    files = sorted(str(p) for p in artifacts.rglob("*")) if artifacts.exists() else []
    return db_digest(sqlite_path(url)), files


def _untouched(url: str, before: tuple[str, list[str]], workdir: Path, home: Path) -> None:
    assert _state(url, home) == before
    assert [p.name for p in workdir.iterdir() if p.name != "study.yaml"] == []


@_SETTINGS
@given(mutation=st.sampled_from(MUTATIONS))
def test_malformed_study_files(
    url: str,
    workdir: Path,
    _isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    mutation: Mutation,
) -> None:
    before = _state(url, _isolated_home)
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(mutation.apply(valid_study("qs")), allow_unicode=True))
    code, err = _run(capsys, ["search", str(path), "--storage", url, "--no-progress"])
    _assert_refused(code, err)
    _untouched(url, before, workdir, _isolated_home)


def _override(mutation: Mutation) -> str:
    value = yaml.safe_dump(mutation.value, default_flow_style=True, width=10**9)
    value = value.removesuffix("\n...\n").strip()
    return f"{'.'.join(mutation.path)}={value}"


@_SETTINGS
@given(mutation=st.sampled_from([m for m in MUTATIONS if not m.path[0].startswith("xxx")]))
def test_malformed_overrides(
    url: str,
    workdir: Path,
    _isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    mutation: Mutation,
) -> None:
    before = _state(url, _isolated_home)
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump(valid_study("qs")))
    args = ["search", str(path), "--set", _override(mutation), "--storage", url, "--no-progress"]
    code, err = _run(capsys, args)
    _assert_refused(code, err)
    _untouched(url, before, workdir, _isolated_home)


_JUNK = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        ["", "-1", "0", "nan", "inf", "-inf", "1e400", "99999999999999999999", "..", "/abs/x",
         "../../x", "sqlite:///", "sqlite:///nowhere/x.db", "sqlite:///new.db", "mysql://h/d",
         "paretoedge.db", "\x00", "x" * 300]
    ),
)  # fmt: skip
_FLAGS = ["--trials", "--timeout", "--storage", "--study", "--backend", "--workers", "--set"]


@_SETTINGS
@given(flags=st.lists(st.tuples(st.sampled_from(_FLAGS), _JUNK), min_size=1, max_size=3))
def test_junk_flags_on_search(
    url: str,
    workdir: Path,
    _isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[tuple[str, str]],
) -> None:
    # The study itself is refused too (seed -1), so whatever the flags, nothing may run.
    before = _state(url, _isolated_home)
    path = workdir / "study.yaml"
    path.write_text(yaml.safe_dump({**valid_study("qs"), "seed": -1}))
    args = ["search", str(path), "--no-progress"]
    if not any(f == "--storage" for f, _ in flags):
        args += ["--storage", url]
    for flag, value in flags:
        args += [flag, value]
    code, err = _run(capsys, args)
    _assert_refused(code, err)
    _untouched(url, before, workdir, _isolated_home)


_READS = st.one_of(
    st.tuples(st.just("studies")),
    st.tuples(st.just("front"), _JUNK, st.just("--device"), _JUNK),
    st.tuples(st.just("front"), st.just("qs"), st.just("--device"), st.just("rpi4"),
              st.sampled_from(["--limit", "--sort", "--format", "--max-latency-ms",
                               "--max-size-mb", "--min-accuracy"]), _JUNK),
    st.tuples(st.just("show"), st.sampled_from(["qs", "nope"]) | _JUNK, _JUNK),
    st.tuples(st.just("resume"), _JUNK),
    st.tuples(st.just("add-device"), st.just("qs"), st.just("--device"), _JUNK),
    st.tuples(st.just("export"), st.just("qs"), _JUNK, st.just("--device"), st.just("rpi4"),
              st.just("--out"), st.just("out")),
)  # fmt: skip


@_SETTINGS
@given(command=_READS, storage=st.none() | _JUNK)
def test_junk_arguments_on_other_commands(
    url: str,
    workdir: Path,
    _isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    command: tuple[str, ...],
    storage: str | None,
) -> None:
    """Reads either answer (exit 0) or refuse on one line; nothing is created or changed.

    ``resume``/``add-device``/``export`` get a junk study, trial or device, or a junk
    storage, so they are refused before doing any work.
    """
    before = db_digest(sqlite_path(url))
    args = list(command)
    if command[0] in ("resume", "add-device", "export") and storage is None:
        storage = "sqlite:///nowhere.db"
    args += ["--storage", url if storage is None else storage]
    if command[0] in ("front", "show", "studies"):
        args.append("--json" if command[0] != "front" else "--format=json")
    code, err = _run(capsys, args)
    if code != 0:
        _assert_refused(code, err)
    assert db_digest(sqlite_path(url)) == before
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["show", "qs", "99999999999999999999"],
        ["front", "qs", "--device", "rpi4", "--max-size-mb", "1e300"],
        ["front", "qs", "--device", "rpi4", "--max-size-mb", "inf"],
        ["show", "qs", "-1"],
        ["export", "qs", "99999999999999999999", "--device", "rpi4", "--out", "o"],
        ["studies", "--storage", ""],
        ["studies", "--storage", "sqlite:///paretoedgee.db"],
        ["front", "qs", "--device", "rpi4", "--storage", "sqlite:///x/y/z.db"],
        ["search", "study.yaml", "--storage", ""],
        ["search", "study.yaml", "--study", "../../x"],
        ["search", "study.yaml", "--study", "/abs/x"],
        ["search", "study.yaml", "--study", ".."],
        ["search", "study.yaml", "--study", "-"],
        ["search", "study.yaml", "--timeout", "nan"],
        ["search", "study.yaml", "--trials", "0"],
        ["resume", "qs", "--timeout", "-1"],
        ["resume", "qs", "--storage", "sqlite:///paretoedgee.db"],
    ],
    ids=lambda a: " ".join(a)[:60],
)
def test_known_bad_invocations(
    url: str,
    workdir: Path,
    _isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
) -> None:
    # A valid tiny study: should a check regress, the search runs (seconds) and fails here.
    (workdir / "study.yaml").write_text(
        yaml.safe_dump({**valid_study("t"), "budget": {"trials": 1}})
    )
    before = _state(url, _isolated_home)
    if "--storage" not in args:
        args = [*args, "--storage", url]
    code, err = _run(capsys, args)
    _assert_refused(code, err)
    _untouched(url, before, workdir, _isolated_home)


def test_a_misspelt_database_says_it_does_not_exist(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, ["studies", "--storage", "sqlite:///paretoedgee.db"])
    assert code == 2 and "paretoedgee.db does not exist" in err
    assert list(workdir.iterdir()) == []


def test_a_user_task_is_read_before_the_study_is_stored(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = workdir / "task.csv"
    bad.write_text("text,label\n")
    doc: dict[str, Any] = {**valid_study("t"), "task": str(bad)}
    (workdir / "study.yaml").write_text(json.dumps(doc))
    db = workdir / "new.db"
    code, err = _run(capsys, ["search", "study.yaml", "--storage", f"sqlite:///{db}"])
    assert code == 2 and "task.csv" in err and "Traceback" not in err
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["finetune", "--model", "", "--task", "sentiment"], "--model"),
        (["finetune", "--model", "../../../../etc"], "--model"),
        (["finetune", "--model", "tiny-bert", "--task", "/etc/passwd"], "--task"),
        (["finetune", "--model", "tiny-bert", "--seed", "-1"], "--seed"),
        (["finetune", "--model", "tiny-bert", "--epochs", "nan"], "--epochs"),
        (["finetune", "--model", "tiny-bert", "--epochs", "0"], "--epochs"),
        (["compress", "../..", "--task", "sentiment", "--out", "o"], "model"),
        (["compress", "tiny-bert", "--task", "sentiment", "--out", "o", "--seed", "-5"], "--seed"),
        (["compress", "tiny-bert", "--task", "sentiment", "--out", "o", "--limit", "0"], "--limit"),
        (["compress", "tiny-bert", "--task", "x.csv", "--out", "o"], "--task"),
        (["compress", "tiny-bert", "--task", "sentiment", "--out", "o", "--seq-len", "10000000"],
         "--seq-len"),
    ],
    ids=lambda a: " ".join(a)[:60] if isinstance(a, list) else a,
)  # fmt: skip
def test_model_commands_check_their_flags_first(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], field: str
) -> None:
    code, err = _run(capsys, args)
    _assert_refused(code, err)
    assert f"invalid {field}=" in err
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [bytes(range(256)) * 4, b"onnx,latency_ms\n\xff\xfe,1\n", b"onnx,latency_ms\nx.onnx,\x00\n"],
    ids=["binary", "invalid-utf8", "nul"],
)
def test_calibrate_refuses_files_that_are_not_csv(
    workdir: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = workdir / "m.csv"
    path.write_bytes(content)
    code, err = _run(capsys, ["calibrate", "--device", "rpi4", "--measurements", str(path)])
    _assert_refused(code, err)
