"""``python -m paretoedge.measure FILES... --out timings.csv``: the kit without typer.

The same options as ``paretoedge measure``; argparse only, so a board with just the
runtime and numpy installed can run it. Errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from paretoedge.errors import ParetoEdgeError

from ._kit import MeasureOptions, measure_files, write_csv
from ._runtimes import RUNTIMES
from ._timing import DEFAULT_MAX_SPREAD


def parse_cpus(text: str | None) -> tuple[int, ...] | None:
    """``"0,1"`` -> ``(0, 1)``; ``None``/empty -> ``None``."""
    from paretoedge.errors import ConfigError

    if not text:
        return None
    try:
        return tuple(int(c) for c in text.split(","))
    except ValueError:
        raise ConfigError("--cpus", text, "comma-separated CPU numbers, e.g. 0,1") from None


def main(argv: list[str] | None = None, *, prog: str = "python -m paretoedge.measure") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time model files in one runtime and write the CSV paretoedge calibrate reads.",
    )
    parser.add_argument("files", nargs="+", help="model files (.onnx, .pte, .tflite)")
    parser.add_argument("--runtime", default="onnxruntime", help=", ".join(RUNTIMES.names()))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-spread", type=float, default=DEFAULT_MAX_SPREAD)
    parser.add_argument("--cpus", default=None, help="pin to these CPUs, e.g. 0,1")
    parser.add_argument("--out", required=True, help="CSV to write")
    args = parser.parse_args(argv)
    try:
        options = MeasureOptions(
            runtime=args.runtime,
            threads=args.threads,
            repeats=args.repeats,
            warmup=args.warmup,
            max_spread=args.max_spread,
            cpus=parse_cpus(args.cpus),
        )

        def report(r) -> None:  # noqa: ANN001
            t = r.timing
            print(f"{r.file}: median {t.median_ms:.3f} ms, spread {t.spread:.1%}", flush=True)

        results = measure_files(args.files, options, on_done=report)
        out = write_csv(results, args.out)
    except ParetoEdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(results)} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
