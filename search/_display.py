"""What a person sees while a search runs.

Why apart: progress is presentation only; the runner calls :meth:`Display.start_trial` and
:meth:`Display.finish_trial` and knows nothing about Rich or terminals. On a terminal this
is a Rich live view; without one (CI, a log file, ``nohup``) one plain line per finished
trial, since a live view writes nothing useful to a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paretoedge._describe import describe_spec

if TYPE_CHECKING:
    from paretoedge.search._evaluator import CandidateResult
    from paretoedge.search._fronts import DeviceFront
    from paretoedge.search._runner import SearchRunner


class Display:
    """Progress of a run: on a terminal a Rich live view (trial bar, best-so-far and front
    size per device); elsewhere (CI, a log file, ``nohup``) one plain line per finished
    trial on stderr, since a live view writes nothing useful to a file."""

    def __init__(self, runner: SearchRunner, total: int | None) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.runner = runner
        self.console = Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.total = total
        self.finished = 0
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=self.console,
        )
        self.task = self.progress.add_task("", total=total)
        self.fronts: Mapping[str, DeviceFront] = {}
        self.best: dict[str, tuple[float, float]] = {}
        self.live = Live(self._render(), console=self.console, refresh_per_second=4)

    def __enter__(self) -> Display:
        if not self.plain:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.plain:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"study {self.runner.name}", expand=False)
        for col in ("device", "front size", "best accuracy", "fastest ms (front)"):
            table.add_column(col)
        for d in self.runner.devices:
            f = self.fronts.get(d)
            acc, lat = self.best.get(d, (math.nan, math.nan))
            table.add_row(d, str(len(f.front)) if f else "-", f"{acc:.3f}", f"{lat:.2f}")
        return Group(self.progress, table)

    def start_trial(self, number: int, what: str) -> None:
        if self.plain:
            return
        self.progress.update(self.task, description=f"trial {number}: {what}")
        self.live.update(self._render())

    def finish_trial(
        self, number: int, result: CandidateResult, fronts: Mapping[str, DeviceFront]
    ) -> None:
        from paretoedge import storage as st

        self.fronts = fronts
        for d in fronts:
            # The front's best of each: the first entry of the stored front in that order.
            best = []
            for sort in ("accuracy", "latency"):
                page = st.get_front(
                    self.runner.storage, study=self.runner.name, device=d, sort=sort, limit=1
                )
                best.append(page.entries[0] if page.entries else None)
            acc, fast = best
            self.best[d] = (
                acc.candidate.accuracy
                if acc is not None and acc.candidate.accuracy is not None
                else math.nan,
                fast.metrics.latency_ms if fast is not None else math.nan,
            )
        self.finished += 1
        if self.plain:
            self.console.print(
                self._line(number, result), markup=False, highlight=False, soft_wrap=True
            )
            return
        self.progress.advance(self.task)
        self.live.update(self._render())

    def _line(self, number: int, result: CandidateResult) -> str:
        """``trial 7 (3/20) 12.4 s acc 0.842: sparsity 0.3 int8 | rpi4 front 5 ...``"""
        of = f"{self.finished}/{self.total}" if self.total is not None else str(self.finished)
        how = (
            f"reused trial {result.twin_of}"
            if result.twin_of is not None
            else (f"{result.wall_s:.1f} s")
        )
        acc = result.evaluation.accuracy
        fronts = ", ".join(
            f"{d} front {len(f.front)} (fastest {self.best.get(d, (math.nan, math.nan))[1]:.2f} ms)"
            for d, f in self.fronts.items()
        )
        return f"trial {number} ({of}) {how} acc {acc:.3f}: {describe_spec(result.flat)} | {fronts}"
