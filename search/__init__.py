"""The search: study configuration, space, runner, backends, fronts and Pareto computation.

Most users want the Python API (:func:`paretoedge.create_study`, :func:`paretoedge.load_study`);
the names here are the pieces behind it, for plug-ins (an :class:`Evaluator`, a
:class:`Backend`) and tools. Importing this package loads no torch, Optuna, TVM or Ray.
"""

from __future__ import annotations

from paretoedge.search._backends import BACKENDS, Backend, OptunaBackend, get_backend
from paretoedge.search._build import BuiltCandidate, CandidateBuilder, build_candidate
from paretoedge.search._cheap_metrics import SCREENED_ATTR, Screen, StructuralMetrics, screen
from paretoedge.search._config import (
    Budget,
    Constraint,
    DataSpec,
    ObjectiveSpec,
    ParamSpec,
    RecoverySpec,
    SamplerSpec,
    StudyConfig,
    apply_overrides,
    bundled_configs,
    load_config,
    parse_config,
    read_config_text,
)
from paretoedge.search._evaluator import (
    CandidateResult,
    Evaluator,
    EvaluatorFactory,
    LookupEvaluator,
    PipelineEvaluator,
)
from paretoedge.search._fronts import DeviceFront, rank_by, rank_candidates
from paretoedge.search._maintenance import add_device, config_of, resume_runner
from paretoedge.search._optuna_adapter import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S
from paretoedge.search._pareto import (
    DIRECTIONS,
    Direction,
    dominates,
    hypervolume,
    hypervolume_brute_force,
    non_dominated_sort,
    pareto_front,
)
from paretoedge.search._results import evaluation_of, normalize_flat
from paretoedge.search._runner import BASELINE_ATTR, TWIN_ATTR, SearchRunner, SearchSummary
from paretoedge.search._samplers import SAMPLERS, halving_pruner, sampler_for
from paretoedge.search._space import (
    BASELINE_SPECS,
    baseline_flat,
    baseline_params,
    baseline_spec,
    candidate_flat,
    candidate_spec,
    enumerate_space,
    space_size,
    suggest,
)

__all__ = [
    "BACKENDS",
    "BASELINE_ATTR",
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "SAMPLERS",
    "TWIN_ATTR",
    "Backend",
    "BuiltCandidate",
    "CandidateBuilder",
    "CandidateResult",
    "DeviceFront",
    "Evaluator",
    "EvaluatorFactory",
    "LookupEvaluator",
    "OptunaBackend",
    "PipelineEvaluator",
    "SearchRunner",
    "SearchSummary",
    "add_device",
    "build_candidate",
    "config_of",
    "evaluation_of",
    "get_backend",
    "halving_pruner",
    "normalize_flat",
    "rank_by",
    "rank_candidates",
    "resume_runner",
    "sampler_for",
    "BASELINE_SPECS",
    "DIRECTIONS",
    "SCREENED_ATTR",
    "Screen",
    "StructuralMetrics",
    "screen",
    "Budget",
    "Constraint",
    "DataSpec",
    "Direction",
    "ObjectiveSpec",
    "ParamSpec",
    "RecoverySpec",
    "SamplerSpec",
    "StudyConfig",
    "apply_overrides",
    "baseline_flat",
    "baseline_params",
    "baseline_spec",
    "bundled_configs",
    "candidate_flat",
    "candidate_spec",
    "enumerate_space",
    "load_config",
    "parse_config",
    "read_config_text",
    "space_size",
    "suggest",
    "dominates",
    "hypervolume",
    "hypervolume_brute_force",
    "non_dominated_sort",
    "pareto_front",
]
