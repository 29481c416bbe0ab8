"""Run an exported file in its own runtime and compare it with the PyTorch candidate.

An export is only worth shipping if the file does what the searched model does. Each
exported file is run on the test split in the runtime the device uses (onnxruntime,
ExecuTorch's Python runtime, ...) and compared example by example with the PyTorch
candidate (the rebuilt model, as the search scored it):

* float files must agree on the predicted class for at least :data:`MIN_AGREEMENT` of
  the examples;
* int8 files change the arithmetic, so they are held to accuracy instead: within
  :data:`INT8_ACCURACY_TOLERANCE` (one point) of the candidate's test accuracy.

The result is a :class:`RuntimeCheck`, recorded in the export result and the model card.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from paretoedge.tasks import Example

MIN_AGREEMENT = 0.99
INT8_ACCURACY_TOLERANCE = 0.01

#: one feed (input name -> int64 array [1, seq_len]) -> logits [1, labels]
Runner = Callable[[dict[str, "np.ndarray"]], "np.ndarray"]


@dataclass(frozen=True)
class RuntimeCheck:
    """One exported file run in its runtime on the test split.

    Attributes:
        file: File name inside the export directory.
        runtime: ``onnxruntime``, ``executorch`` or ``tflite-micro``.
        int8: Whether the file computes in int8 (held to accuracy, not agreement).
        examples: Test examples run.
        agreement: Share of examples whose predicted class equals the PyTorch candidate's.
        accuracy: Test accuracy of the file; ``reference_accuracy`` that of the candidate.
        max_abs_logit_diff: Largest absolute logit difference to the candidate.
    """

    file: str
    runtime: str
    int8: bool
    examples: int
    agreement: float
    accuracy: float
    reference_accuracy: float
    max_abs_logit_diff: float

    @property
    def passed(self) -> bool:
        """The bar of the module doc: agreement for float files, accuracy for int8."""
        if self.int8:
            return abs(self.accuracy - self.reference_accuracy) <= INT8_ACCURACY_TOLERANCE + 1e-12
        return self.agreement >= MIN_AGREEMENT

    @property
    def criterion(self) -> str:
        if self.int8:
            return f"|accuracy - PyTorch| <= {INT8_ACCURACY_TOLERANCE:.2f}"
        return f"agreement >= {MIN_AGREEMENT:.2f}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "runtime": self.runtime,
            "int8": self.int8,
            "examples": self.examples,
            "agreement": self.agreement,
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "criterion": self.criterion,
            "passed": self.passed,
        }


def example_feeds(
    tokenizer: Any, examples: Sequence[Example], seq_len: int
) -> list[dict[str, np.ndarray]]:
    """One static-shape feed per example: int64 ``[1, seq_len]`` for each of the inputs."""
    import numpy as np

    from paretoedge.compression._export import INPUT_NAMES

    feeds = []
    for e in examples:
        enc = tokenizer(
            [e.text], padding="max_length", truncation=True, max_length=seq_len, return_tensors="np"
        )
        feed = {}
        for name in INPUT_NAMES:
            value = enc.get(name)
            feed[name] = (
                np.zeros((1, seq_len), dtype=np.int64)
                if value is None
                else np.asarray(value, dtype=np.int64)
            )
        feeds.append(feed)
    return feeds


def torch_logits(model: Any, feeds: Sequence[dict[str, np.ndarray]]) -> np.ndarray:
    """Logits of the PyTorch candidate on ``feeds`` (eval mode, no gradients)."""
    import numpy as np
    import torch

    from paretoedge.compression._export import INPUT_NAMES, _Logits

    wrapper = _Logits(model).eval()
    out = []
    with torch.no_grad():
        for feed in feeds:
            args = tuple(torch.from_numpy(feed[n]) for n in INPUT_NAMES)
            out.append(wrapper(*args).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def onnx_runner(path: Any) -> Runner:
    """An onnxruntime session (CPU, one thread) as a :data:`Runner`."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def run(feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(sess.run(["logits"], {k: v for k, v in feed.items() if k in names})[0])

    return run


def check_runtime(
    *,
    file: str,
    runtime: str,
    int8: bool,
    run: Runner,
    feeds: Sequence[dict[str, np.ndarray]],
    labels: Sequence[int],
    reference: np.ndarray,
) -> RuntimeCheck:
    """Run ``run`` on every feed and compare with ``reference`` (the candidate's logits).

    Raises:
        ValueError: ``feeds``, ``labels`` and ``reference`` differ in length, or are empty.
    """
    import numpy as np

    n = len(feeds)
    if n == 0 or len(labels) != n or len(reference) != n:
        raise ValueError(f"{n} feeds, {len(labels)} labels, {len(reference)} reference rows")
    logits = np.concatenate([np.asarray(run(f), dtype=np.float32).reshape(1, -1) for f in feeds])
    pred = logits.argmax(-1)
    ref_pred = reference.argmax(-1)
    gold = np.asarray(labels)
    return RuntimeCheck(
        file=file,
        runtime=runtime,
        int8=int8,
        examples=n,
        agreement=float((pred == ref_pred).mean()),
        accuracy=float((pred == gold).mean()),
        reference_accuracy=float((ref_pred == gold).mean()),
        max_abs_logit_diff=float(np.abs(logits - reference).max()),
    )
