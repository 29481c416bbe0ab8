"""Task data: the bundled ``sentiment`` task and user CSV/JSONL files.

A task is labelled text with a fixed train/validation/test split, so every accuracy
paretoedge reports (the teacher's, a candidate's) is measured on the same held-out rows.
The bundled data is read with :mod:`importlib.resources` from the installed package;
``paretoedge/data/SENTIMENT_DATA.md`` records its origin, licence and split.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from paretoedge.errors import ConfigError, DataError, UnknownNameError

#: Bundled tasks: name -> data file inside ``paretoedge/data``.
BUNDLED_TASKS: dict[str, str] = {"sentiment": "sentiment.jsonl.gz"}

SPLITS = ("train", "validation", "test")
#: Seed of the 80/10/10 split of user files that have no ``split`` column.
USER_SPLIT_SEED = 0
_SENTIMENT_LABELS = ("negative", "positive")


@dataclass(frozen=True)
class Example:
    """One labelled text; ``label`` indexes :attr:`TaskData.label_names`."""

    text: str
    label: int


@dataclass(frozen=True)
class TaskData:
    """A task's examples in their fixed split.

    Attributes:
        name: ``sentiment`` or the path of the user file.
        train, validation, test: The examples of each split, in file order.
        num_labels: Number of classes (the classifier head's size).
        label_names: Name of each label id.
    """

    name: str
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    num_labels: int
    label_names: tuple[str, ...]

    def split(self, name: str) -> tuple[Example, ...]:
        """The examples of split ``name`` (``train``, ``validation`` or ``test``)."""
        if name not in SPLITS:
            raise ConfigError("split", name, SPLITS)
        return tuple(getattr(self, name))


def load_task(name_or_path: str, *, limit: int | None = None) -> TaskData:
    """Load a bundled task or a user CSV/JSONL file.

    Args:
        name_or_path: ``sentiment``, or a ``.csv``/``.jsonl`` (optionally ``.gz``) file with
            ``text`` and ``label`` columns and an optional ``split`` column
            (``train``/``validation``/``test``). Labels are non-negative integers, or
            strings mapped to ids in sorted order. Without a ``split`` column the rows are
            split 80/10/10 by a shuffle seeded with :data:`USER_SPLIT_SEED`.
        limit: Keep at most this many examples of each split (the first ones), for quick
            runs and tests.

    Raises:
        UnknownNameError: not a bundled task and not a file path.
        DataError: the file is missing, unreadable or malformed (the message names the
            file, the line and the problem).
        ConfigError: ``limit`` < 1.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError("limit", limit, "a positive integer or None")
    if name_or_path in BUNDLED_TASKS:
        data = _load_bundled(name_or_path)
    else:
        data = _load_user(name_or_path)
    if limit is None:
        return data
    return TaskData(
        name=data.name,
        train=data.train[:limit],
        validation=data.validation[:limit],
        test=data.test[:limit],
        num_labels=data.num_labels,
        label_names=data.label_names,
    )


def _load_bundled(name: str) -> TaskData:
    resource = resources.files("paretoedge").joinpath("data", BUNDLED_TASKS[name])
    raw = resource.read_bytes()
    splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        row = json.loads(line)
        splits[row["split"]].append(Example(row["text"], int(row["label"])))
    return TaskData(
        name=name,
        train=tuple(splits["train"]),
        validation=tuple(splits["validation"]),
        test=tuple(splits["test"]),
        num_labels=len(_SENTIMENT_LABELS),
        label_names=_SENTIMENT_LABELS,
    )


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a CSV or JSONL file."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        opener: Any = gzip.open
    else:
        opener = open
    kind = suffixes[-1] if suffixes else ""
    if kind not in (".csv", ".jsonl", ".json"):
        raise DataError(f"{path}: unsupported file type {kind or '(none)'!r}: use .csv or .jsonl")
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            if kind == ".csv":
                reader = csv.DictReader(handle)
                if reader.fieldnames is None:
                    raise DataError(f"{path}: empty file")
                missing = {"text", "label"} - set(reader.fieldnames)
                if missing:
                    raise DataError(
                        f"{path}: missing column(s) {', '.join(sorted(missing))} "
                        f"(found {', '.join(reader.fieldnames)})"
                    )
                return [(reader.line_num, dict(row)) for row in reader]
            rows = []
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}:{number}: expected a JSON object per line")
                rows.append((number, row))
            return rows
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None


def _parse_label(value: Any) -> int | str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        return text
    return None


def _load_user(name_or_path: str) -> TaskData:
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if "/" not in name_or_path and "." not in name_or_path:
            raise UnknownNameError("task", name_or_path, [*BUNDLED_TASKS, "<file.csv|file.jsonl>"])
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")

    texts: list[str] = []
    raw_labels: list[int | str] = []
    split_names: list[str | None] = []
    for number, row in rows:
        where = f"{path}:{number}"
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: 'text' is missing or empty")
        label = _parse_label(row.get("label"))
        if label is None:
            raise DataError(f"{where}: 'label' {row.get('label')!r} is not an integer or a name")
        split = row.get("split")
        if split in (None, ""):
            split = None
        elif split not in SPLITS:
            raise DataError(f"{where}: 'split' {split!r} is not one of {', '.join(SPLITS)}")
        texts.append(text)
        raw_labels.append(label)
        split_names.append(split)

    if all(isinstance(lab, int) for lab in raw_labels):
        int_labels = [int(lab) for lab in raw_labels]
        if min(int_labels) < 0:
            raise DataError(f"{path}: integer labels must be >= 0 (found {min(int_labels)})")
        num_labels = max(int_labels) + 1
        label_names = tuple(str(i) for i in range(num_labels))
        ids = int_labels
    elif all(isinstance(lab, str) for lab in raw_labels):
        label_names = tuple(sorted({str(lab) for lab in raw_labels}))
        index = {name: i for i, name in enumerate(label_names)}
        ids = [index[str(lab)] for lab in raw_labels]
        num_labels = len(label_names)
    else:
        raise DataError(f"{path}: labels mix integers and names; use one or the other")
    if len(set(ids)) < 2:
        raise DataError(f"{path}: needs at least 2 classes (found {len(set(ids))})")

    examples = [Example(text, label) for text, label in zip(texts, ids, strict=True)]
    has_split = [s is not None for s in split_names]
    if any(has_split) and not all(has_split):
        raise DataError(f"{path}: the 'split' column is empty on some rows")
    splits: dict[str, list[Example]] = {s: [] for s in SPLITS}
    if all(has_split):
        for example, split in zip(examples, split_names, strict=True):
            splits[str(split)].append(example)
    else:
        assigned = _seeded_split(len(examples))
        if assigned is None:
            raise DataError(f"{path}: needs at least 3 rows to split 80/10/10 (has {len(rows)})")
        for row_index, split in assigned:
            splits[split].append(examples[row_index])
    empty = [s for s in SPLITS if not splits[s]]
    if empty:
        raise DataError(f"{path}: split(s) {', '.join(empty)} have no rows")
    return TaskData(
        name=str(path),
        train=tuple(splits["train"]),
        validation=tuple(splits["validation"]),
        test=tuple(splits["test"]),
        num_labels=num_labels,
        label_names=label_names,
    )


def _seeded_split(n: int) -> list[tuple[int, str]] | None:
    """(row index, split) pairs in a seeded shuffled order, cut 80/10/10.

    Each split keeps the shuffled order, so the first rows of a split (``limit``) are a
    random sample even when the file is sorted by label. None if ``n`` is too small.
    """
    n_held = max(1, n // 10)
    if n - 2 * n_held < 1:
        return None
    order = list(range(n))
    random.Random(USER_SPLIT_SEED).shuffle(order)
    n_train = n - 2 * n_held
    return [
        (index, "train" if rank < n_train else "validation" if rank < n_train + n_held else "test")
        for rank, index in enumerate(order)
    ]
