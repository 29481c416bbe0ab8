"""Accuracy and device metrics of an early-exit candidate.

An early-exit model answers some samples after L_1 layers, some after L_2, ..., the rest at
the final classifier. Its validation accuracy is measured with the exit policy on
(:func:`paretoedge.compression.exit_inference`), which also gives the share f_k of samples
leaving at each exit. On every device the hardware model costs each exit's prefix graph
(:func:`paretoedge.compression.export_exits`: the first L_k layers plus exit heads 1..k, so a
sample leaving at k pays for the heads it tried before), and the candidate's latency is the
*expected* latency sum_k f_k * t_k over the validation set's exit distribution; energy
likewise. Memory, flash and feasibility are the final prefix's (it holds every weight). The
worst case (every exit declines: the final prefix) is kept as ``latency_worst_ms``.

Everything is also written to ``<stem>.exits.json`` beside the ONNX file (exit layers,
distribution, threshold, per-device per-exit latencies, expected and worst case), which is
how a device added later (``add-device``) is scored the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from paretoedge.objectives import DeviceMetrics

_log = logging.getLogger(__name__)


def sidecar_path(onnx_path: Path) -> Path:
    """The ``<stem>.exits.json`` file beside an exported early-exit model."""
    return onnx_path.with_name(f"{onnx_path.stem}.exits.json")


def expected_metrics(
    per_exit: Sequence[DeviceMetrics], fractions: Sequence[float]
) -> DeviceMetrics:
    """Expected latency/energy over the exit distribution; memory and feasibility of the
    last (full) prefix; ``latency_worst_ms`` = the last prefix's latency."""
    if len(per_exit) != len(fractions) or not per_exit:
        raise ValueError("one metrics entry per exit is needed")
    final = per_exit[-1]
    latency = sum(f * m.latency_ms for f, m in zip(fractions, per_exit, strict=True))
    energies = [m.energy_mj for m in per_exit]
    energy = (
        None
        if any(e is None for e in energies)
        else sum(f * float(e or 0.0) for f, e in zip(fractions, energies, strict=True))
    )
    return replace(final, latency_ms=latency, energy_mj=energy, latency_worst_ms=final.latency_ms)


def score_exits(
    paths: Mapping[int, Path],
    fractions: Sequence[float],
    devices: Sequence[str],
) -> tuple[dict[str, DeviceMetrics], dict[str, list[float]]]:
    """(expected metrics per device, per-exit prefix latency per device)."""
    from paretoedge.search._evaluator import predict_devices

    layers = sorted(paths)
    per_device: dict[str, list[DeviceMetrics]] = {d: [] for d in devices}
    for n in layers:
        for d, m in predict_devices(paths[n], devices, exits=False).items():
            per_device[d].append(m)
    metrics = {d: expected_metrics(ms, fractions) for d, ms in per_device.items()}
    latencies = {d: [m.latency_ms for m in ms] for d, ms in per_device.items()}
    return metrics, latencies


def write_sidecar(
    onnx_path: Path,
    outcome: Any,
    paths: Mapping[int, Path],
    latencies: Mapping[str, Sequence[float]],
    metrics: Mapping[str, DeviceMetrics],
) -> Path:
    doc = {
        "format": 1,
        "exit": outcome.to_dict(),
        "prefixes": {str(n): p.name for n, p in sorted(paths.items())},
        "devices": {
            d: {
                "prefix_latency_ms": list(latencies[d]),
                "expected_latency_ms": metrics[d].latency_ms,
                "worst_latency_ms": metrics[d].latency_worst_ms,
            }
            for d in metrics
        },
    }
    path = sidecar_path(onnx_path)
    path.write_text(json.dumps(doc, indent=1))
    return path


def rescore_from_sidecar(onnx_path: Path, devices: Sequence[str]) -> dict[str, DeviceMetrics]:
    """Expected metrics of an exported early-exit model on (new) devices, from its sidecar."""
    doc = json.loads(sidecar_path(onnx_path).read_text())
    paths = {int(n): onnx_path.with_name(name) for n, name in doc["prefixes"].items()}
    metrics, latencies = score_exits(paths, doc["exit"]["fractions"], devices)
    for d in devices:
        doc["devices"][d] = {
            "prefix_latency_ms": latencies[d],
            "expected_latency_ms": metrics[d].latency_ms,
            "worst_latency_ms": metrics[d].latency_worst_ms,
        }
    sidecar_path(onnx_path).write_text(json.dumps(doc, indent=1))
    return metrics


def measure_exit_candidate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    *,
    seq_len: int,
    onnx_path: Path | None,
    devices: Sequence[str],
) -> tuple[float, dict[str, DeviceMetrics] | None]:
    """(accuracy with exits on, expected device metrics or None when not exporting)."""
    from paretoedge.compression import exit_inference, export_exits
    from paretoedge.training import make_batches

    batches = make_batches(tokenizer, examples, batch_size=64, max_length=seq_len)
    outcome = exit_inference(model, batches)
    _log.info("exits %s: %s", outcome.layers, [round(f, 3) for f in outcome.fractions])
    if onnx_path is None:
        return outcome.accuracy, None
    paths = export_exits(model, onnx_path, seq_len=seq_len)
    metrics, latencies = score_exits(paths, outcome.fractions, devices)
    write_sidecar(onnx_path, outcome, paths, latencies, metrics)
    return outcome.accuracy, metrics


def export_exit_files(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Any],
    onnx_path: Path,
    device: str,
    *,
    seq_len: int,
) -> tuple[dict[int, Path], DeviceMetrics, Any]:
    """For ``paretoedge export``: the prefix files beside ``onnx_path``, the expected
    metrics on ``device`` (exit distribution re-measured on ``examples``) and the outcome."""
    from paretoedge.compression import exit_inference, export_exits
    from paretoedge.training import make_batches

    batches = make_batches(tokenizer, examples, batch_size=64, max_length=seq_len)
    outcome = exit_inference(model, batches)
    paths = export_exits(model, onnx_path, seq_len=seq_len)
    metrics, latencies = score_exits(paths, outcome.fractions, [device])
    write_sidecar(onnx_path, outcome, paths, latencies, metrics)
    return paths, metrics[device], outcome


def exit_card_section(paths: Mapping[int, Path], outcome: Any, metrics: DeviceMetrics) -> str:
    """The model card's section on running the exit cascade."""
    rows = "\n".join(
        f"| `{paths[n].name}` | after {n} layers | {f:.3f} |"
        for n, f in zip(outcome.layers, outcome.fractions, strict=True)
    )
    return f"""
## Early exit

This model answers from the first exit whose top softmax probability is at least
**{outcome.threshold:g}**. Each prefix file computes the encoder up to its exit and the exit
heads before it; run them in order and stop at the first confident `logits`:

| file | exit | share of validation samples |
|---|---|---|
{rows}

```python
import numpy as np, onnxruntime as ort
files = [{", ".join(repr(paths[n].name) for n in outcome.layers)}]
sessions = [ort.InferenceSession(f) for f in files]
for i, s in enumerate(sessions):
    logits = s.run(["logits"], feed)[0]          # feed: input_ids, attention_mask, token_type_ids
    p = np.exp(logits - logits.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
    if p.max() >= {outcome.threshold:g} or i == len(sessions) - 1:
        break
```

(A runtime that keeps state between prefixes would resume from the last hidden state
instead of recomputing the first layers; these files are self-contained, so the hardware
model costs a sample leaving at exit k as the k-th prefix.) The latency in the metrics above
is the expected latency over the exit distribution; the worst case (no exit taken) is
{metrics.latency_worst_ms or 0.0:.3f} ms. `exits.json` beside the files records both.
"""
