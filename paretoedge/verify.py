"""``paretoedge verify``: re-measure a device's front on the device's real runtime.

For a device whose runtime runs on this machine (``host-ort``: onnxruntime with the
profile's thread count; ``host``: TVM's default build in the Relax VM), every front member
(or the ``top`` fastest by prediction) is rebuilt from the database exactly as ``export``
rebuilds it (:func:`paretoedge.export.rebuild_candidate`), exported to the file that
runtime runs, and timed: pinned thread count, warm-up runs, the median of the repeats.
The measurement is stored beside the prediction (``pe_measured_latency``); the report
gives Kendall's tau and the MAPE of prediction against measurement and how many members
stay non-dominated among themselves when measured latency replaces the predicted one.

File timed per candidate: onnxruntime runs ``model.int8.onnx`` (static int8 QDQ) when the
candidate has 8-bit layers, since that is the file an onnxruntime deployment runs, and
``model.onnx`` otherwise (int4 and clustered weights run as float there); TVM runs the
build of ``model.onnx``, as ``export`` writes it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from paretoedge.hardware_profiles import DeviceProfile
    from paretoedge.measure import Timing
    from paretoedge.storage import CandidateRecord, MeasuredLatencyRecord, Storage

_log = logging.getLogger(__name__)

#: Runtimes ``verify`` can time here, by the profile's ``runtime`` field.
LOCAL_RUNTIMES = ("onnxruntime", "tvm-default")


@dataclass(frozen=True)
class VerifiedMember:
    """One re-measured front member."""

    trial: int
    accuracy: float | None
    size_bytes: int | None
    predicted_ms: float
    measured: MeasuredLatencyRecord
    non_dominated_measured: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "accuracy": self.accuracy,
            "size_bytes": self.size_bytes,
            "predicted_ms": self.predicted_ms,
            "measured_ms": self.measured.median_ms,
            "spread": self.measured.spread,
            "error_pct": self.measured.error_pct,
            "artifact": self.measured.artifact,
            "non_dominated_measured": self.non_dominated_measured,
        }


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` measured and how well the predictions ranked it.

    Attributes:
        kendall_tau: Kendall's tau-b of predicted against measured latency (NaN below 2).
        mape_pct: Mean absolute percentage error of the predictions.
        still_non_dominated: Members that stay non-dominated among the verified members
            when the measured latency replaces the predicted one (same objectives and
            constraints as the study's front on ``device``).
    """

    study: str
    device: str
    runtime: str
    threads: int
    members: tuple[VerifiedMember, ...]
    kendall_tau: float
    mape_pct: float
    still_non_dominated: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "device": self.device,
            "runtime": self.runtime,
            "threads": self.threads,
            "n": len(self.members),
            # JSON has no NaN: a tau over fewer than two members is null
            "kendall_tau": None if math.isnan(self.kendall_tau) else self.kendall_tau,
            "mape_pct": None if math.isnan(self.mape_pct) else self.mape_pct,
            "still_non_dominated": self.still_non_dominated,
            "members": [m.to_dict() for m in self.members],
        }


def local_runtime(profile: DeviceProfile) -> str:
    """The runtime ``verify`` times ``profile`` with on this machine.

    Raises:
        ConfigError: The device's runtime does not run here (another board or target).
    """
    from paretoedge.export import _host_target

    if profile.runtime not in LOCAL_RUNTIMES or not _host_target(
        profile.target, profile.target_host
    ):
        raise ConfigError(
            "device",
            profile.name,
            "a device whose runtime runs on this machine (host-ort, host); for a board use "
            "paretoedge export-set, measure on the board, then calibrate and add-device",
        )
    return profile.runtime


def prediction_scores(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    """Kendall's tau-b and MAPE (%) of ``predicted`` against ``measured`` latencies."""
    from paretoedge.hardware_profiles import kendall_tau, mape

    if not predicted:
        return float("nan"), float("nan")
    return kendall_tau(predicted, measured), mape(predicted, measured)


def measured_front(
    config: Any, device: str, candidates: list[CandidateRecord], measured_ms: dict[int, float]
) -> set[int]:
    """Trial numbers of ``candidates`` that are non-dominated among themselves on
    ``device`` when each one's latency is ``measured_ms[candidate id]``."""
    from paretoedge.search import rank_candidates

    swapped = []
    for c in candidates:
        m = c.metrics_for(device)
        if m is None or c.id not in measured_ms:
            continue
        metrics = tuple(
            dataclasses.replace(x, latency_ms=measured_ms[c.id]) if x.device == device else x
            for x in c.metrics
        )
        swapped.append(dataclasses.replace(c, metrics=metrics))
    ranks = rank_candidates(config, device, swapped)
    return {n for n, r in ranks.items() if r == 0}


def _timer(runtime: str, profile: DeviceProfile, repeats: int, warmup: int):
    """A function ``(onnx files) -> (artifact name, Timing)`` for ``runtime``."""
    from paretoedge.measure import get_runtime, time_callable

    def ort(files: dict[str, Path]) -> tuple[str, Timing]:
        key = "onnx_int8" if "onnx_int8" in files else "onnx"
        run = get_runtime("onnxruntime").load(files[key], threads=profile.cores)
        return key.replace("_", "-"), time_callable(run, repeats=repeats, warmup=warmup)

    def tvm(files: dict[str, Path]) -> tuple[str, Timing]:
        from paretoedge.hardware_profiles import TvmRunner, example_inputs

        runner = TvmRunner(files["onnx"], profile)
        feeds = example_inputs(runner.prepared)
        return "tvm", time_callable(lambda: runner.run(feeds), repeats=repeats, warmup=warmup)

    if runtime == "tvm-default":
        # TVM's thread pool reads this once, when it starts
        os.environ.setdefault("TVM_NUM_THREADS", str(profile.cores))
        return tvm
    return ort


def verify_front(
    storage: Storage,
    *,
    study: str,
    device: str,
    top: int | None = None,
    repeats: int = 20,
    warmup: int = 3,
    work_dir: Path | None = None,
    on_member: Callable[[VerifiedMember], None] | None = None,
) -> VerifyReport:
    """Re-measure the front of ``study`` on ``device`` and store the measurements.

    Args:
        top: Verify only the ``top`` front members with the lowest predicted latency.
        work_dir: Where the rebuilt models are exported (a temporary folder by default).

    Raises:
        NotFoundError: No such study, or no front stored for ``device``.
        ConfigError: ``device`` is not a device of the study or does not run here; bad
            ``top``/``repeats``/``warmup``.
    """
    from paretoedge import storage as st
    from paretoedge.export import export_onnx_files, rebuild_candidate
    from paretoedge.hardware_profiles import load_profile

    if top is not None and top < 1:
        raise ConfigError("--top", top, "an integer >= 1")
    if repeats < 3:
        raise ConfigError("--repeats", repeats, "an integer >= 3")
    if warmup < 0:
        raise ConfigError("--warmup", warmup, "an integer >= 0")
    record = st.get_study(storage, name=study)
    if device not in record.devices:
        raise ConfigError("device", device, record.devices)
    profile = load_profile(device)
    runtime = local_runtime(profile)
    page = st.get_front(storage, study=study, device=device, sort="latency", limit=1000)
    members = [e.candidate for e in page.entries]
    if not members:
        raise NotFoundError(f"study {study!r} has no front on {device!r} yet")
    if top is not None:
        members = members[:top]
    timer = _timer(runtime, profile, repeats, warmup)
    measured: dict[int, MeasuredLatencyRecord] = {}
    with tempfile.TemporaryDirectory(prefix="paretoedge-verify-") as tmp:
        base = Path(work_dir) if work_dir is not None else Path(tmp)
        for cand in members:
            rebuilt = rebuild_candidate(
                storage,
                study=study,
                trial=cand.trial_number,
                device=device,
                evaluate_accuracy=False,
            )
            files = export_onnx_files(
                rebuilt.model,
                base / f"trial-{cand.trial_number:05d}",
                seq_len=rebuilt.config.seq_len,
                spec=rebuilt.spec,
                tokenizer=rebuilt.tokenizer,
                task=rebuilt.task,
            )
            artifact, timing = timer(files)
            predicted = cand.metrics_for(device)
            assert predicted is not None  # front members have metrics on their device
            measured[cand.id] = st.upsert_measured_latency(
                storage,
                candidate_id=cand.id,
                device=device,
                runtime=runtime,
                artifact=artifact,
                threads=profile.cores,
                repeats=timing.repeats,
                median_ms=timing.median_ms,
                min_ms=timing.min_ms,
                spread=timing.spread,
                predicted_ms=predicted.latency_ms,
            )
            _log.info(
                "trial %d: predicted %.3f ms, measured %.3f ms",
                cand.trial_number,
                predicted.latency_ms,
                timing.median_ms,
            )
    return build_report(storage, study=study, device=device, members=members, measured=measured)


def build_report(
    storage: Storage,
    *,
    study: str,
    device: str,
    members: list[CandidateRecord],
    measured: dict[int, MeasuredLatencyRecord],
) -> VerifyReport:
    """Scores and the measured front of ``members`` from their stored measurements."""
    from paretoedge import storage as st
    from paretoedge.search import config_of

    config = config_of(st.get_study(storage, name=study).config)
    members = [c for c in members if c.id in measured]
    keep = measured_front(
        config, device, members, {cid: m.median_ms for cid, m in measured.items()}
    )
    out = []
    for c in members:
        m = measured[c.id]
        out.append(
            VerifiedMember(
                trial=c.trial_number,
                accuracy=c.accuracy,
                size_bytes=c.size_bytes,
                predicted_ms=m.predicted_ms,
                measured=m,
                non_dominated_measured=c.trial_number in keep,
            )
        )
    tau, err = prediction_scores([m.predicted_ms for m in out], [m.measured.median_ms for m in out])
    first = next(iter(measured.values()), None)
    return VerifyReport(
        study=study,
        device=device,
        runtime=first.runtime if first else "",
        threads=first.threads if first else 0,
        members=tuple(out),
        kendall_tau=tau,
        mape_pct=err,
        still_non_dominated=len(keep),
    )
