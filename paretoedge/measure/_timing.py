"""Timing one callable: warm-up, timed repeats, median and spread, refusal of noisy runs.

Only the standard library is used here so that the measuring kit runs on a board that has
nothing but a runtime and numpy installed.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from paretoedge.errors import ConfigError, ParetoEdgeError

#: Default largest accepted relative spread, ``(p90 - p10) / median``.
DEFAULT_MAX_SPREAD = 0.25


class NoisyMeasurementError(ParetoEdgeError):
    """Repeats of one model disagree too much for their median to be trusted.

    A calibration fitted on such timings learns the other programs that shared the cores,
    not the board, so the kit refuses them unless the user raises the threshold.
    """


@dataclass(frozen=True)
class Timing:
    """Wall times (ms) of the timed repeats of one model; warm-up runs are not included.

    Attributes:
        spread: ``(p90 - p10) / median`` of the repeats: 0 for perfectly steady timings.
    """

    median_ms: float
    min_ms: float
    max_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    warmup: int

    @property
    def spread(self) -> float:
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else 0.0


def _quantile(sorted_ms: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an ascending sequence (numpy's default method)."""
    pos = q * (len(sorted_ms) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


def summarize(samples_ms: Sequence[float], *, warmup: int = 0) -> Timing:
    """A :class:`Timing` of timed samples (ms)."""
    if not samples_ms:
        raise ConfigError("repeats", 0, "at least 1 timed run")
    ordered = sorted(samples_ms)
    return Timing(
        median_ms=statistics.median(ordered),
        min_ms=ordered[0],
        max_ms=ordered[-1],
        p10_ms=_quantile(ordered, 0.1),
        p90_ms=_quantile(ordered, 0.9),
        repeats=len(ordered),
        warmup=warmup,
    )


def time_callable(fn: Callable[[], object], *, repeats: int, warmup: int) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed one by one.

    Raises:
        ConfigError: ``repeats < 1`` or ``warmup < 0``.
    """
    if repeats < 1:
        raise ConfigError("repeats", repeats, "an integer >= 1")
    if warmup < 0:
        raise ConfigError("warmup", warmup, "an integer >= 0")
    for _ in range(warmup):
        fn()
    clock = time.perf_counter
    samples = []
    for _ in range(repeats):
        start = clock()
        fn()
        samples.append((clock() - start) * 1e3)
    return summarize(samples, warmup=warmup)


def check_spread(name: str, timing: Timing, max_spread: float) -> None:
    """Refuse ``timing`` when its spread exceeds ``max_spread``.

    Raises:
        NoisyMeasurementError: naming the file, its spread and the way to override it.
    """
    if timing.spread > max_spread:
        raise NoisyMeasurementError(
            f"{name}: timings too noisy to calibrate on: spread (p90-p10)/median "
            f"{timing.spread:.0%} > --max-spread {max_spread:.0%} (median {timing.median_ms:.3f} "
            f"ms, p10 {timing.p10_ms:.3f}, p90 {timing.p90_ms:.3f}, {timing.repeats} repeats); "
            "stop other programs on the board, raise --repeats, or pass a larger --max-spread"
        )


def pin_cpus(cpus: Sequence[int]) -> None:
    """Restrict this process (and the runtime threads it starts later) to ``cpus``.

    Raises:
        ConfigError: The platform cannot pin (no ``sched_setaffinity``) or a CPU is unknown.
    """
    setaffinity = getattr(os, "sched_setaffinity", None)
    if setaffinity is None:
        raise ConfigError("cpus", list(cpus), "no CPU pinning on this platform; leave it out")
    available = os.sched_getaffinity(0)
    unknown = sorted(set(cpus) - set(available))
    if not cpus or unknown:
        raise ConfigError("cpus", list(cpus), f"CPUs of this machine: {sorted(available)}")
    setaffinity(0, set(cpus))
