"""Composition of the transforms, and saving/loading compressed models.

:func:`compress` walks the steps registered in
:data:`~paretoedge.compression._transform.TRANSFORMS` in their canonical order (see
:mod:`paretoedge.compression._transform` for the order and for how to add a transform),
whatever order the spec's keys came in, and calls the handler of every step whose section
the spec sets. After the last step ordered before ``BAKE_ORDER`` the masks and quantisers
are baked into the weights.

Shape-changing steps come first (a mask or a quantiser of a matrix that is later sliced or
factored would be lost), pruning precedes quantisation (the quantisers see the zeros and
keep them exact), and the fine-tune sits between the two kinds of quantisation so QAT
learns through the quantisers while PTQ quantises the recovered weights.

A compressed model may have per-layer head counts, FFN widths and factored layers that
its HF ``config.json`` cannot express. :func:`save_compressed` therefore writes, next to
``save_pretrained``'s files, ``paretoedge_structure.json`` (every Linear/Embedding shape,
factored layers, head counts, quantisation records, activation quantisers and the groups
of blocks sharing weights);
:func:`load_compressed` rebuilds that skeleton from the config and loads the weights.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from paretoedge.compression import _arch
from paretoedge.compression._config import CompressionSpec
from paretoedge.compression._context import CompressContext
from paretoedge.compression._hidden import BUILT_HIDDEN_ATTR, shrink_hidden
from paretoedge.compression._modules import (
    HashedLinear,
    LowRankEmbedding,
    LowRankLinear,
    attach_act_quantizer,
    bake,
)
from paretoedge.compression._rebuild import is_rebuilt, needs_rebuild, rebuild_structure
from paretoedge.compression._share import SHARE_ATTR, tie, untie
from paretoedge.compression._stats import ModelStats, model_stats
from paretoedge.compression._transform import BAKE_ORDER, ordered_steps, step_names
from paretoedge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from paretoedge.tasks import TaskData

log = logging.getLogger(__name__)

STRUCTURE_FILE = "paretoedge_structure.json"
SPEC_FILE = "paretoedge_spec.json"

#: Every step name ``CompressionResult.applied`` can hold, in canonical order.
STEPS = step_names()


@dataclass(frozen=True)
class CompressionResult:
    """What :func:`compress` returns.

    Attributes:
        model: The compressed model (eval mode; masks and quantisers baked in).
        spec: The spec applied.
        stats: Its measured size.
        wall_s: Seconds the compression (including training) took.
        applied: The steps that ran, in order (names from :data:`STEPS`).
    """

    model: Any
    spec: CompressionSpec
    stats: ModelStats
    wall_s: float
    applied: tuple[str, ...] = ()


def compress(
    model: PreTrainedModel,
    spec: CompressionSpec,
    *,
    teacher: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    task: TaskData | None = None,
    seed: int = 0,
    progress: bool = False,
    calibration: Sequence[dict[str, torch.Tensor]] | None = None,
) -> CompressionResult:
    """Apply ``spec`` to a copy of ``model`` in the canonical order (module docstring).

    Args:
        model: A sequence-classification model (not modified).
        teacher: Teacher of distillation and recovery; default: a copy of ``model``.
        tokenizer, task: Needed by distill, recovery, gradient head importance and
            activation calibration (which uses the first train examples).
        seed: Seeds every random choice; the same spec and seed give the same weights.
        calibration: Tokenised batches overriding the task's for activation calibration.

    Raises:
        ConfigError: a transform that needs data without ``task``/``tokenizer`` (checked
            for every section before any step runs), or a spec that does not fit the
            model (e.g. more distill layers than it has).
    """
    if not isinstance(spec, CompressionSpec):
        raise ConfigError("spec", type(spec).__name__, "a CompressionSpec")
    start = time.perf_counter()
    applied: list[str] = []
    steps = [(t, s) for t, s in ordered_steps() if getattr(spec, t.section) is not None]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ctx = CompressContext(
            model=copy.deepcopy(model).eval(),
            spec=spec,
            teacher=teacher if teacher is not None else model,
            tokenizer=tokenizer,
            task=task,
            seed=seed,
            progress=progress,
            calibration=calibration,
        )
        checked: set[str] = set()
        for transform, _ in steps:
            check = transform.resolve_check()
            if check is not None and transform.section not in checked:
                check(ctx, getattr(spec, transform.section))
            checked.add(transform.section)
        baked = False
        for transform, step in steps:
            if step.order > BAKE_ORDER and not baked:
                bake(ctx.model)
                baked = True
            if step.resolve()(ctx, getattr(spec, transform.section)):
                applied.append(step.name)
                log.debug("applied %s", step.name)
        if not baked:
            bake(ctx.model)
        work = ctx.model
        work.eval()
        work.paretoedge_spec = spec
    wall = time.perf_counter() - start
    return CompressionResult(
        model=work, spec=spec, stats=model_stats(work), wall_s=wall, applied=tuple(applied)
    )


def structure_of(model: nn.Module) -> dict[str, Any]:
    """The architecture facts a config.json cannot hold (see the module docstring)."""
    modules: dict[str, Any] = {}
    for name, m in model.named_modules():
        if isinstance(m, LowRankLinear):
            modules[name] = {
                "type": "lowrank_linear",
                "in": m.in_features,
                "out": m.out_features,
                "rank": m.rank,
                "bias": m.up.bias is not None,
            }
        elif isinstance(m, LowRankEmbedding):
            modules[name] = {
                "type": "lowrank_embedding",
                "num": m.num_embeddings,
                "dim": m.embedding_dim,
                "rank": m.rank,
                "padding_idx": m.padding_idx,
            }
        elif isinstance(m, HashedLinear):
            modules[name] = {
                "type": "hashed_linear",
                "in": m.in_features,
                "out": m.out_features,
                "size": m.size,
                "seed": m.seed,
                "bias": m.bias is not None,
            }
        elif isinstance(m, nn.Linear) and not name.endswith((".down", ".up", ".proj")):
            modules[name] = {
                "type": "linear",
                "in": m.in_features,
                "out": m.out_features,
                "bias": m.bias is not None,
            }
    heads = {}
    for block in _arch.blocks(model):
        heads[block.attention] = _arch.get_heads(model, block)[0]
    quant = {
        name: dict(m.paretoedge_quant)
        for name, m in model.named_modules()
        if getattr(m, "paretoedge_quant", None)
    }
    act = [name for name, m in model.named_modules() if hasattr(m, "act_quant")]
    structure = {"format": 1, "modules": modules, "heads": heads, "quant": quant, "act_quant": act}
    if getattr(model, SHARE_ATTR, None):
        structure["share"] = [list(g) for g in getattr(model, SHARE_ATTR)]
    return structure


def apply_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Reshape a freshly built model to ``structure`` (weights are loaded afterwards)."""
    if structure.get("format") != 1:
        raise DataError(f"{STRUCTURE_FILE}: unknown format {structure.get('format')!r}")
    for name, spec in structure["modules"].items():
        kind = spec["type"]
        if kind == "lowrank_linear":
            new: nn.Module = LowRankLinear(spec["in"], spec["out"], spec["rank"], spec["bias"])
        elif kind == "lowrank_embedding":
            new = LowRankEmbedding(spec["num"], spec["dim"], spec["rank"], spec["padding_idx"])
        elif kind == "hashed_linear":
            new = HashedLinear(spec["in"], spec["out"], spec["size"], spec["seed"], spec["bias"])
        else:
            old = model.get_submodule(name)
            if (old.in_features, old.out_features) == (spec["in"], spec["out"]):
                continue
            new = nn.Linear(spec["in"], spec["out"], bias=spec["bias"])
        model.set_submodule(name, new)
    by_attention = {b.attention: b for b in _arch.blocks(model)}
    for name, n in structure["heads"].items():
        _arch.set_heads(model, by_attention[name], int(n))
    for name, record in structure["quant"].items():
        target: Any = model.get_submodule(name)
        target.paretoedge_quant = dict(record)
    for name in structure["act_quant"]:
        attach_act_quantizer(model.get_submodule(name))
    if structure.get("share"):
        tie(model, [list(g) for g in structure["share"]])
    return model


def save_compressed(
    model: nn.Module,
    out_dir: str | Path,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    spec: CompressionSpec | None = None,
) -> Path:
    """Write ``model`` (baked copy) with ``save_pretrained`` plus the structure and spec."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work: Any = bake(copy.deepcopy(model))
    structure = structure_of(work)
    untie(work)  # safetensors refuses shared storage; the structure file re-ties on load
    work.save_pretrained(out)
    (out / STRUCTURE_FILE).write_text(json.dumps(structure, indent=1))
    spec = spec if spec is not None else getattr(model, "paretoedge_spec", None)
    if spec is not None:
        (out / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=1))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def load_compressed(path: str | Path) -> PreTrainedModel:
    """Load a directory written by :func:`save_compressed` (eval mode, eager attention)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = Path(path)
    structure_file = path / STRUCTURE_FILE
    if not structure_file.is_file():
        raise DataError(f"{path} has no {STRUCTURE_FILE}; not written by paretoedge compress")
    structure = json.loads(structure_file.read_text())
    config = AutoConfig.from_pretrained(path)
    config._attn_implementation = "eager"
    # a hidden-pruned model is built at its original width (BERT derives the head size
    # from hidden_size), then narrowed; the weights are loaded afterwards
    hidden = int(config.hidden_size)
    built = getattr(config, BUILT_HIDDEN_ATTR, None)
    if built is not None:
        config.hidden_size = int(built)
    model = AutoModelForSequenceClassification.from_config(config)
    if built is not None and int(built) != hidden:
        shrink_hidden(model, torch.arange(hidden))
    state: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        state.update(load_file(str(file)))
    if not state:
        raise DataError(f"{path} holds no *.safetensors weights")
    spec_file = path / SPEC_FILE
    saved_spec = (
        CompressionSpec.from_dict(json.loads(spec_file.read_text()))
        if spec_file.is_file()
        else None
    )
    if saved_spec is not None and needs_rebuild(saved_spec):
        # shapes first, then the modules the spec rebuilds (their weights come from the
        # file), then the quantisation records that may name those modules
        own = {k: v for k, v in structure["modules"].items() if not is_rebuilt(k)}
        apply_structure(model, {**structure, "modules": own, "quant": {}, "act_quant": []})
        rebuild_structure(model, saved_spec, state)
        apply_structure(model, {**structure, "modules": {}, "heads": {}, "share": []})
    else:
        apply_structure(model, structure)
    model.load_state_dict(state, strict=True)
    if saved_spec is not None:
        model.paretoedge_spec = saved_spec
    return model.eval()
