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
from dataclasses import dataclass, replace
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
    copy_model,
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
    start = time.perf_counter()
    steps = _spec_steps(spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ctx = _context(model, spec, teacher, tokenizer, task, seed, progress, calibration, steps)
        applied = _run_steps(ctx, steps)
    wall = time.perf_counter() - start
    work = ctx.model
    return CompressionResult(
        model=work, spec=spec, stats=model_stats(work), wall_s=wall, applied=tuple(applied)
    )


Steps = list[tuple[Any, Any]]


def _spec_steps(spec: CompressionSpec) -> Steps:
    if not isinstance(spec, CompressionSpec):
        raise ConfigError("spec", type(spec).__name__, "a CompressionSpec")
    return [(t, s) for t, s in ordered_steps() if getattr(spec, t.section) is not None]


def _context(
    model: Any,
    spec: CompressionSpec,
    teacher: Any,
    tokenizer: Any,
    task: TaskData | None,
    seed: int,
    progress: bool,
    calibration: Sequence[dict[str, torch.Tensor]] | None,
    steps: Steps,
) -> CompressContext:
    """A context on a copy of ``model``, after every set section's check has passed."""
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
    _check_sections(ctx, steps)
    return ctx


def _check_sections(ctx: CompressContext, steps: Steps) -> None:
    """Run the check of every section of ``steps`` (once each) on ``ctx``."""
    checked: set[str] = set()
    for transform, _ in steps:
        check = transform.resolve_check()
        if check is not None and transform.section not in checked:
            check(ctx, getattr(ctx.spec, transform.section))
        checked.add(transform.section)


def _run_rest(ctx: CompressContext, rng: torch.Tensor, steps: Steps) -> list[str]:
    """The rest of the steps on ``ctx``, from the random state kept after the first ones
    (so that they draw what they would have in one :func:`compress` call)."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(rng)
        return _run_steps(ctx, steps)


def _run_steps(ctx: CompressContext, steps: Steps, *, last: bool = True) -> list[str]:
    """Run ``steps`` (in order) on ``ctx``; the names of those applied.

    The masks and quantisers are baked before the first step after ``BAKE_ORDER``, or at
    the end when ``last`` (the steps end the compression).
    """
    applied: list[str] = []
    baked = False
    for transform, step in steps:
        if step.order > BAKE_ORDER and not baked:
            bake(ctx.model)
            baked = True
        if step.resolve()(ctx, getattr(ctx.spec, transform.section)):
            applied.append(step.name)
            log.debug("applied %s", step.name)
    if last:
        if not baked:
            bake(ctx.model)
        ctx.model.eval()
        ctx.model.paretoedge_spec = ctx.spec
    return applied


class StagedCompression:
    """:func:`compress` stopped at its ``recovery`` step, which then runs in segments.

    Why: a search that stops unpromising candidates early measures each one after a few
    recovery steps and trains on only those that stay promising. Compressing again for
    every measurement would pay the compression and the steps before it once per rung;
    this object compresses once (every step before ``recovery``) and continues the same
    recovery run (:class:`~paretoedge.compression._distill.DistillRun`).

    What holds, on the CPU: ``recover_to(spec.recovery.steps)`` then
    ``result(final=True)`` gives bit for bit :func:`compress`'s model for the same
    arguments, whatever ``recover_to``/``result(final=False)`` calls came before, and
    whether or not the run was continued from a :meth:`state_dict` in another process.
    A ``result`` taken at step ``a`` is the full run's state at ``a`` (its learning rate
    has not decayed), finished by the steps after recovery (PTQ, baking, calibration,
    exits) on a copy.

    Not thread-safe. Arguments are those of :func:`compress`.

    Raises:
        ConfigError: ``spec`` has no recovery steps, or as :func:`compress`.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        spec: CompressionSpec,
        *,
        teacher: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        task: TaskData | None = None,
        seed: int = 0,
        progress: bool = False,
        calibration: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> None:
        from paretoedge.compression._distill import recovery_run

        steps = _spec_steps(spec)
        if spec.recovery is None or spec.recovery.steps < 1:
            raise ConfigError(
                "recovery.steps",
                None if spec.recovery is None else spec.recovery.steps,
                "an integer >= 1 (a staged compression runs its recovery in segments)",
            )
        start = time.perf_counter()
        at = next(i for i, (t, _) in enumerate(steps) if t.section == "recovery")
        recovery_name = steps[at][1].name
        self.spec = spec
        self._after = steps[at + 1 :]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._ctx = _context(
                model, spec, teacher, tokenizer, task, seed, progress, calibration, steps
            )
            self._before = [*_run_steps(self._ctx, steps[:at], last=False), recovery_name]
            # the recovery forks its own generator: the steps after it start from here
            self._rng = torch.get_rng_state()
        self._run = recovery_run(self._ctx, spec.recovery)
        self._wall = time.perf_counter() - start

    @property
    def done(self) -> int:
        """Recovery steps done."""
        return self._run.done

    @property
    def total(self) -> int:
        """The recovery budget (``spec.recovery.steps``)."""
        return self._run.total

    def recover_to(self, step: int) -> None:
        """Continue the recovery until ``step`` steps are done in all.

        Raises:
            ConfigError: ``step`` is below :attr:`done` or above :attr:`total`.
        """
        start = time.perf_counter()
        self._run.run_to(step)
        self._wall += time.perf_counter() - start

    def result(self, *, final: bool = False) -> CompressionResult:
        """The compressed model at the recovery steps done so far.

        Args:
            final: Finish the model being trained itself (no copy; the object is spent
                afterwards) instead of a copy that training continues apart from.
        """
        start = time.perf_counter()
        ctx = self._ctx
        if not final:
            ctx = replace(ctx, model=copy_model(ctx.model))
        applied = [*self._before, *_run_rest(ctx, self._rng, self._after)]
        self._wall += time.perf_counter() - start
        work = ctx.model
        return CompressionResult(
            model=work,
            spec=self.spec,
            stats=model_stats(work),
            wall_s=self._wall,
            applied=tuple(applied),
        )

    def state_dict(self) -> dict[str, Any]:
        """The recovery run's state (see :class:`~paretoedge.compression._distill.DistillRun`):
        a :class:`StagedCompression` of the same arguments continues from it."""
        return self._run.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of a staged compression of the same arguments."""
        self._run.load_state_dict(state)


#: The first step that changes weights but not the architecture (unstructured pruning);
#: :class:`CompressionPrefix` runs every step before it once.
PREFIX_END_ORDER = 500


class CompressionPrefix:
    """:func:`compress`'s architectural steps run once, finished for many specs that share
    them.

    Why: a screening pool holds many variants of each architecture (bit-widths, schemes,
    sparsities), and costing each one compressed the teacher again from the start, paying
    the distillation, head and FFN pruning and low-rank factorisation every time. This
    object runs the steps before :data:`PREFIX_END_ORDER` (every step that shapes the
    architecture) for ``spec``, and :meth:`finish` runs the rest of any spec with the same
    sections up to there on a copy, from the same random state.

    What holds, on the CPU: ``finish(other)`` gives bit for bit ``compress(model, other,
    ...)`` with the same arguments, for every ``other`` that :meth:`shares` the prefix (no
    step before the end reads a later section: handlers read their own section).

    Arguments are those of :func:`compress`.

    Raises:
        ConfigError: As :func:`compress` for the prefix's sections.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        spec: CompressionSpec,
        *,
        teacher: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        task: TaskData | None = None,
        seed: int = 0,
        progress: bool = False,
        calibration: Sequence[dict[str, torch.Tensor]] | None = None,
    ) -> None:
        start = time.perf_counter()
        steps = [(t, st) for t, st in _spec_steps(spec) if st.order < PREFIX_END_ORDER]
        self.spec = spec
        self._sections = tuple(dict.fromkeys(t.section for t, _ in steps))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._ctx = _context(
                model, spec, teacher, tokenizer, task, seed, progress, calibration, steps
            )
            self._applied = _run_steps(self._ctx, steps, last=False)
            self._rng = torch.get_rng_state()
        self._wall = time.perf_counter() - start

    def shares(self, spec: CompressionSpec) -> bool:
        """Whether ``spec`` has this prefix: the same value of every section with a step
        before the end, and none of the other such sections."""
        prefix = {t.section for t, st in _spec_steps(spec) if st.order < PREFIX_END_ORDER}
        return prefix == set(self._sections) and all(
            getattr(spec, name) == getattr(self.spec, name) for name in self._sections
        )

    def finish(self, spec: CompressionSpec) -> CompressionResult:
        """``spec`` compressed: a copy of the prefix's model through ``spec``'s later steps.

        Raises:
            ConfigError: ``spec`` does not share the prefix, or as :func:`compress`.
        """
        if not self.shares(spec):
            raise ConfigError(
                "spec", spec.to_flat(), f"a spec with the prefix's sections {self._sections}"
            )
        start = time.perf_counter()
        later = [(t, st) for t, st in _spec_steps(spec) if st.order >= PREFIX_END_ORDER]
        ctx = replace(self._ctx, model=copy_model(self._ctx.model), spec=spec)
        _check_sections(ctx, later)
        applied = [*self._applied, *_run_rest(ctx, self._rng, later)]
        work = ctx.model
        return CompressionResult(
            model=work,
            spec=spec,
            stats=model_stats(work),
            wall_s=self._wall + time.perf_counter() - start,
            applied=tuple(applied),
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
    work: Any = bake(copy_model(model))
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
