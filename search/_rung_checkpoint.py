"""A candidate's recovery kept between early-stopping rungs, in the study's artifacts.

Why: with early stopping a candidate is measured after a few recovery steps and trained on
only while it stays promising (:mod:`paretoedge.search._multifidelity`). The evaluator
compresses it once and continues one recovery run from rung to rung
(:class:`~paretoedge.compression.StagedCompression`); after each rung it writes that run's
state here with the evaluations measured so far. A process killed mid-candidate leaves the
file behind; the retry of the trial (same parameters, a new trial number, possibly another
worker sharing the artifacts directory) finds it by the candidate's spec, reports the rungs
already measured without measuring them again and trains on from the last one (it compresses
the candidate again, every step before the recovery, seeded as before, and loads the run's
state into it: no recovery step is repeated). The file is removed once the candidate
completes, is stopped or fails, so a finished study keeps none; while it lives it holds the
weights and two AdamW moments (about 3x the float32 model).

A checkpoint holds tensors and plain values only and is read with ``weights_only=True``;
one that cannot be read (another torch, a foreign file) is ignored and the candidate
starts again. Writes go to a temporary file renamed into place, so a kill during a write
leaves the previous checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.objectives import DeviceMetrics, Evaluation

if TYPE_CHECKING:
    from paretoedge.compression import CompressionSpec

_log = logging.getLogger(__name__)

#: Bumped when the file's layout changes; other versions are ignored.
FORMAT = 1


@dataclass(frozen=True)
class SavedRungs:
    """What a checkpoint gives back.

    Attributes:
        state: The recovery run's state (:meth:`StagedCompression.state_dict`).
        evaluations: Rung (recovery steps) -> the evaluation measured there.
    """

    state: dict[str, Any]
    evaluations: Mapping[int, Evaluation]


@dataclass(frozen=True)
class RungCheckpoint:
    """The checkpoint file of one candidate of one study.

    Attributes:
        path: ``<directory>/<digest>.pt``, the digest of ``key``.
        key: The candidate's spec and the study's config as one canonical text (checked
            again on load: a file of another candidate or study is ignored).
    """

    path: Path
    key: str

    @classmethod
    def of(
        cls, directory: Path, spec: CompressionSpec, study: Mapping[str, Any] | None = None
    ) -> RungCheckpoint:
        """The checkpoint of ``spec`` in ``directory`` (the study's artifacts).

        Args:
            study: The study's config (``StudyConfig.to_dict()``): the same spec in a study
                with another model, seed or data is another candidate.
        """
        key = json.dumps({"spec": spec.to_dict(), "study": study}, sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        return cls(path=Path(directory) / f"{digest}.pt", key=key)

    def load(self) -> SavedRungs | None:
        """The saved state, or None when there is none usable (see the module docstring)."""
        import torch

        if not self.path.is_file():
            return None
        try:
            raw = torch.load(self.path, map_location="cpu", weights_only=True)
            if raw.get("format") != FORMAT or raw.get("key") != self.key:
                raise ValueError("a checkpoint of another candidate, study or format")
            evaluations = {
                int(k): _evaluation(v) for k, v in json.loads(raw["evaluations"]).items()
            }
            return SavedRungs(state=raw["state"], evaluations=evaluations)
        except Exception as exc:  # a stale or foreign file costs a restart, not the trial
            _log.warning("ignoring rung checkpoint %s: %s", self.path, exc)
            return None

    def save(self, state: Mapping[str, Any], evaluations: Mapping[int, Evaluation]) -> None:
        """Write ``state`` and the rungs measured so far (atomically)."""
        import torch

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        doc = {
            "format": FORMAT,
            "key": self.key,
            "state": dict(state),
            "evaluations": json.dumps(
                {str(k): dataclasses.asdict(v) for k, v in evaluations.items()}
            ),
        }
        torch.save(doc, tmp)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """Delete the checkpoint (no error when there is none)."""
        self.path.unlink(missing_ok=True)


def _evaluation(doc: Mapping[str, Any]) -> Evaluation:
    devices = {
        name: DeviceMetrics(**{**m, "violations": tuple(m.get("violations", ()))})
        for name, m in doc["devices"].items()
    }
    return Evaluation(
        accuracy=float(doc["accuracy"]),
        size_bytes=int(doc["size_bytes"]),
        parameters=int(doc["parameters"]),
        sparsity=float(doc["sparsity"]),
        devices=devices,
    )
