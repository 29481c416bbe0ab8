"""The cache of fine-tuned teachers.

The fine-tuned teacher of a (model, task, seed, epochs) is built once by
:func:`get_teacher` and cached under ``get_settings().teacher_cache``. The cache entry is
written to a temporary directory and renamed into place, and a file lock serialises
processes building the same entry, so concurrent or killed runs never leave a half-written
teacher behind.

Kept apart from :mod:`paretoedge.training` (which it uses to fine-tune and evaluate) so that
the training loops and the compression transforms never import the cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, DataError
from paretoedge.training import evaluate, finetune

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

#: Hyper-parameters of the cached teachers (part of the cache key).
TEACHER_LR = 1e-4
TEACHER_BATCH_SIZE = 32
TEACHER_MAX_LENGTH = 64
_TEACHER_FORMAT = 1
_TEACHER_INFO = "paretoedge_teacher.json"


@dataclass(frozen=True)
class TeacherInfo:
    """What is recorded next to a cached teacher (``paretoedge_teacher.json``).

    Attributes:
        model, task, seed, epochs: What the teacher was fine-tuned from and how.
        path: The cache directory holding the model and its tokenizer.
        num_labels: Classes of its head.
        test_accuracy, validation_accuracy: Measured after fine-tuning.
        train_wall_s: Seconds the fine-tuning and evaluation took when it was built.
        reused: True when this call loaded the cache instead of fine-tuning.
    """

    model: str
    task: str
    seed: int
    epochs: float
    path: Path
    num_labels: int
    test_accuracy: float
    validation_accuracy: float
    train_wall_s: float
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``path`` as a string)."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "x"


def _fingerprint(name: str) -> str:
    """What identifies a model or task argument: the alias, or a file/directory's content."""
    path = Path(name).expanduser()
    if not path.exists() or name in ("minilm", "tiny-bert", "sentiment"):
        return name
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return f"{path.resolve()}:{digest.hexdigest()}"


def teacher_key(model: str, task: str, *, seed: int = 0, epochs: float = 1.0) -> str:
    """The cache directory name of a teacher: readable prefix plus a hash of everything
    that determines its weights (model and task content, seed, epochs, hyper-parameters)."""
    payload = json.dumps(
        [
            _TEACHER_FORMAT,
            _fingerprint(model),
            _fingerprint(task),
            seed,
            float(epochs),
            TEACHER_LR,
            TEACHER_BATCH_SIZE,
            TEACHER_MAX_LENGTH,
        ]
    )
    short = hashlib.sha256(payload.encode()).hexdigest()[:10]
    stem_model = _slug(Path(model).name if os.sep in model else model)
    stem_task = _slug(Path(task).stem if os.sep in task or "." in task else task)
    return f"{stem_model}--{stem_task}--seed{seed}--ep{float(epochs):g}--{short}"


def _read_info(path: Path, reused: bool) -> TeacherInfo | None:
    try:
        data = json.loads((path / _TEACHER_INFO).read_text())
        data["path"] = path
        data["reused"] = reused
        return TeacherInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def ensure_teacher(
    model: str,
    task: str,
    *,
    seed: int = 0,
    epochs: float = 1.0,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, TeacherInfo]:
    """:func:`get_teacher` that also returns the recorded :class:`TeacherInfo`."""
    from paretoedge.models import load_model, load_tokenizer
    from paretoedge.settings import get_settings
    from paretoedge.tasks import load_task

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", seed, "an integer >= 0")
    if isinstance(epochs, bool) or not isinstance(epochs, int | float) or not epochs > 0:
        raise ConfigError("epochs", epochs, "a number > 0")
    data = load_task(task)
    root = get_settings().teacher_cache
    root.mkdir(parents=True, exist_ok=True)
    key = teacher_key(model, task, seed=seed, epochs=epochs)
    final = root / key

    with open(root / f"{key}.lock", "w") as lock:
        # Another process building the same teacher holds the lock; wait for it and reuse.
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = _read_info(final, reused=True) if final.is_dir() else None
        if info is None:
            if final.exists():
                log.warning("teacher cache %s is incomplete; rebuilding it", final)
                shutil.rmtree(final)
            _build_teacher(
                model, task, data, seed=seed, epochs=epochs, final=final, progress=progress
            )
            info = _read_info(final, reused=False)
            if info is None:
                raise DataError(f"{final}: teacher record could not be read back")
        else:
            log.info("reusing cached teacher %s", final)
    teacher = load_model(str(final), num_labels=info.num_labels, seed=seed)
    tokenizer = load_tokenizer(str(final))
    return teacher, tokenizer, info


def _build_teacher(
    model: str,
    task: str,
    data: Any,
    *,
    seed: int,
    epochs: float,
    final: Path,
    progress: bool,
) -> None:
    from paretoedge.models import load_model, load_tokenizer, quiet_transformers

    start = time.perf_counter()
    net = load_model(model, num_labels=data.num_labels, seed=seed)
    tokenizer = load_tokenizer(model)
    finetune(
        net,
        tokenizer,
        data.train,
        epochs=epochs,
        lr=TEACHER_LR,
        batch_size=TEACHER_BATCH_SIZE,
        max_length=TEACHER_MAX_LENGTH,
        seed=seed,
        progress=progress,
    )
    validation = evaluate(
        net, tokenizer, data.validation, max_length=TEACHER_MAX_LENGTH, progress=progress
    )
    test = evaluate(net, tokenizer, data.test, max_length=TEACHER_MAX_LENGTH, progress=progress)
    wall = time.perf_counter() - start
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        with quiet_transformers():
            net.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        record = {
            "model": model,
            "task": task,
            "seed": seed,
            "epochs": float(epochs),
            "num_labels": data.num_labels,
            "test_accuracy": test,
            "validation_accuracy": validation,
            "train_wall_s": round(wall, 2),
        }
        (tmp / _TEACHER_INFO).write_text(json.dumps(record, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared by design
        # Atomic on one filesystem: readers see either no entry or a complete one.
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("cached teacher %s: test accuracy %.4f (%.0f s)", final, test, wall)


def get_teacher(
    model: str,
    task: str,
    *,
    seed: int = 0,
    epochs: float = 1.0,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The teacher ``model`` fine-tuned on ``task``, built once and then loaded from cache.

    The first call fine-tunes (lr :data:`TEACHER_LR`, batch :data:`TEACHER_BATCH_SIZE`)
    for ``epochs`` on the train split, measures validation and test accuracy, and saves
    model, tokenizer and ``paretoedge_teacher.json`` under
    ``get_settings().teacher_cache / teacher_key(...)``. Returns the model in eval mode.

    Raises:
        UnknownNameError, ConfigError, DataError: from the model, task or arguments.
    """
    teacher, tokenizer, _ = ensure_teacher(model, task, seed=seed, epochs=epochs, progress=progress)
    return teacher, tokenizer


def teacher_info(
    model: str, task: str, *, seed: int = 0, epochs: float = 1.0
) -> TeacherInfo | None:
    """The record of a cached teacher, or None if it has not been built."""
    from paretoedge.settings import get_settings

    path = get_settings().teacher_cache / teacher_key(model, task, seed=seed, epochs=epochs)
    return _read_info(path, reused=True) if path.is_dir() else None


__all__ = [
    "TEACHER_BATCH_SIZE",
    "TEACHER_LR",
    "TEACHER_MAX_LENGTH",
    "TeacherInfo",
    "ensure_teacher",
    "get_teacher",
    "teacher_info",
    "teacher_key",
]
