"""Figures of a study's fronts: accuracy against latency, one panel per device.

The points come from the precomputed rankings (:func:`paretoedge.storage.get_front` with
``max_rank=None``), so a plot shows every ranked candidate: front members (rank 0) opaque,
dominated ones faint; marker area grows with the stored size; baselines are diamonds; the
hover text is the candidate's configuration and its numbers.

Interactive figures are Plotly (HTML with plotly.js inlined, so the file works offline).
Static PNGs go through Plotly's kaleido when it and a Chromium are present, and through
matplotlib otherwise (:func:`write_png` says which it used).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from paretoedge._describe import describe_spec
from paretoedge.errors import ConfigError, MissingExtraError

if TYPE_CHECKING:
    from paretoedge.storage import Storage

_log = logging.getLogger(__name__)

#: Most points drawn per device (the best-ranked ones); a plot of more is unreadable.
MAX_POINTS = 5000

#: The one description of a candidate every view uses.
spec_summary = describe_spec


@dataclass(frozen=True)
class PlotPoint:
    """One ranked candidate on one device."""

    device: str
    trial: int
    rank: int
    accuracy: float
    latency_ms: float
    size_bytes: int
    label: str
    baseline: str | None
    feasible: bool

    @property
    def on_front(self) -> bool:
        return self.rank == 0


def front_points(
    storage: Storage, *, study: str, devices: Sequence[str], max_points: int = MAX_POINTS
) -> dict[str, list[PlotPoint]]:
    """The ranked candidates of ``study`` on each device, best ranks first.

    Raises:
        ConfigError: No device given, or a device given twice.
        NotFoundError: No such study, or a device that is not one of its devices.
    """
    from paretoedge.storage import MAX_PAGE_SIZE, get_front

    if not devices:
        raise ConfigError("device", list(devices), "at least one device of the study")
    if len(set(devices)) != len(devices):
        raise ConfigError("device", list(devices), "distinct device names")
    out: dict[str, list[PlotPoint]] = {}
    for device in devices:
        points: list[PlotPoint] = []
        offset = 0
        while len(points) < max_points:
            page = get_front(
                storage,
                study=study,
                device=device,
                max_rank=None,
                sort="latency",
                limit=min(MAX_PAGE_SIZE, max_points - len(points)),
                offset=offset,
            )
            for e in page.entries:
                c = e.candidate
                if c.accuracy is None:
                    continue
                points.append(
                    PlotPoint(
                        device=device,
                        trial=c.trial_number,
                        rank=e.rank,
                        accuracy=float(c.accuracy),
                        latency_ms=float(e.metrics.latency_ms),
                        size_bytes=int(c.size_bytes or 0),
                        label=c.baseline_name or spec_summary(c.flat),
                        baseline=c.baseline_name if c.is_baseline else None,
                        feasible=e.metrics.feasible,
                    )
                )
            offset += len(page.entries)
            if not page.entries or offset >= page.total:
                break
        out[device] = points
    return out


def _marker_sizes(points: Sequence[PlotPoint], lo: float = 7.0, hi: float = 28.0) -> list[float]:
    """Marker diameters with area proportional to size (sqrt scale), over all panels."""
    roots = [math.sqrt(max(p.size_bytes, 0)) for p in points]
    top = max(roots, default=0.0)
    if top <= 0:
        return [lo for _ in points]
    return [lo + (hi - lo) * r / top for r in roots]


def _hover(p: PlotPoint) -> str:
    kind = f"baseline {p.baseline}" if p.baseline else ("front" if p.on_front else f"rank {p.rank}")
    return (
        f"trial {p.trial} ({kind})<br>{p.label}<br>accuracy {p.accuracy:.4f}<br>"
        f"latency {p.latency_ms:.3f} ms on {p.device}<br>size {p.size_bytes / 1e6:.3f} MB"
        + ("" if p.feasible else "<br>does not fit the device")
    )


def front_figure(points: Mapping[str, Sequence[PlotPoint]], *, title: str = "") -> Any:
    """A Plotly figure: one panel per device side by side, accuracy (y) vs latency (x)."""
    try:
        from plotly.subplots import make_subplots
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError("plotly", "api") from exc
    import plotly.graph_objects as go

    devices = list(points)
    fig = make_subplots(
        rows=1,
        cols=max(1, len(devices)),
        shared_yaxes=True,
        subplot_titles=[
            f"{d} ({sum(p.on_front for p in points[d])} on the front)" for d in devices
        ],
        horizontal_spacing=0.06,
    )
    everything = [p for d in devices for p in points[d]]
    sizes = dict(zip(map(id, everything), _marker_sizes(everything), strict=True))
    groups = (
        ("front", lambda p: p.on_front and p.baseline is None, 0.95, "circle"),
        ("dominated", lambda p: not p.on_front and p.baseline is None, 0.2, "circle"),
        ("baseline", lambda p: p.baseline is not None, 0.9, "diamond"),
    )
    colors = {"front": "#1f77b4", "dominated": "#7f7f7f", "baseline": "#d62728"}
    for col, device in enumerate(devices, start=1):
        for name, keep, opacity, symbol in groups:
            chosen = [p for p in points[device] if keep(p)]
            if not chosen:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p.latency_ms for p in chosen],
                    y=[p.accuracy for p in chosen],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    opacity=opacity,
                    marker={
                        "size": [sizes[id(p)] for p in chosen],
                        "symbol": symbol,
                        "color": colors[name],
                        "line": {"width": 1, "color": "white"},
                    },
                    hovertext=[_hover(p) for p in chosen],
                    hoverinfo="text",
                    customdata=[[p.trial, p.rank] for p in chosen],
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="latency (ms)", row=1, col=col)
    fig.update_yaxes(title_text="accuracy", row=1, col=1)
    fig.update_layout(
        title=title or None,
        template="plotly_white",
        width=max(520, 480 * len(devices)),
        height=480,
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def write_html(fig: Any, path: Path) -> Path:
    """A self-contained HTML file (plotly.js inlined: no network needed to view it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return path


def find_chromium() -> str | None:
    """A Chromium executable (``$BROWSER_PATH``, then Debian's ``chromium``), or None."""
    for candidate in (os.environ.get("BROWSER_PATH"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def write_png(
    fig: Any, points: Mapping[str, Sequence[PlotPoint]], path: Path, *, title: str = ""
) -> Literal["kaleido", "matplotlib"]:
    """Write a static PNG of the fronts; returns which renderer drew it.

    Plotly's own export needs kaleido and a Chromium; without them (or if it fails) the
    same data is drawn with matplotlib (same encoding: faint dominated points, diamonds
    for baselines, marker area by size).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    try:
        import kaleido  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is not None:
        os.environ.setdefault("BROWSER_PATH", chromium)
        try:
            fig.write_image(str(path), format="png", scale=1)
            return "kaleido"
        except Exception as exc:  # kaleido drives a browser: any failure -> fall back
            _log.warning("kaleido could not render the PNG (%s); using matplotlib", exc)
    _matplotlib_png(points, path, title=title)
    return "matplotlib"


def _matplotlib_png(points: Mapping[str, Sequence[PlotPoint]], path: Path, *, title: str) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("matplotlib", "api") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    devices = list(points)
    everything = [p for d in devices for p in points[d]]
    sizes = dict(zip(map(id, everything), _marker_sizes(everything), strict=True))
    fig, axes = plt.subplots(
        1, max(1, len(devices)), figsize=(5 * max(1, len(devices)), 4.2), sharey=True, squeeze=False
    )
    for ax, device in zip(axes[0], devices, strict=False):
        pts = points[device]
        for on_front, alpha, color in ((False, 0.2, "#7f7f7f"), (True, 0.95, "#1f77b4")):
            chosen = [p for p in pts if p.on_front == on_front and p.baseline is None]
            ax.scatter(
                [p.latency_ms for p in chosen],
                [p.accuracy for p in chosen],
                s=[sizes[id(p)] ** 2 / 2 for p in chosen],
                alpha=alpha,
                c=color,
                label="front" if on_front else "dominated",
                edgecolors="white",
            )
        front = [p for p in pts if p.on_front]
        base = [p for p in pts if p.baseline is not None]
        ax.scatter(
            [p.latency_ms for p in base],
            [p.accuracy for p in base],
            s=[sizes[id(p)] ** 2 / 2 for p in base],
            marker="D",
            c="#d62728",
            label="baseline",
        )
        for p in base:
            ax.annotate(p.baseline or "", (p.latency_ms, p.accuracy), fontsize=8)
        ax.set_title(f"{device} ({len(front)} on the front)")
        ax.set_xlabel("latency (ms)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
