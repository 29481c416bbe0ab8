"""Study names are data, model and task paths stay where they are allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _malformed import valid_study
from hypothesis import given, settings
from hypothesis import strategies as st

from paretoedge.errors import ConfigError
from paretoedge.search import parse_config
from paretoedge.search._names import (
    STUDY_NAME_MAX,
    check_model,
    check_study_name,
    check_task,
    study_dirname,
)

_SAFE = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(_SAFE)
def test_safe_names_are_accepted_and_are_their_own_directory(name: str) -> None:
    assert check_study_name(name) == name
    assert study_dirname(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "-", "-x", ".hidden", "a/b", "../../x", "/abs/x", "a\\b", "a b", "é",
     "x" * (STUDY_NAME_MAX + 1), "a\x00"],
)  # fmt: skip
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_study_name(name, field="--study")
    assert info.value.field == "--study" and "starting with a letter or digit" in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_stored_name_maps_to_one_component_inside_the_root(name: str) -> None:
    d = study_dirname(name)
    assert d not in ("", ".", "..") and "/" not in d and "\\" not in d and "\x00" not in d
    assert not d.startswith(("-", ".")) and len(d) <= STUDY_NAME_MAX
    root = Path("/srv/artifacts")
    assert (root / d).resolve().parent == root


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_different_names_get_different_directories(a: str, b: str) -> None:
    if a != b:
        assert study_dirname(a) != study_dirname(b)


def test_artifacts_stay_under_the_artifacts_directory(_isolated_home: Path) -> None:
    from paretoedge.search import SearchRunner

    cfg = parse_config(valid_study(), check_names=False)
    root = (_isolated_home / "artifacts").resolve()
    for name in ("../../x", "/abs/x", "..", "-", "a/../../b", "ok-name"):
        runner = SearchRunner(cfg, storage_url="sqlite://", study_name=name)
        assert runner.artifacts_dir.resolve().parent == root, name
        assert runner.name == name  # the name itself stays data


def _hf_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return path


def test_models_are_bundled_or_hf_directories(tmp_path: Path) -> None:
    assert check_model("tiny-bert") == "tiny-bert"
    model = _hf_dir(tmp_path / "m")
    assert check_model(str(model)) == str(model)
    (tmp_path / "empty").mkdir()
    for bad in ("", " ", str(tmp_path / "empty"), str(tmp_path / "nope"), "a" * 5000,
                f"{tmp_path}/../{tmp_path.name}/m", None, 3):  # fmt: skip
        with pytest.raises(ConfigError) as info:
            check_model(bad)
        assert info.value.field == "model" and "tiny-bert" in str(info.value)


def test_tasks_are_bundled_or_data_files(tmp_path: Path) -> None:
    assert check_task("sentiment") == "sentiment"
    data = tmp_path / "t.csv"
    data.write_text("text,label\nhi,0\n")
    assert check_task(str(data)) == str(data)
    for bad in ("", "/etc/passwd", str(tmp_path / "nope.csv"), f"{tmp_path}/../x.csv", 3):
        with pytest.raises(ConfigError) as info:
            check_task(bad)
        assert info.value.field == "task"


def test_a_data_directory_confines_paths(tmp_path: Path) -> None:
    root = tmp_path / "data"
    inside = root / "t.csv"
    root.mkdir()
    inside.write_text("text,label\nhi,0\n")
    outside = tmp_path / "o.csv"
    outside.write_text("text,label\nhi,0\n")
    link = root / "link.csv"
    link.symlink_to(outside)
    model = _hf_dir(root / "m")
    assert check_task(str(inside), data_dir=root) == str(inside)
    assert check_model(str(model), data_dir=root) == str(model)
    for bad in (str(outside), str(link)):
        with pytest.raises(ConfigError, match="a path inside"):
            check_task(bad, data_dir=root)
    with pytest.raises(ConfigError, match="bundled names only"):
        check_task(str(inside), local_paths=False)
    with pytest.raises(ConfigError, match="bundled names only"):
        check_model(str(model), local_paths=False)
