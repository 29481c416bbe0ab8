"""Study configuration: one YAML file, validated before anything runs.

Pydantic checks the shape of the YAML (types, unknown fields) and the result is converted
into frozen dataclasses that the controller uses. Every error becomes a
:class:`~paretoedge.errors.ConfigError` naming the dotted field (``budget.trials``,
``space.quant.bits.choices``), the value and what is allowed.

The search space is keyed like :meth:`paretoedge.compression.CompressionSpec.from_flat`
(``prune.sparsity``, ``quant.bits``, ``quant.layer_bits.<group>``, ...); a parameter may be
conditional on an earlier one (``when: {quant.bits: 4}``). ``fixed`` holds flat keys applied
to every candidate. Bundled files are read with :mod:`importlib.resources`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from paretoedge._yaml import MAX_BYTES, YAMLSyntaxError, check_document, decode_text, load_yaml
from paretoedge.compression import LAYER_LIST_KEYS, flat_key_types, layer_list_text
from paretoedge.errors import ConfigError, UnknownNameError
from paretoedge.objectives import OBJECTIVES, Direction, Evaluation, get_objective
from paretoedge.search._names import PATH_MAX, check_model, check_study_name, check_task
from paretoedge.search._sampler_options import check_sampler_options

SamplerName = Literal["nsga2", "tpe", "gp", "random", "screening"]
BaselineName = Literal["teacher", "int8"]

#: Largest seed: Optuna's samplers take up to 2**32 - 1 (NumPy's ``RandomState``), the
#: study table stores it in a 32-bit signed INTEGER column (PostgreSQL refuses more).
SEED_MAX = 2**31 - 1
#: Most values a stepped range may enumerate (``step: 1e-300`` is refused).
MAX_STEPS = 100_000
#: Most ``--set`` overrides, characters of one, and parts of its dotted key.
MAX_OVERRIDES = 100
MAX_OVERRIDE_CHARS = 10_000
MAX_KEY_PARTS = 16

#: Flat compression keys the search space may use, with their value types: one per field of
#: every registered transform config (:func:`~paretoedge.compression.flat_key_types`), so a
#: new field or transform is a space key without an edit here.
PARAM_TYPES, PREFIX_TYPES = flat_key_types()


def param_type(key: str) -> type:
    """The value type of a flat compression key, or :class:`UnknownNameError`."""
    for prefix, typ in PREFIX_TYPES.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return typ
    try:
        return PARAM_TYPES[key]
    except KeyError:
        pass
    known = [*PARAM_TYPES, *(p + "<name>" for p in PREFIX_TYPES)]
    # a misspelt field lists its transform's keys; an unknown transform lists them all
    section = key.split(".", 1)[0] + "."
    near = [k for k in known if k.startswith(section)]
    raise UnknownNameError("space key", key, near or known)


# --------------------------------------------------------------------------- YAML edge


class _Strict(BaseModel):
    # strict: no bool for an int, no "3" for a number; finite floats only.
    model_config = ConfigDict(frozen=True, strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    raise PydanticCustomError(
                        "unknown_field",
                        "unknown field {field}",
                        {"field": str(key), "allowed": ", ".join(sorted(known))},
                    )
        return data


class _Param(_Strict):
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    when: dict[str, Any] | None = None


class _Objective(_Strict):
    name: str
    direction: Direction | None = None
    device: str | None = None


class _Sampler(_Strict):
    name: SamplerName = "nsga2"
    options: dict[str, Any] = Field(default_factory=dict)


class _Budget(_Strict):
    trials: int | None = Field(default=20, ge=1, le=1_000_000)
    timeout_s: float | None = Field(default=None, gt=0, le=366 * 86400)


class _Recovery(_Strict):
    steps: int = Field(default=0, ge=0, le=1_000_000)
    lr: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(default=32, ge=1, le=65_536)


class _Data(_Strict):
    train_limit: int | None = Field(default=None, ge=1, le=100_000_000)
    validation_limit: int | None = Field(default=None, ge=1, le=100_000_000)
    test_limit: int | None = Field(default=None, ge=1, le=100_000_000)


class _Teacher(_Strict):
    epochs: float = Field(default=1.0, gt=0, le=1000)


class _EarlyStopping(_Strict):
    min_steps: int = Field(ge=1, le=1_000_000)
    eta: float = Field(default=3.0, gt=1, le=1000)
    min_peers: int | None = Field(default=None, ge=2, le=1_000_000)
    min_dominators: int = Field(default=1, ge=1, le=1_000_000)


class _Ray(_Strict):
    cpus_per_trial: float = Field(default=1.0, gt=0, le=4096)
    gpus_per_trial: float = Field(default=0.0, ge=0, le=1024)
    max_concurrent: int | None = Field(default=None, ge=1, le=100_000)
    max_failures: int = Field(default=2, ge=0, le=10_000)
    port: int | None = Field(default=6380, ge=1, le=65535)


def _default_baselines() -> list[BaselineName]:
    return ["teacher", "int8"]


class _Study(_Strict):
    name: str = "study"  # checked by check_study_name
    model: str
    task: str
    seed: int = Field(default=0, ge=0, le=SEED_MAX)
    seq_len: int = Field(default=64, ge=8, le=512)
    space: dict[str, _Param | list[Any]]
    fixed: dict[str, Any] = Field(default_factory=dict)
    objectives: list[str | _Objective]
    devices: list[str] = Field(min_length=1)
    constraints: list[str] = Field(default_factory=list)
    sampler: _Sampler | SamplerName = Field(default_factory=_Sampler)
    budget: _Budget = Field(default_factory=_Budget)
    recovery: _Recovery = Field(default_factory=_Recovery)
    data: _Data = Field(default_factory=_Data)
    teacher: _Teacher = Field(default_factory=_Teacher)
    baselines: list[BaselineName] = Field(default_factory=lambda: _default_baselines())
    early_stopping: _EarlyStopping | None = None
    ray: _Ray = Field(default_factory=_Ray)
    description: str = ""


# ------------------------------------------------------------------- frozen dataclasses


@dataclass(frozen=True)
class ParamSpec:
    """One search dimension.

    ``kind`` is ``"float"``, ``"int"`` or ``"categorical"``. ``when`` lists conditions
    ``(key, allowed values)`` on earlier parameters; the parameter is sampled only when all
    hold, and is absent from the candidate otherwise.
    """

    key: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the conditions hold for the values sampled so far."""
        return all(key in values and values[key] in allowed for key, allowed in self.when)

    def grid(self) -> tuple[Any, ...]:
        """Every value of the dimension, for enumerable spaces (categorical or stepped)."""
        if self.kind == "categorical":
            return self.choices
        if self.step is None:
            raise ConfigError(f"space.{self.key}.step", None, "a step to enumerate a range")
        assert self.low is not None and self.high is not None
        n = int(round((self.high - self.low) / self.step))
        vals = [self.low + i * self.step for i in range(n + 1)]
        if self.kind == "int":
            return tuple(int(round(v)) for v in vals)
        return tuple(round(v, 10) for v in vals)


@dataclass(frozen=True)
class ObjectiveSpec:
    """An objective of the study: a registered name, its device (if per-device), direction."""

    name: str
    direction: Direction
    device: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}[{self.device}]" if self.device else self.name

    def value(self, evaluation: Evaluation) -> float:
        return get_objective(self.name).value(evaluation, self.device)


_CONSTRAINT_RE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*(?P<device>[A-Za-z0-9_.-]+)\s*\])?"
    r"\s*(?P<op><=|>=)\s*(?P<bound>[-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """``metric[device] <= bound`` or ``>= bound``.

    :meth:`violation` is 0 when satisfied and otherwise the shortfall relative to the bound,
    so constraints in milliseconds and in bytes add up on one scale.
    """

    metric: str
    op: Literal["<=", ">="]
    bound: float
    device: str | None = None

    @property
    def label(self) -> str:
        target = f"{self.metric}[{self.device}]" if self.device else self.metric
        return f"{target} {self.op} {self.bound:g}"

    @classmethod
    def parse(cls, text: str, *, field: str = "constraints") -> Constraint:
        m = _CONSTRAINT_RE.match(text)
        if m is None:
            raise ConfigError(
                field, text, "'metric <= number' or 'metric[device] >= number' (<= or >=)"
            )
        metric = m["metric"]
        obj = OBJECTIVES.get(metric) if metric in OBJECTIVES else None
        if obj is None:
            raise ConfigError(field, text, f"a metric among {', '.join(OBJECTIVES.names())}")
        device = m["device"]
        if obj.per_device and device is None:
            raise ConfigError(field, text, f"{metric}[<device>]: {metric} is per device")
        if not obj.per_device and device is not None:
            raise ConfigError(field, text, f"{metric} without a device")
        bound = float(m["bound"])
        if not math.isfinite(bound):
            raise ConfigError(field, text, "a finite bound")
        return cls(metric=metric, op=m["op"], bound=bound, device=device)  # type: ignore[arg-type]

    def value(self, evaluation: Evaluation) -> float:
        return get_objective(self.metric).value(evaluation, self.device)

    def violation(self, evaluation: Evaluation) -> float:
        v = self.value(evaluation)
        gap = v - self.bound if self.op == "<=" else self.bound - v
        return max(0.0, gap) / max(abs(self.bound), 1e-12)


@dataclass(frozen=True)
class SamplerSpec:
    name: SamplerName = "nsga2"
    options: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Budget:
    trials: int | None = 20
    timeout_s: float | None = None


@dataclass(frozen=True)
class RecoverySpec:
    steps: int = 0
    lr: float = 5e-5
    batch_size: int = 32


@dataclass(frozen=True)
class DataSpec:
    train_limit: int | None = None
    validation_limit: int | None = None
    test_limit: int | None = None


@dataclass(frozen=True)
class EarlyStoppingSpec:
    """Multi-objective successive halving over recovery steps (see ``_multifidelity``)."""

    min_steps: int
    eta: float = 3.0
    min_peers: int | None = None
    min_dominators: int = 1


@dataclass(frozen=True)
class RaySpec:
    """Per-trial resources and limits of the Ray backend."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2
    port: int | None = 6380


@dataclass(frozen=True)
class StudyConfig:
    """A validated study. Build it with :func:`load_config` or :func:`parse_config`."""

    name: str
    model: str
    task: str
    space: tuple[ParamSpec, ...]
    objectives: tuple[ObjectiveSpec, ...]
    devices: tuple[str, ...]
    constraints: tuple[Constraint, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    budget: Budget = field(default_factory=Budget)
    recovery: RecoverySpec = field(default_factory=RecoverySpec)
    data: DataSpec = field(default_factory=DataSpec)
    teacher_epochs: float = 1.0
    seed: int = 0
    seq_len: int = 64
    baselines: tuple[BaselineName, ...] = ("teacher", "int8")
    early_stopping: EarlyStoppingSpec | None = None
    ray: RaySpec = field(default_factory=RaySpec)
    description: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def front_objectives(self, device: str) -> tuple[ObjectiveSpec, ...]:
        """The objectives of ``device``'s front: device-independent ones plus its own.

        For a device added after the study was defined (``add-device``), its own objectives
        are the study's per-device objectives applied to it.
        """
        if device in self.devices:
            return tuple(o for o in self.objectives if o.device in (None, device))
        out = []
        seen = set()
        for o in self.objectives:
            if o.device is None:
                out.append(o)
            elif o.name not in seen:
                seen.add(o.name)
                out.append(ObjectiveSpec(name=o.name, direction=o.direction, device=device))
        return tuple(out)

    def device_constraints(self, device: str) -> tuple[Constraint, ...]:
        """Constraints deciding feasibility on ``device``'s front."""
        return tuple(c for c in self.constraints if c.device in (None, device))

    def to_dict(self) -> dict[str, Any]:
        """The validated configuration as plain data (stored with the study)."""
        return dict(self.raw)


# ------------------------------------------------------------------------ loading


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _from_validation_error(exc: ValidationError, data: Any) -> ConfigError:
    errors = exc.errors()
    # Union members (e.g. a param given as mapping or list) produce one error per member;
    # report the one that went deepest, which is the one the user meant.
    err = max(
        errors,
        key=lambda e: (len(e["loc"]), e["type"] not in ("model_type", "dict_type", "list_type")),
    )
    wrappers = ("str", "_Param", "_Objective", "_Sampler", "_EarlyStopping")
    loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in wrappers))]
    ctx = err.get("ctx") or {}
    if err["type"] == "unknown_field":
        field_path = _loc([*loc, ctx["field"]])
        return ConfigError(field_path, _lookup(data, [*loc, ctx["field"]]), ctx["allowed"])
    msg = str(err["msg"])
    for prefix in ("Input should be ", "Value error, ", "String should "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :] if prefix != "String should " else msg
    if err["type"] == "missing":
        return ConfigError(_loc(loc), None, "a value (the field is required)")
    return ConfigError(_loc(loc), err.get("input"), msg)


def _plain(data: Any) -> Any:
    """Mappings as dicts and tuples as lists (a stored config is read-only), for the strict
    schema; the depth is bounded by :func:`check_document` first."""
    if isinstance(data, Mapping):
        return {k: _plain(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_plain(v) for v in data]
    return data


def _lookup(data: Any, loc: Sequence[int | str]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _convert_param(key: str, p: _Param | list[Any]) -> ParamSpec:
    where = f"space.{key}"
    typ = param_type(key)
    if isinstance(p, list):
        p = _Param(choices=p)
    when: list[tuple[str, tuple[Any, ...]]] = []
    for cond_key, allowed in (p.when or {}).items():
        vals = tuple(allowed) if isinstance(allowed, list) else (allowed,)
        when.append((cond_key, vals))
    if p.choices is not None:
        if p.low is not None or p.high is not None or p.step is not None:
            raise ConfigError(where, p.model_dump(), "either choices or low/high[/step], not both")
        if not p.choices:
            raise ConfigError(f"{where}.choices", [], "at least one value")
        if key in LAYER_LIST_KEYS:
            choices = tuple(_layer_choice(f"{where}.choices", c, key) for c in p.choices)
        else:
            choices = tuple(_coerce(f"{where}.choices", c, typ) for c in p.choices)
        if len(set(choices)) != len(choices):
            raise ConfigError(f"{where}.choices", list(choices), "distinct values")
        return ParamSpec(key=key, kind="categorical", choices=choices, when=tuple(when))
    if p.low is None or p.high is None:
        raise ConfigError(where, p.model_dump(), "choices: [...] or low and high")
    if key in LAYER_LIST_KEYS:
        raise ConfigError(where, p.model_dump(), 'choices of layer lists, e.g. [all, "0", "0,1"]')
    if typ not in (int, float):
        raise ConfigError(where, p.model_dump(), f"choices (a {typ.__name__} parameter)")
    if p.low > p.high:
        raise ConfigError(f"{where}.high", p.high, f">= low ({p.low})")
    if not math.isfinite(p.high - p.low):
        raise ConfigError(f"{where}.high", p.high, f"a number with high - low finite (low {p.low})")
    if p.step is not None and p.step <= 0:
        raise ConfigError(f"{where}.step", p.step, "a positive number")
    if p.step is not None and (p.high - p.low) / p.step > MAX_STEPS:
        raise ConfigError(
            f"{where}.step", p.step, f"a step giving at most {MAX_STEPS:,} values from low to high"
        )
    if p.log and (p.low <= 0 or p.step is not None):
        raise ConfigError(f"{where}.log", p.log, "log only with low > 0 and no step")
    if typ is int:
        for name, v in (("low", p.low), ("high", p.high), ("step", p.step)):
            if v is not None and float(v) != int(v):
                raise ConfigError(f"{where}.{name}", v, "an integer (this parameter is an int)")
        return ParamSpec(
            key=key,
            kind="int",
            low=int(p.low),
            high=int(p.high),
            step=int(p.step) if p.step is not None else None,
            log=p.log,
            when=tuple(when),
        )
    return ParamSpec(
        key=key,
        kind="float",
        low=float(p.low),
        high=float(p.high),
        step=float(p.step) if p.step is not None else None,
        log=p.log,
        when=tuple(when),
    )


def _layer_choice(where: str, value: Any, key: str) -> str:
    """A layer-list value (``"0,1"``, ``1``, ``[0, 1]``, ``all``) as its canonical text, so
    that ``"0, 1"`` and ``[1, 0]`` are one choice; whether the model has those layers is
    checked with the model (:func:`_check_layers`)."""
    if isinstance(value, list) and not all(isinstance(v, int) for v in value):
        raise ConfigError(where, value, f"{key}: a list of integer layer indices")
    try:
        return layer_list_text(key, value)
    except ConfigError as exc:
        raise ConfigError(where, value, f"{key}: {exc.allowed}") from None


def _coerce(where: str, value: Any, typ: type) -> Any:
    if typ is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if typ is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if typ is str and isinstance(value, str):
        return value
    if typ is bool and isinstance(value, bool):
        return value
    raise ConfigError(where, value, f"a {typ.__name__}")


def _convert_objective(i: int, o: str | _Objective, devices: Sequence[str]) -> list[ObjectiveSpec]:
    where = f"objectives[{i}]"
    if isinstance(o, str):
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*([A-Za-z0-9_.-]+)\s*\])?\s*", o)
        if m is None:
            raise ConfigError(where, o, "'name' or 'name[device]'")
        o = _Objective(name=m[1], device=m[2])
    if o.name not in OBJECTIVES:
        raise ConfigError(f"{where}.name", o.name, OBJECTIVES.names())
    cls = OBJECTIVES.get(o.name)
    direction = o.direction or cls.direction
    if o.device is not None:
        if not cls.per_device:
            raise ConfigError(f"{where}.device", o.device, f"none ({o.name} is device-independent)")
        if o.device not in devices:
            raise ConfigError(f"{where}.device", o.device, devices)
        return [ObjectiveSpec(name=o.name, direction=direction, device=o.device)]
    if cls.per_device:
        return [ObjectiveSpec(name=o.name, direction=direction, device=d) for d in devices]
    return [ObjectiveSpec(name=o.name, direction=direction)]


def parse_config(
    data: Mapping[str, Any],
    *,
    check_names: bool = True,
    data_dir: Path | None = None,
    local_paths: bool = True,
) -> StudyConfig:
    """Validate a study given as plain data (a parsed YAML document).

    Nothing is written anywhere: a study that passes can be stored and run; one that fails
    leaves no trace.

    Args:
        data: The document.
        check_names: Also check the study name's characters, that the model, task and
            devices exist and that the space's values are accepted by the compression
            configs (needs those parts importable).
        data_dir: With ``check_names``: a local model directory or task file must lie
            inside this directory (the HTTP API's ``PARETOEDGE_DATA_DIR``).
        local_paths: With ``check_names``: whether a local model or task is accepted at all
            (the HTTP API without a data directory accepts bundled names only).

    Raises:
        ConfigError: naming the dotted field, the value and what is allowed.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("<study>", type(data).__name__, "a mapping of study fields")
    check_document(data)
    try:
        m = _Study.model_validate(_plain(data))
    except ValidationError as exc:
        raise _from_validation_error(exc, data) from None
    if check_names:  # a stored study's config is re-read unchecked (resume, add-device)
        check_study_name(m.name, field="name")

    devices = tuple(m.devices)
    if len(set(devices)) != len(devices):
        raise ConfigError("devices", list(devices), "distinct device names")
    space: list[ParamSpec] = []
    for key, p in m.space.items():
        try:
            spec = _convert_param(key, p)
        except UnknownNameError as exc:
            raise ConfigError(f"space.{key}", key, exc.allowed) from None
        for cond_key, _ in spec.when:
            if cond_key not in {s.key for s in space}:
                raise ConfigError(
                    f"space.{key}.when.{cond_key}",
                    cond_key,
                    f"a parameter listed before {key}: {[s.key for s in space]}",
                )
        space.append(spec)
    if not space:
        raise ConfigError("space", {}, "at least one parameter")
    fixed = []
    for key, value in m.fixed.items():
        try:
            typ = param_type(key)
        except UnknownNameError as exc:
            raise ConfigError(f"fixed.{key}", key, exc.allowed) from None
        if key in m.space:
            raise ConfigError(f"fixed.{key}", value, "a key that is not also in space")
        if key in LAYER_LIST_KEYS:
            fixed.append((key, _layer_choice(f"fixed.{key}", value, key)))
            continue
        fixed.append((key, _coerce(f"fixed.{key}", value, typ)))

    objectives: list[ObjectiveSpec] = []
    for i, o in enumerate(m.objectives):
        objectives.extend(_convert_objective(i, o, devices))
    labels = [o.label for o in objectives]
    if len(set(labels)) != len(labels):
        raise ConfigError("objectives", labels, "each objective once")
    if not any(o.name == "accuracy" for o in objectives):
        raise ConfigError("objectives", labels, "a list including accuracy")
    if len(objectives) < 2:
        raise ConfigError("objectives", labels, "at least two objectives")

    constraints = []
    for i, text in enumerate(m.constraints):
        c = Constraint.parse(text, field=f"constraints[{i}]")
        if c.device is not None and c.device not in devices:
            raise ConfigError(f"constraints[{i}]", text, f"a device among {', '.join(devices)}")
        constraints.append(c)

    sampler = m.sampler if isinstance(m.sampler, _Sampler) else _Sampler(name=m.sampler)
    if m.budget.trials is None and m.budget.timeout_s is None:
        raise ConfigError("budget", m.budget.model_dump(), "trials and/or timeout_s")

    cfg = StudyConfig(
        name=m.name,
        model=m.model,
        task=m.task,
        space=tuple(space),
        objectives=tuple(objectives),
        devices=devices,
        constraints=tuple(constraints),
        fixed=tuple(fixed),
        sampler=SamplerSpec(sampler.name, check_sampler_options(sampler.name, sampler.options)),
        budget=Budget(trials=m.budget.trials, timeout_s=m.budget.timeout_s),
        recovery=RecoverySpec(**m.recovery.model_dump()),
        data=DataSpec(**m.data.model_dump()),
        teacher_epochs=m.teacher.epochs,
        seed=m.seed,
        seq_len=m.seq_len,
        baselines=tuple(dict.fromkeys(m.baselines)),
        early_stopping=(
            EarlyStoppingSpec(**m.early_stopping.model_dump()) if m.early_stopping else None
        ),
        ray=RaySpec(**m.ray.model_dump()),
        description=m.description,
        raw=m.model_dump(mode="json"),
    )
    if check_names:
        _check_names(cfg, data_dir=data_dir, local_paths=local_paths)
    return cfg


def _check_names(cfg: StudyConfig, *, data_dir: Path | None, local_paths: bool) -> None:
    from paretoedge.hardware_profiles import profile_names

    known = set(profile_names())
    for i, d in enumerate(cfg.devices):
        if d not in known:
            raise ConfigError(f"devices[{i}]", d, sorted(known))

    check_model(cfg.model, data_dir=data_dir, local_paths=local_paths)
    check_task(cfg.task, data_dir=data_dir, local_paths=local_paths)

    from paretoedge.compression import CompressionSpec

    def first(p: ParamSpec) -> Any:
        return p.choices[0] if p.kind == "categorical" else p.low

    def candidate(chosen: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for q in cfg.space:
            if q.active(out):
                out[q.key] = chosen.get(q.key, first(q))
        flat = {**dict(cfg.fixed), **out}
        if cfg.recovery.steps > 0:
            flat.setdefault("recovery.steps", cfg.recovery.steps)
            flat.setdefault("recovery.lr", cfg.recovery.lr)
            flat.setdefault("recovery.batch_size", cfg.recovery.batch_size)
        return flat

    # Every value of every dimension, inside an otherwise default candidate (conditions
    # switched on), must be accepted by the compression configs.
    for p in cfg.space:
        values = p.choices if p.kind == "categorical" else (p.low, p.high)
        for v in values:
            chosen = {key: allowed[0] for key, allowed in p.when}
            chosen[p.key] = v
            flat = candidate(chosen)
            try:
                CompressionSpec.from_flat(flat)
            except ConfigError as exc:
                raise _attribute(exc, p.key, v, flat, cfg) from None
    _check_layers(cfg)


def _check_layers(cfg: StudyConfig) -> None:
    """Every layer-list value of the space and of ``fixed`` names layers the model has
    (read from its config, no weights loaded), so that ``attention.layers: "5"`` on a
    2-layer model is refused here rather than failing every trial that samples it."""
    entries = [(f"space.{p.key}", p.key, p.choices) for p in cfg.space if p.key in LAYER_LIST_KEYS]
    entries += [(f"fixed.{k}", k, (v,)) for k, v in cfg.fixed if k in LAYER_LIST_KEYS]
    if not entries:
        return
    from paretoedge.models import model_depth

    depth = model_depth(cfg.model)
    for where, key, values in entries:
        every, lo = LAYER_LIST_KEYS[key]
        for v in values:
            if v == "all" or all(lo <= int(i) < depth for i in str(v).split(",")):
                continue
            allowed = f"layers in {lo}..{depth - 1}, comma-separated"
            raise ConfigError(
                where,
                v,
                f"{key}: {'all or ' if every else ''}{allowed} ({cfg.model} has {depth} layers)",
            )


def _attribute(
    exc: ConfigError, key: str, value: Any, flat: Mapping[str, Any], cfg: StudyConfig
) -> ConfigError:
    """The study field to blame for ``exc``, raised by the compression configs on the
    candidate ``flat`` built to try ``key = value``.

    The candidate holds other dimensions' first values, the fixed keys and the recovery
    settings too: an invalid ``quant.bits: [3]`` must be reported as ``space.quant.bits``
    even when it surfaces while trying a value of ``prune.sparsity``.
    """
    bad = exc.field

    def about(k: str) -> bool:
        return bad == k or k.startswith(bad + ".") or bad.startswith(k + ".")

    allowed = f"{bad}: {exc.allowed}"
    if about(key):
        return ConfigError(f"space.{key}", value, allowed)
    space_keys = [q.key for q in cfg.space]
    for k in flat:
        if not about(k):
            continue
        if k in space_keys:
            return ConfigError(f"space.{k}", flat[k], allowed)
        if k in dict(cfg.fixed):
            return ConfigError(f"fixed.{k}", flat[k], allowed)
        if k.startswith("recovery."):
            return ConfigError(k, flat[k], allowed)
    return ConfigError(f"space.{key}", value, allowed)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (VALUE parsed as YAML) to a raw study document.

    Dotted keys walk nested mappings; at each level the longest existing key wins, so
    ``space.prune.sparsity.high=0.5`` reaches the ``prune.sparsity`` entry of ``space``.
    """
    import copy

    check_document(data)
    out: dict[str, Any] = copy.deepcopy(dict(data))
    if len(overrides) > MAX_OVERRIDES:
        raise ConfigError("--set", len(overrides), f"at most {MAX_OVERRIDES} overrides")
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError("--set", item, "KEY=VALUE")
        if len(item) > MAX_OVERRIDE_CHARS:
            raise ConfigError(
                "--set", item, f"KEY=VALUE of at most {MAX_OVERRIDE_CHARS:,} characters"
            )
        key, _, text = item.partition("=")
        key = key.strip()
        try:
            value = load_yaml(text, item, field="--set") if text.strip() else ""
        except YAMLSyntaxError:
            value = text
        parts = key.split(".")
        if not key or any(not p for p in parts) or len(parts) > MAX_KEY_PARTS:
            raise ConfigError(
                "--set", item, f"KEY=VALUE with a dotted KEY of at most {MAX_KEY_PARTS} parts"
            )
        node: Any = out
        i = 0
        while True:
            # longest existing key first; otherwise the single next part
            for j in range(len(parts), i, -1):
                cand = ".".join(parts[i:j])
                if isinstance(node, dict) and cand in node:
                    break
            else:
                j = i + 1
                cand = parts[i]
            if j == len(parts):
                if isinstance(node, list):
                    node[_index(cand, item, node)] = value
                elif isinstance(node, dict):
                    node[cand] = value
                else:
                    raise ConfigError("--set", item, f"a path into mappings ({cand})")
                break
            if isinstance(node, list):
                node = node[_index(cand, item, node)]
            elif isinstance(node, dict):
                if not isinstance(node.get(cand), dict | list):
                    node[cand] = {}
                node = node[cand]
            else:
                raise ConfigError("--set", item, f"a path into mappings ({cand})")
            i = j
    check_document(out)
    return out


def _index(part: str, item: str, node: list[Any]) -> int:
    try:
        idx = int(part)
        node[idx]
    except (ValueError, IndexError):
        raise ConfigError("--set", item, f"a list index 0..{len(node) - 1}") from None
    return idx


def bundled_configs() -> list[str]:
    """Names of the study files shipped in :mod:`paretoedge.configs`."""
    root = resources.files("paretoedge.configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def read_config_text(path_or_name: str | Path) -> str:
    """The YAML text of a study: a file path, or a bundled name (``quickstart``).

    Raises:
        ConfigError: No such file or bundled name, unreadable, larger than
            :data:`paretoedge._yaml.MAX_BYTES`, or not UTF-8 text.
    """
    source = str(path_or_name)
    if not source or len(source) > PATH_MAX or "\x00" in source:
        raise ConfigError("config", source, f"a YAML file or one of {bundled_configs()}")
    p = Path(path_or_name)
    try:
        is_file = p.is_file()
    except OSError:
        is_file = False
    if is_file:
        try:
            with p.open("rb") as handle:
                data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise ConfigError("config", source, f"a readable file ({exc.strerror})") from None
        return decode_text(data, source)
    name = p.name[:-5] if p.name.endswith(".yaml") else p.name
    if name in bundled_configs():
        res = resources.files("paretoedge.configs").joinpath(f"{name}.yaml")
        return decode_text(res.read_bytes(), name)
    raise ConfigError("config", source, f"a YAML file or one of {bundled_configs()}")


def load_config(
    path_or_name: str | Path,
    overrides: Sequence[str] = (),
    *,
    check_names: bool = True,
    data_dir: Path | None = None,
    local_paths: bool = True,
) -> StudyConfig:
    """Read, override and validate a study file (see :func:`parse_config`).

    The YAML is read with the limits of :mod:`paretoedge._yaml` (size, depth, aliases).
    """
    text = read_config_text(path_or_name)
    data = load_yaml(text, str(path_or_name))
    if not isinstance(data, dict):
        raise ConfigError("config", str(path_or_name), "a YAML mapping of study fields")
    return parse_config(
        apply_overrides(data, overrides),
        check_names=check_names,
        data_dir=data_dir,
        local_paths=local_paths,
    )
