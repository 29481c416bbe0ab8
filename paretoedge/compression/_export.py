"""ONNX export with static shapes and the metadata the hardware model reads.

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used: in torch
2.13 it is still shipped, takes a fraction of a second for these encoders (the
``torch.export`` path takes seconds and names nodes ``node_MatMul_48``), and it names
every node after its module scope (``/model/bert/encoder/layer.0/attention/self/query/
MatMul``), which is how each Linear's weight initializer is found: the graph is walked
from every MatMul/Gemm/Gather back through Transpose/DequantizeLinear to its initializer,
and that initializer is renamed ``<module>.weight`` (for MatMul it is stored transposed,
``[in, out]``).

Metadata (``metadata_props``):
  ``paretoedge.layers``: JSON list of {module, initializer, bits, scheme, sparsity,
  act_bits, op}; ``paretoedge.spec``: the spec document; ``paretoedge.batch``,
  ``paretoedge.seq_len``.

``int8_qdq=True`` writes a real int8 model: the float export is quantised by
``onnxruntime.quantization.quantize_static`` in QDQ format (per-channel int8 weights of
MatMul/Gemm, uint8 word embeddings and activations) with calibration inputs taken from real batches.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paretoedge.compression._hash import materialize
from paretoedge.compression._modules import bake
from paretoedge.compression._quant import set_act_quant_enabled
from paretoedge.compression._share import SHARE_ATTR
from paretoedge.compression._stats import LayerInfo, layer_infos
from paretoedge.errors import ConfigError

log = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OPSET = 17
_PASS_THROUGH = {"Transpose", "DequantizeLinear", "Identity", "Cast", "Reshape"}


class _Logits(nn.Module):
    """Positional (input_ids, attention_mask, token_type_ids) -> logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        kwargs: dict[str, torch.Tensor] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
        }
        if getattr(self.model.config, "type_vocab_size", 0):
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).logits


def example_inputs(model: Any, *, batch: int, seq_len: int) -> dict[str, torch.Tensor]:
    """Deterministic token ids with some padding, so the attention mask stays in the graph."""
    vocab = int(model.config.vocab_size)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (batch, seq_len), generator=gen)
    mask = torch.ones(batch, seq_len, dtype=torch.long)
    mask[:, max(1, seq_len - max(1, seq_len // 4)) :] = 0
    ids = ids * mask
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros(batch, seq_len, dtype=torch.long),
    }


def fit_inputs(
    batch: dict[str, torch.Tensor], *, batch_size: int, seq_len: int
) -> list[dict[str, Any]]:
    """Cut/pad a tokenised batch to the static [batch_size, seq_len] numpy feeds."""
    feeds = []
    ids = batch["input_ids"]
    n = ids.shape[0] - ids.shape[0] % batch_size
    for start in range(0, n, batch_size):
        feed = {}
        for name in INPUT_NAMES:
            t = batch.get(name, torch.zeros_like(ids))[start : start + batch_size, :seq_len]
            if t.shape[1] < seq_len:
                t = torch.nn.functional.pad(t, (0, seq_len - t.shape[1]))
            feed[name] = t.to(torch.int64).numpy()
        feeds.append(feed)
    return feeds


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = logging.getLogger("torch.onnx")
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)


def _module_of(node_name: str) -> str | None:
    """``/model/bert/.../query/MatMul`` (or ``.../MatMul/MatMulAddFusion`` after ORT's
    pre-processing fused the bias) -> ``bert....query``."""
    parts = node_name.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "model":
        return None
    parts = parts[1:-1]
    if parts and parts[-1].startswith(("MatMul", "Gemm", "Gather")):
        parts = parts[:-1]
    return ".".join(parts) or None


def _resolve_initializers(graph: Any) -> dict[str, tuple[str, str]]:
    """Module name -> (initializer name, op) for every MatMul/Gemm/Gather fed by a weight."""
    inits = {i.name for i in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}

    def trace(name: str) -> str | None:
        seen = 0
        while name not in inits and seen < 8:
            node = producers.get(name)
            if node is None or node.op_type not in _PASS_THROUGH or not node.input:
                return None
            name = node.input[0]
            seen += 1
        return name if name in inits else None

    found: dict[str, tuple[str, str]] = {}
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Gather"):
            continue
        module = _module_of(node.name)
        if module is None:
            continue
        candidates = node.input[:1] if node.op_type == "Gather" else node.input[1:2]
        for cand in candidates:
            init = trace(cand)
            if init is not None:
                found.setdefault(module, (init, node.op_type))
    return found


def _rename_weights(graph: Any, modules: Sequence[str]) -> None:
    """Rename each Linear's weight initializer to ``<module>.weight`` (when unshared)."""
    found = _resolve_initializers(graph)
    uses: dict[str, int] = {}
    for node in graph.node:
        for i in node.input:
            uses[i] = uses.get(i, 0) + 1
    existing = {i.name for i in graph.initializer}
    renames = {}
    for module in modules:
        if module not in found:
            continue
        old = found[module][0]
        new = f"{module}.weight"
        if old == new or uses.get(old, 0) != 1 or new in existing:
            continue
        renames[old] = new
    for init in graph.initializer:
        if init.name in renames:
            init.name = renames[init.name]
    for node in graph.node:
        for k, i in enumerate(node.input):
            if i in renames:
                node.input[k] = renames[i]


def _merge_identical_initializers(graph: Any) -> int:
    """Keep one initializer per distinct content; returns how many were dropped.

    Used for models with cross-layer sharing: the exporter's constant folding may give
    every block its own (transposed) copy of a tied weight; merged, every block's MatMul
    reads one initializer, as a runtime would store it.
    """
    import hashlib

    from onnx import numpy_helper

    first: dict[tuple[int, tuple[int, ...], str], str] = {}
    renames: dict[str, str] = {}
    for init in graph.initializer:
        digest = hashlib.sha256(numpy_helper.to_array(init).tobytes()).hexdigest()
        key = (init.data_type, tuple(init.dims), digest)
        if key in first:
            renames[init.name] = first[key]
        else:
            first[key] = init.name
    if not renames:
        return 0
    kept = [i for i in graph.initializer if i.name not in renames]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in renames:
                node.input[k] = renames[name]
    return len(renames)


def weight_facts(
    model: nn.Module, *, layers: Sequence[LayerInfo] | None = None
) -> list[dict[str, Any]]:
    """What the hardware model reads about each quantisable weight of ``model`` (a float
    export's ``paretoedge.layers`` entries without their ONNX names): module, bits, scheme,
    sparsity and activation bits. ``layers``: the model's :func:`layer_infos` when they
    were measured already (``ModelStats.layers``), so its weights are not read again.

    Why apart from the export: two models that differ only in these facts (a bit-width or
    a sparsity variant of one architecture) export the same graph, so the cost of the
    second needs its facts, not a new export
    (:func:`paretoedge.hardware_profiles.with_weight_facts`).
    """
    return [
        {
            "module": info.module,
            "bits": info.bits,
            "scheme": info.scheme,
            "sparsity": round(info.sparsity, 6),
            "act_bits": info.act_bits,
        }
        for info in (layer_infos(model) if layers is None else layers)
    ]


def _write_metadata(
    onnx_model: Any, model: nn.Module, *, spec_json: str, batch: int, seq_len: int, int8: bool
) -> None:
    import onnx

    found = _resolve_initializers(onnx_model.graph)
    producers = {out: n for n in onnx_model.graph.node for out in n.output}
    dq_inits = {n.input[0] for n in producers.values() if n.op_type == "DequantizeLinear"}
    layers = []
    for facts in weight_facts(model):
        init, op = found.get(facts["module"], (None, None))
        if int8 and init in dq_inits:
            facts |= {"bits": 8, "scheme": "uniform", "act_bits": 8 if op != "Gather" else None}
        layers.append({"module": facts["module"], "initializer": init, "op": op, **facts})
    props = {
        "paretoedge.layers": json.dumps(layers),
        "paretoedge.spec": spec_json,
        "paretoedge.batch": str(batch),
        "paretoedge.seq_len": str(seq_len),
    }
    kept = [p for p in onnx_model.metadata_props if p.key not in props]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(kept)
    for key, value in props.items():
        onnx_model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


def _export_float(model: nn.Module, path: Path, *, batch: int, seq_len: int) -> None:
    import onnx

    wrapper = _Logits(model).eval()
    inputs = example_inputs(model, batch=batch, seq_len=seq_len)
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            wrapper,
            tuple(inputs[n] for n in INPUT_NAMES),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=["logits"],
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    onnx_model = onnx.load(str(path))
    if getattr(model, SHARE_ATTR, None):
        _merge_identical_initializers(onnx_model.graph)
    modules = [name for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)]
    _rename_weights(onnx_model.graph, modules)
    onnx.save(onnx_model, str(path))


class _Reader:
    """onnxruntime CalibrationDataReader over pre-cut numpy feeds."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._it, None)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    seq_len: int = 64,
    batch: int = 1,
    int8_qdq: bool = False,
    calibration: Sequence[dict[str, torch.Tensor]] | None = None,
    spec: Any = None,
) -> Path:
    """Write ``model`` as ONNX with static [batch, seq_len] int64 inputs and logits output.

    The model is copied and its masks/fake quantisers baked; the original is untouched.
    Activation quantisers calibrated by :func:`compress` appear as QuantizeLinear/
    DequantizeLinear pairs in the float export.

    Args:
        int8_qdq: Write a real int8 QDQ model instead (see the module docstring).
        calibration: Tokenised batches (``make_batches`` output) for ``int8_qdq``.
        spec: The CompressionSpec to record; default: the one :func:`compress` attached.

    Raises:
        ConfigError: bad shapes, or ``int8_qdq`` without calibration batches.
    """
    import onnx

    for name, value in (("seq_len", seq_len), ("batch", batch)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"export.{name}", value, "an integer >= 1")
    max_pos = getattr(model.config, "max_position_embeddings", seq_len)
    if seq_len > max_pos:
        raise ConfigError("export.seq_len", seq_len, f"an integer in [1, {max_pos}]")
    if int8_qdq and not calibration:
        raise ConfigError("export.calibration", None, "tokenised batches for the int8 QDQ export")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = spec if spec is not None else getattr(model, "paretoedge_spec", None)
    spec_json = spec.to_json() if spec is not None else json.dumps(None)
    # hashed layers run as ordinary MatMuls over their materialised weights
    work = materialize(bake(copy.deepcopy(model))).eval()
    if not int8_qdq:
        _export_float(work, path, batch=batch, seq_len=seq_len)
        onnx_model = onnx.load(str(path))
        _write_metadata(
            onnx_model, work, spec_json=spec_json, batch=batch, seq_len=seq_len, int8=False
        )
        onnx.save(onnx_model, str(path))
        return path

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    set_act_quant_enabled(work, False)
    feeds: list[dict[str, Any]] = []
    for b in calibration or ():
        feeds.extend(fit_inputs(b, batch_size=batch, seq_len=seq_len))
    if not feeds:
        raise ConfigError("export.calibration", len(calibration or ()), f"batches of >= {batch}")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        pre = Path(tmp) / "pre.onnx"
        _export_float(work, fp32, batch=batch, seq_len=seq_len)
        with _quiet():
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(path),
                _Reader(feeds),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm", "Gather"],
            )
    onnx_model = onnx.load(str(path))
    _write_metadata(onnx_model, work, spec_json=spec_json, batch=batch, seq_len=seq_len, int8=True)
    onnx.save(onnx_model, str(path))
    return path
