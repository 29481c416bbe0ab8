"""``paretoedge measure``: time model files on the board and write what ``calibrate`` reads.

The CSV has the columns ``onnx`` and ``latency_ms`` that
:func:`paretoedge.hardware_profiles.read_measurements` requires (``onnx`` names the ONNX
twin of the timed file, relative to the CSV, since the cost model lowers ONNX), followed by
what a reader needs to judge the timing: the file actually timed, the runtime, threads,
repeats, warm-up runs, min/p10/p90/max and the relative spread.
"""

from __future__ import annotations

import csv
import logging
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paretoedge.errors import ConfigError, DataError

from ._runtimes import RUNTIMES, get_runtime
from ._timing import DEFAULT_MAX_SPREAD, Timing, check_spread, pin_cpus, time_callable

_log = logging.getLogger(__name__)

#: The CSV's columns, in order; the first two are what ``calibrate`` reads.
CSV_COLUMNS = (
    "onnx",
    "latency_ms",
    "file",
    "runtime",
    "threads",
    "repeats",
    "warmup",
    "min_ms",
    "p10_ms",
    "p90_ms",
    "max_ms",
    "spread",
    "machine",
)


@dataclass(frozen=True)
class FileTiming:
    """The timing of one model file in one runtime."""

    file: Path
    onnx: Path
    runtime: str
    threads: int
    timing: Timing


@dataclass(frozen=True)
class MeasureOptions:
    """How to time: validated in ``__post_init__`` so every entry point gets the same errors.

    Attributes:
        max_spread: Largest accepted ``(p90 - p10) / median`` of one file's repeats.
        cpus: CPUs to pin the process to (``None``: leave the affinity as it is).
    """

    runtime: str = "onnxruntime"
    threads: int = 1
    repeats: int = 20
    warmup: int = 3
    max_spread: float = DEFAULT_MAX_SPREAD
    cpus: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ConfigError("--runtime", self.runtime, RUNTIMES.names())
        if self.threads < 1:
            raise ConfigError("--threads", self.threads, "an integer >= 1")
        if self.repeats < 3:
            raise ConfigError("--repeats", self.repeats, "an integer >= 3 (a spread needs 3)")
        if self.warmup < 0:
            raise ConfigError("--warmup", self.warmup, "an integer >= 0")
        if not self.max_spread > 0:
            raise ConfigError("--max-spread", self.max_spread, "a number > 0 (0.25 = 25 %)")


def onnx_twin(path: Path) -> Path:
    """The ONNX file the cost model lowers for ``path``: itself, or ``<stem>.onnx`` beside it."""
    if path.suffix.lower() == ".onnx":
        return path
    twin = path.with_suffix(".onnx")
    return twin if twin.is_file() else path


def _check_files(files: Sequence[Path], runtime: str) -> list[Path]:
    if not files:
        raise ConfigError("FILES", [], "at least one model file")
    suffixes = RUNTIMES.get(runtime).suffixes
    out = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            raise DataError(f"model file {str(path)!r} does not exist")
        if path.suffix.lower() not in suffixes:
            raise ConfigError(
                "--runtime",
                runtime,
                f"a runtime that loads {path.name} ({runtime} loads {', '.join(suffixes)} files)",
            )
        out.append(path)
    return out


def measure_files(
    files: Sequence[Path],
    options: MeasureOptions,
    *,
    on_done: Callable[[FileTiming], None] | None = None,
) -> list[FileTiming]:
    """Time every file (warm-up, then ``repeats`` single inferences) in one runtime.

    Files are timed one after another in this process, each in a fresh session.

    Raises:
        ConfigError: Bad options or a file the runtime does not load.
        DataError: A missing or unloadable file.
        RuntimeMissingError: The runtime is not installed.
        NoisyMeasurementError: A file's spread exceeds ``options.max_spread`` (nothing is
            returned, so nothing noisy reaches a CSV).
    """
    paths = _check_files(files, options.runtime)
    if options.cpus is not None:
        pin_cpus(options.cpus)
    adapter = get_runtime(options.runtime)
    results = []
    for path in paths:
        run = adapter.load(path, threads=options.threads)
        timing = time_callable(run, repeats=options.repeats, warmup=options.warmup)
        check_spread(path.name, timing, options.max_spread)
        result = FileTiming(path, onnx_twin(path), options.runtime, options.threads, timing)
        _log.info("%s: median %.3f ms, spread %.1f%%", path, timing.median_ms, 100 * timing.spread)
        if on_done is not None:
            on_done(result)
        results.append(result)
    return results


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive on Windows
        return str(path.resolve())


def write_csv(results: Sequence[FileTiming], out: Path) -> Path:
    """Write ``results`` as the CSV ``paretoedge calibrate --measurements`` reads.

    Paths are written relative to the CSV's folder, so the CSV and the files can be copied
    back from the board together.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.parent
    machine = f"{platform.machine()} {platform.node()}".strip()
    with out.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in results:
            t = r.timing
            writer.writerow(
                [
                    _relative(r.onnx, base),
                    f"{t.median_ms:.6g}",
                    _relative(r.file, base),
                    r.runtime,
                    r.threads,
                    t.repeats,
                    t.warmup,
                    f"{t.min_ms:.6g}",
                    f"{t.p10_ms:.6g}",
                    f"{t.p90_ms:.6g}",
                    f"{t.max_ms:.6g}",
                    f"{t.spread:.4f}",
                    machine,
                ]
            )
    return out
