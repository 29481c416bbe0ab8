"""Typed, frozen, versioned configurations of the compression transforms.

Every transform has one frozen dataclass validated in ``__post_init__``; a bad value raises
:class:`~paretoedge.errors.ConfigError` naming the dotted field (``quant.bits``), the value
and what is allowed, so the CLI and the search can print one clear line.

:class:`CompressionSpec` bundles them (each optional). It round-trips through a flat
``{"quant.bits": 8, "prune.sparsity": 0.5}`` mapping (what ``--set`` and the search space
speak) and through a versioned ``{"_type", "_version", "_data"}`` document whose ``_type``
is checked against an allow-list on load, so a stored spec can never name arbitrary code.

The sections a spec knows are the transforms registered in
:data:`~paretoedge.compression._transform.TRANSFORMS` (see that module for how to add one):
this module registers the built-in configs defined here, and imports the modules of the
others (``_distill``, ``_share``, ...) so that reading a spec registers every transform.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from paretoedge.compression._distill import DistillConfig
from paretoedge.compression._document import (
    config_document,
    config_from_data,
    document_digest,
    register_upgrade,
    unpack,
)
from paretoedge.compression._extra_config import AttentionConfig, ExitConfig, TensorConfig
from paretoedge.compression._hash import HashConfig
from paretoedge.compression._hidden import HiddenConfig
from paretoedge.compression._share import ShareConfig
from paretoedge.compression._transform import Step, register_transform
from paretoedge.compression._transform import sections as registered_sections
from paretoedge.errors import ConfigError, UnknownNameError

ALLOWED_BITS = (32, 16, 8, 4, 2, 1)
LAYER_GROUPS = ("attention", "ffn", "embeddings", "head")
LOWRANK_TARGETS = ("attention", "ffn", "embeddings")
#: Version of the :class:`CompressionSpec` document (2: one versioned document per section).
SPEC_VERSION = 2


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_fraction(name: str, value: Any, lo: float, hi: float, *, lo_open: bool) -> None:
    ok = _is_number(value) and (lo < value if lo_open else lo <= value) and value <= hi
    if not ok:
        left = "(" if lo_open else "["
        raise ConfigError(name, value, f"a number in {left}{lo:g}, {hi:g}]")


@dataclass(frozen=True)
class PruneConfig:
    """Unstructured magnitude pruning of the encoder's Linear weights.

    Attributes:
        sparsity: Fraction of weights set to zero, in [0, 0.95].
        scope: ``"global"`` ranks all target weights together (layers end up with different
            sparsities); ``"layer"`` prunes every Linear to the same sparsity.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"sparsity": 0.0}

    sparsity: float = 0.5
    scope: Literal["global", "layer"] = "global"

    def __post_init__(self) -> None:
        _check_fraction("prune.sparsity", self.sparsity, 0.0, 0.95, lo_open=False)
        if self.scope not in ("global", "layer"):
            raise ConfigError("prune.scope", self.scope, ("global", "layer"))


@dataclass(frozen=True)
class HeadsConfig:
    """Structured pruning of attention heads (every layer keeps the same fraction).

    Attributes:
        keep: Fraction of heads kept per layer, in (0, 1]; at least one head stays.
        criterion: ``"magnitude"`` (L2 norm of the head's Q/K/V rows and output columns) or
            ``"gradient"`` (|d loss / d head mask| summed over task batches; needs data).
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"keep": 1.0}

    keep: float = 0.75
    criterion: Literal["magnitude", "gradient"] = "magnitude"

    def __post_init__(self) -> None:
        _check_fraction("heads.keep", self.keep, 0.0, 1.0, lo_open=True)
        if self.criterion not in ("magnitude", "gradient"):
            raise ConfigError("heads.criterion", self.criterion, ("magnitude", "gradient"))


@dataclass(frozen=True)
class FFNConfig:
    """Structured pruning of FFN intermediate neurons (same fraction in every layer).

    Attributes:
        keep: Fraction of intermediate neurons kept, in (0, 1]; ranked by the product of
            the neuron's input-row and output-column L2 norms.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"keep": 1.0}

    keep: float = 0.5

    def __post_init__(self) -> None:
        _check_fraction("ffn.keep", self.keep, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class LowRankConfig:
    """Truncated-SVD factorisation of Linear layers (and the word embedding matrix).

    Attributes:
        rank: Fixed rank r >= 1 (a cap when ``energy`` is also given).
        energy: Keep the smallest rank whose singular values hold this fraction of the
            squared spectrum, in (0, 1].
        targets: Layer types to factor, a subset of attention, ffn, embeddings.

    A layer is only replaced where the two factors have fewer parameters than the original.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"energy": 1.0, "rank": 10**9}

    rank: int | None = None
    energy: float | None = None
    targets: tuple[str, ...] = ("attention", "ffn")

    def __post_init__(self) -> None:
        targets = self.targets
        if isinstance(targets, str):
            targets = tuple(t.strip() for t in targets.split(",") if t.strip())
        targets = tuple(targets)
        if not targets or any(t not in LOWRANK_TARGETS for t in targets):
            raise ConfigError(
                "lowrank.targets",
                ",".join(map(str, targets)),
                "a non-empty subset of " + ", ".join(LOWRANK_TARGETS),
            )
        object.__setattr__(self, "targets", tuple(t for t in LOWRANK_TARGETS if t in targets))
        if self.rank is None and self.energy is None:
            raise ConfigError("lowrank.rank", None, "an integer >= 1 (or set lowrank.energy)")
        if self.rank is not None and (
            not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1
        ):
            raise ConfigError("lowrank.rank", self.rank, "an integer >= 1")
        if self.energy is not None:
            _check_fraction("lowrank.energy", self.energy, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class QuantConfig:
    """Weight quantisation with per-layer bit-widths, optional int8 activations and QAT.

    Attributes:
        bits: Default weight bit-width of every Linear and of the word embeddings:
            32 (float), 16 (float16), 8, 4, 2 (ternary: {-a, 0, +a} per row, zero band
            below 0.7 mean|w|) or 1 (binary: sign x per-row mean |w|). Train binary and
            ternary layers through their quantisers (``qat=True`` with ``recovery``: a
            straight-through estimator and distillation from the teacher). The ternary
            threshold is statistics-based, not learned: TWN's delta = 0.7 * mean|w| of each
            row, as TernaryBERT uses it, recomputed from the float weights at every QAT
            step, so it follows them as they train.
        scheme: ``"uniform"`` (symmetric, per output channel, one float scale per row) or
            ``"cluster"`` (k-means weight sharing: at most 2^bits distinct values per layer
            and a 2^bits-entry codebook; 16/32 bits stay float).
        layer_bits: Overrides as ``((selector, bits), ...)``; a selector is a layer group
            (attention, ffn, embeddings, head), ``layer.N`` (every Linear of encoder layer N)
            or a full module name. Later entries win.
        act_bits: 8 quantises the input activations of every 8-bit uniform layer to int8
            with per-tensor scales calibrated on task batches; None keeps them float.
        qat: Insert the fake quantisers before the recovery fine-tune and train through them
            with a straight-through estimator, instead of quantising after it.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"bits": 32, "scheme": "uniform"}

    bits: int = 8
    scheme: Literal["uniform", "cluster"] = "uniform"
    layer_bits: tuple[tuple[str, int], ...] = ()
    act_bits: int | None = 8
    qat: bool = False

    def __post_init__(self) -> None:
        if self.bits not in ALLOWED_BITS or isinstance(self.bits, bool):
            raise ConfigError("quant.bits", self.bits, ALLOWED_BITS)
        if self.scheme not in ("uniform", "cluster"):
            raise ConfigError("quant.scheme", self.scheme, ("uniform", "cluster"))
        layer_bits = self.layer_bits
        if isinstance(layer_bits, Mapping):
            layer_bits = tuple(layer_bits.items())
        normalised = []
        for selector, bits in layer_bits:
            if not isinstance(selector, str) or not selector:
                raise ConfigError("quant.layer_bits", selector, "a layer group, layer.N or module")
            if bits not in ALLOWED_BITS or isinstance(bits, bool):
                raise ConfigError(f"quant.layer_bits.{selector}", bits, ALLOWED_BITS)
            normalised.append((selector, int(bits)))
        object.__setattr__(self, "layer_bits", tuple(normalised))
        if self.act_bits not in (8, None):
            raise ConfigError("quant.act_bits", self.act_bits, ("8", "None"))
        if not isinstance(self.qat, bool):
            raise ConfigError("quant.qat", self.qat, ("true", "false"))


@dataclass(frozen=True)
class RecoveryConfig:
    """Recovery fine-tune after compression: distillation from the (uncompressed) teacher.

    Attributes:
        steps: Optimiser steps (0 disables recovery).
        lr: Learning rate, > 0.
        batch_size: Examples per step, >= 1.
    """

    #: Field values that leave the model as it is (the search places baselines with them).
    IDENTITY: ClassVar[dict[str, Any]] = {"steps": 0}

    steps: int = 100
    lr: float = 5e-5
    batch_size: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ConfigError("recovery.steps", self.steps, "an integer >= 0")
        if not _is_number(self.lr) or not 0 < self.lr <= 1:
            raise ConfigError("recovery.lr", self.lr, "a number in (0, 1]")
        if (
            not isinstance(self.batch_size, int)
            or isinstance(self.batch_size, bool)
            or self.batch_size < 1
        ):
            raise ConfigError("recovery.batch_size", self.batch_size, "an integer >= 1")


_HANDLERS = "paretoedge.compression"

register_transform(
    "heads",
    HeadsConfig,
    Step("heads", order=200, handler=f"{_HANDLERS}._prune:run_heads"),
    check=f"{_HANDLERS}._prune:check_heads",
)
register_transform("ffn", FFNConfig, Step("ffn", order=300, handler=f"{_HANDLERS}._prune:run_ffn"))
register_transform(
    "lowrank",
    LowRankConfig,
    Step("lowrank", order=400, handler=f"{_HANDLERS}._lowrank:run_lowrank"),
)
register_transform(
    "prune", PruneConfig, Step("prune", order=500, handler=f"{_HANDLERS}._prune:run_prune")
)
register_transform(
    "quant",
    QuantConfig,
    Step("quant(qat)", order=600, handler=f"{_HANDLERS}._quant:run_quant_qat"),
    Step("quant(ptq)", order=800, handler=f"{_HANDLERS}._quant:run_quant_ptq"),
    Step("calibrate", order=950, handler=f"{_HANDLERS}._quant:run_calibrate"),
    check=f"{_HANDLERS}._quant:check_quant",
)
register_transform(
    "recovery",
    RecoveryConfig,
    Step("recovery", order=700, handler=f"{_HANDLERS}._distill:run_recovery"),
    check=f"{_HANDLERS}._distill:check_recovery",
)


def _section_cls(section: str) -> type:
    known = registered_sections()
    if section not in known:
        raise UnknownNameError("transform", section, known)
    return known[section]


def _coerce(key: str, raw: Any, annotation: str) -> Any:
    """Turn a CLI/JSON value into the annotated type (``"8"`` -> 8, ``"true"`` -> True)."""
    if not isinstance(raw, str):
        if "float" in annotation and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if "tuple" in annotation and isinstance(raw, list):
            return tuple(tuple(x) if isinstance(x, list) else x for x in raw)
        return raw
    text = raw.strip()
    if text.lower() in ("none", "null") and "None" in annotation:
        return None
    if "tuple" in annotation and annotation.startswith("int") and ("," in text or "(" in text):
        parts = [t for t in text.strip("()[]").replace(" ", "").split(",") if t]
        try:
            return tuple(int(t) for t in parts)
        except ValueError:
            raise ConfigError(key, raw, "an integer or comma-separated integers") from None
    if annotation.startswith("bool"):
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(key, raw, ("true", "false"))
    if annotation.startswith("int"):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(key, raw, "an integer") from None
    if annotation.startswith("float"):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(key, raw, "a number") from None
    if annotation.startswith("tuple"):
        if text.startswith("[") or text.startswith("("):
            try:
                return tuple(
                    tuple(x) if isinstance(x, list) else x
                    for x in json.loads(text.replace("(", "[").replace(")", "]"))
                )
            except json.JSONDecodeError:
                raise ConfigError(key, raw, "a comma-separated list") from None
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return text


@dataclass(frozen=True)
class CompressionSpec:
    """What to do to a model; every section is optional (None = transform not applied).

    The transforms run in the canonical order of :func:`paretoedge.compression.compress`,
    whatever order the keys were given in.

    It is stored and exchanged as a versioned document (:meth:`to_dict`, :meth:`from_dict`);
    the flat dotted keys (:meth:`from_flat`, :meth:`to_flat`) are for the edges where people
    write keys: YAML, ``--set``, Optuna parameter names.
    """

    VERSION: ClassVar[int] = SPEC_VERSION

    distill: DistillConfig | None = None
    heads: HeadsConfig | None = None
    ffn: FFNConfig | None = None
    lowrank: LowRankConfig | None = None
    prune: PruneConfig | None = None
    quant: QuantConfig | None = None
    recovery: RecoveryConfig | None = None
    share: ShareConfig | None = None
    hash: HashConfig | None = None
    tensor: TensorConfig | None = None
    attention: AttentionConfig | None = None
    exit: ExitConfig | None = None
    hidden: HiddenConfig | None = None

    def __post_init__(self) -> None:
        for section in registered_sections():
            value = getattr(self, section)
            if value is None:
                continue
            expected = _section_cls(section)
            if not isinstance(value, expected):
                raise ConfigError(section, type(value).__name__, expected.__name__)

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, s) is None for s in registered_sections())

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> CompressionSpec:
        """Build a spec from dotted keys, e.g. ``{"quant.bits": 8, "prune.sparsity": 0.5}``.

        A section is switched on by any of its keys (other fields keep their defaults);
        ``quant.layer_bits.<selector>`` sets one per-layer override. Values may be strings
        (as typed on the command line). Unknown sections or keys raise ConfigError.
        """
        grouped: dict[str, dict[str, Any]] = {}
        for key, raw in flat.items():
            if not isinstance(key, str) or "." not in key:
                raise UnknownNameError("transform", str(key).split(".")[0], registered_sections())
            section, name = key.split(".", 1)
            if section not in registered_sections():
                raise UnknownNameError("transform", section, registered_sections())
            config_cls = _section_cls(section)
            known = {f.name: str(f.type) for f in fields(config_cls)}
            bucket = grouped.setdefault(section, {})
            if section == "quant" and name.startswith("layer_bits."):
                selector = name[len("layer_bits.") :]
                bits = _coerce(key, raw, "int")
                bucket.setdefault("layer_bits", []).append((selector, bits))
                continue
            if name not in known:
                raise UnknownNameError(f"{section} key", key, (f"{section}.{k}" for k in known))
            value = _coerce(key, raw, known[name])
            if section == "quant" and name == "layer_bits":
                if isinstance(value, Mapping):
                    value = list(value.items())
                elif value and isinstance(value[0], str):
                    value = [tuple(v.split(":", 1)) for v in value]
                    value = [(s, _coerce(f"quant.layer_bits.{s}", b, "int")) for s, b in value]
                bucket.setdefault("layer_bits", []).extend(value)
                continue
            bucket[name] = value
        sections: dict[str, Any] = {}
        for section, kwargs in grouped.items():
            if "layer_bits" in kwargs:
                kwargs["layer_bits"] = tuple(tuple(x) for x in kwargs["layer_bits"])
            try:
                sections[section] = _section_cls(section)(**kwargs)
            except TypeError as exc:
                raise ConfigError(section, kwargs, f"valid {section} keys ({exc})") from None
        return cls(**sections)

    def to_flat(self) -> dict[str, Any]:
        """The spec as dotted keys; ``from_flat(spec.to_flat()) == spec``."""
        flat: dict[str, Any] = {}
        for section in registered_sections():
            config = getattr(self, section)
            if config is None:
                continue
            for f in fields(config):
                value = getattr(config, f.name)
                if section == "quant" and f.name == "layer_bits":
                    for selector, bits in value:
                        flat[f"quant.layer_bits.{selector}"] = bits
                    continue
                if isinstance(value, tuple):
                    value = list(value)
                flat[f"{section}.{f.name}"] = value
        return flat

    def to_dict(self) -> dict[str, Any]:
        """The versioned document, each set section a versioned document of its own::

            {"_type": "CompressionSpec", "_version": 2, "_data": {
                "quant": {"_type": "QuantConfig", "_version": 1,
                          "_data": {"bits": 8, "scheme": "uniform", ...}}}}

        Every field of a set section is written (defaults included) and unset sections are
        left out, so two equal specs give equal documents. Tuples become JSON lists.
        """
        data = {
            section: config_document(getattr(self, section))
            for section in registered_sections()
            if getattr(self, section) is not None
        }
        return {"_type": type(self).__name__, "_version": self.VERSION, "_data": data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def digest(self) -> str:
        """The hex SHA-256 of the normalised document (:func:`document_digest`): equal specs
        give equal digests, whatever order or number type (``1`` or ``1.0``) built them.

        Storage keeps it beside each candidate (``pe_candidates.spec_hash``) so a repeated
        spec is found by an indexed lookup. It depends on the classes' current versions:
        a ``VERSION`` bump that changes the document must come with a migration that
        recomputes the stored digests (until then old candidates are merely not found as
        twins; the lookup compares the specs themselves before reusing a result).
        """
        return document_digest(self.to_dict())

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> CompressionSpec:
        """Load a document written by :meth:`to_dict` (of this or an older version).

        Only the types on the allow-list load: ``CompressionSpec`` at the top and, under
        each section, that section's registered config class; a document never names code
        to import. An older ``_version`` is upgraded on load (version 1 kept the flat
        dotted keys in ``_data``); a newer one is refused.

        Raises:
            ConfigError: naming the offending place (``spec._type``, ``spec._version``,
                ``spec.quant._type``, ``quant.bits``, ...) and what is allowed.
        """
        _, data = unpack("spec", doc, _ALLOWED_TYPES)
        sections: dict[str, Any] = {}
        known = registered_sections()
        for section, section_doc in data.items():
            if section not in known:
                raise UnknownNameError("transform", str(section), known)
            config_cls = known[section]
            _, values = unpack(f"spec.{section}", section_doc, {config_cls.__name__: config_cls})
            sections[section] = config_from_data(section, config_cls, values)
        return cls(**sections)

    @classmethod
    def from_json(cls, text: str) -> CompressionSpec:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("spec", text[:40], f"JSON ({exc.msg})") from None
        return cls.from_dict(doc)

    def replace(self, **changes: Any) -> CompressionSpec:
        return dataclasses.replace(self, **changes)


_ALLOWED_TYPES: dict[str, type] = {"CompressionSpec": CompressionSpec}


def _edge_type(hint: Any) -> type:
    """The type a flat key's value has at the edges (YAML, ``--set``, Optuna parameters).

    ``X | None`` and ``X | tuple[X, ...]`` are ``X``; a ``Literal`` of strings is ``str``; a
    tuple (``targets``, ``layers``) is ``str``, written comma-separated.
    """
    origin = get_origin(hint)
    if origin is Literal:
        kinds = {type(a) for a in get_args(hint)}
        return kinds.pop() if len(kinds) == 1 else str
    if origin is Union or origin is types.UnionType:
        return _edge_type(next(a for a in get_args(hint) if a is not type(None)))
    if origin is tuple:
        return str
    if isinstance(hint, type):
        return hint
    raise RuntimeError(f"no flat key type for the annotation {hint!r}")


def _keyed_pairs(hint: Any) -> type | None:
    """For ``tuple[tuple[str, X], ...]`` (e.g. ``quant.layer_bits``): ``X``, else None."""
    if get_origin(hint) is not tuple:
        return None
    inner = get_args(hint)[0]
    args = get_args(inner)
    if get_origin(inner) is tuple and len(args) == 2 and args[0] is str:
        return _edge_type(args[1])
    return None


def flat_key_types() -> tuple[dict[str, type], dict[str, type]]:
    """The flat keys of every registered transform and their value types, from the fields.

    Returns:
        ``(keys, prefixes)``: ``{"prune.sparsity": float, "quant.bits": int, ...}`` in
        canonical section order, and the prefixes of keyed fields (a tuple of
        ``(name, value)`` pairs), ``{"quant.layer_bits.": int}``, whose keys name an entry
        (``quant.layer_bits.ffn``).
    """
    keys: dict[str, type] = {}
    prefixes: dict[str, type] = {}
    for section, config_cls in registered_sections().items():
        hints = get_type_hints(config_cls)
        for f in fields(config_cls):
            pair_type = _keyed_pairs(hints[f.name])
            if pair_type is not None:
                prefixes[f"{section}.{f.name}."] = pair_type
            else:
                keys[f"{section}.{f.name}"] = _edge_type(hints[f.name])
    return keys, prefixes


def _upgrade_spec_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """Version 1 kept the flat dotted keys in ``_data`` (``{"quant.bits": 8}``)."""
    return CompressionSpec.from_flat(data).to_dict()["_data"]


register_upgrade("CompressionSpec", 1, _upgrade_spec_v1)

_missing = set(registered_sections()) - {f.name for f in fields(CompressionSpec)}
if _missing:
    raise RuntimeError(f"registered transforms without a CompressionSpec field: {_missing}")


def identity_flat() -> dict[str, Any]:
    """Flat keys -> the value that leaves the model unchanged (or changes it least), from
    each registered config's ``IDENTITY``: ``{"prune.sparsity": 0.0, "quant.bits": 32, ...}``.

    The search uses it to place a baseline among a space's values. A value beyond a field's
    range (``lowrank.rank: 10**9``) means "as much as the model has".
    """
    return {
        f"{section}.{name}": value
        for section, config_cls in registered_sections().items()
        for name, value in getattr(config_cls, "IDENTITY", {}).items()
    }
