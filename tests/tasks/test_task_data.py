"""The bundled sentiment task and user CSV/JSONL files."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from paretoedge.errors import ConfigError, DataError, UnknownNameError
from paretoedge.tasks import load_task


def test_bundled_sentiment_split_is_fixed() -> None:
    data = load_task("sentiment")
    assert (len(data.train), len(data.validation), len(data.test)) == (8452, 1056, 1058)
    assert data.num_labels == 2
    assert data.label_names == ("negative", "positive")
    labels = Counter(e.label for split in (data.train, data.validation, data.test) for e in split)
    assert labels == {0: 5325, 1: 5241}
    texts = [e.text for split in (data.train, data.validation, data.test) for e in split]
    assert len(set(texts)) == len(texts)  # no text in two splits
    assert data.train[0].text.startswith("Your response to its new sequel")


def test_limit_keeps_a_balanced_prefix() -> None:
    data = load_task("sentiment", limit=200)
    assert (len(data.train), len(data.validation), len(data.test)) == (200, 200, 200)
    for split in (data.train, data.validation, data.test):
        positives = sum(e.label for e in split)
        assert 70 < positives < 130


def test_bundled_file_matches_its_note() -> None:
    from importlib import resources

    note = resources.files("paretoedge").joinpath("data", "SENTIMENT_DATA.md").read_text()
    assert "MIT" in note and "Hutto" in note and "20140601" in note
    raw = resources.files("paretoedge").joinpath("data", "sentiment.jsonl.gz").read_bytes()
    assert len(raw) < 1_000_000
    first = json.loads(gzip.decompress(raw).splitlines()[0])
    assert set(first) == {"id", "rating", "label", "split", "text"}
    assert first["label"] == int(first["rating"] > 0)


def _write_csv(path: Path, rows: list[tuple[str, str]], header: str = "text,label") -> Path:
    path.write_text(header + "\n" + "".join(f'"{t}",{lab}\n' for t, lab in rows))
    return path


def test_csv_with_string_labels_is_split_80_10_10(tmp_path: Path) -> None:
    rows = [(f"text number {i}", "good" if i % 3 else "bad") for i in range(50)]
    data = load_task(str(_write_csv(tmp_path / "d.csv", rows)))
    assert (len(data.train), len(data.validation), len(data.test)) == (40, 5, 5)
    assert data.label_names == ("bad", "good") and data.num_labels == 2
    all_texts = {e.text for s in (data.train, data.validation, data.test) for e in s}
    assert len(all_texts) == 50
    again = load_task(str(tmp_path / "d.csv"))
    assert again == data  # the split is seeded


def test_jsonl_with_int_labels_and_split_column(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    splits = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    path.write_text(
        "".join(
            json.dumps({"text": f"row {i}", "label": i % 3, "split": s}) + "\n"
            for i, s in enumerate(splits)
        )
    )
    data = load_task(str(path))
    assert (len(data.train), len(data.validation), len(data.test)) == (6, 2, 2)
    assert data.num_labels == 3
    assert [e.label for e in data.train] == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("a.csv", "text,score\nhello,1\n", "missing column(s) label"),
        ("a.csv", 'text,label\n"",1\nb,0\nc,1\n', ":2: 'text' is missing or empty"),
        ("a.jsonl", '{"text": "a", "label": 1}\n{not json\n', ":2: not valid JSON"),
        ("a.jsonl", '{"text": "a", "label": 1.5}\n', "'label' 1.5 is not an integer"),
        ("a.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "x"}\n', "mix"),
        ("a.jsonl", '{"text": "a", "label": 0, "split": "dev"}\n', "'split' 'dev'"),
        ("a.csv", "text,label\na,1\nb,1\nc,1\nd,1\n", "at least 2 classes"),
        ("a.csv", "text,label\na,1\nb,0\n", "at least 3 rows"),
        ("a.txt", "whatever", "unsupported file type"),
        ("a.csv", "", "empty file"),
    ],
    ids=[
        "no-label-col",
        "empty-text",
        "bad-json",
        "float-label",
        "mixed-labels",
        "bad-split",
        "one-class",
        "too-few",
        "bad-suffix",
        "empty",
    ],
)
def test_malformed_files_name_the_file_and_problem(
    tmp_path: Path, name: str, content: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError) as err:
        load_task(str(path))
    assert str(path) in str(err.value)
    assert problem in str(err.value)


def test_missing_file_and_unknown_task(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_task(str(tmp_path / "gone.csv"))
    with pytest.raises(UnknownNameError, match="sentiment"):
        load_task("imdb")
    with pytest.raises(ConfigError, match="limit"):
        load_task("sentiment", limit=0)
