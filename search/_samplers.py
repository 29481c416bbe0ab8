"""Optuna samplers and the early-stopping pruner of a study, by name.

Why a registry: ``sampler.name`` in a study file picks one of these, and a new sampler is
one registered factory (the config's list of names and option rules, in
:mod:`paretoedge.search._config` and :mod:`paretoedge.search._sampler_options`, must name
it too). Each factory gets the study config, the seed to use and the options already
checked against Optuna's limits, and imports Optuna (or scikit-learn) only when called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paretoedge._registry import Registry

if TYPE_CHECKING:
    import optuna

    from paretoedge.search._config import StudyConfig
    from paretoedge.search._evaluator import Evaluator
    from paretoedge.search._runner import SearchRunner


@dataclass(frozen=True)
class SamplerRequest:
    """What a sampler factory gets.

    Attributes:
        config: The study.
        seed: The seed to use (the study's, offset for a joining process).
        options: ``sampler.options``, validated.
        runner: The runner whose evaluator a costing sampler may use (None outside a run).
    """

    config: StudyConfig
    seed: int
    options: dict[str, Any]
    runner: SearchRunner | None


SamplerFactory = Callable[[SamplerRequest], "optuna.samplers.BaseSampler"]

#: ``sampler.name`` -> factory.
SAMPLERS: Registry[SamplerFactory] = Registry("sampler.name")


@SAMPLERS.register("nsga2")
def _nsga2(req: SamplerRequest) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=req.seed, **req.options)


@SAMPLERS.register("tpe")
def _tpe(req: SamplerRequest) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.TPESampler(seed=req.seed, **req.options)


@SAMPLERS.register("gp")
def _gp(req: SamplerRequest) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.GPSampler(seed=req.seed, **req.options)


@SAMPLERS.register("random")
def _random(req: SamplerRequest) -> optuna.samplers.BaseSampler:
    import optuna

    return optuna.samplers.RandomSampler(seed=req.seed)


@SAMPLERS.register("screening")
def _screening(req: SamplerRequest) -> optuna.samplers.BaseSampler:
    """Costs candidates with the runner's evaluator (default: the real pipeline for the
    config, built on first use)."""
    from paretoedge.search._screening import ScreeningSampler, evaluator_metrics

    try:
        import sklearn  # noqa: F401  (its Gaussian process models accuracy)
    except ImportError:
        from paretoedge.errors import MissingExtraError

        raise MissingExtraError("scikit-learn", "screening") from None

    runner = req.runner
    devices = runner.devices if runner is not None else req.config.devices
    evaluator_of = (lambda: runner.evaluator) if runner is not None else _lazy(req.config)
    return ScreeningSampler(
        req.config,
        metrics=evaluator_metrics(evaluator_of, devices),
        devices=devices,
        seed=req.seed,
        **req.options,
    )


def _lazy(config: StudyConfig) -> Callable[[], Evaluator]:
    built: list[Evaluator] = []

    def get() -> Evaluator:
        if not built:
            from paretoedge.search._evaluator import PipelineEvaluator

            built.append(PipelineEvaluator(config))
        return built[0]

    return get


def sampler_for(
    config: StudyConfig, *, seed_offset: int = 0, runner: SearchRunner | None = None
) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler, seeded with the study's seed (plus ``seed_offset``).

    Raises:
        UnknownNameError: ``sampler.name`` is not registered (the config's validation
            refuses such a name first).
    """
    factory = SAMPLERS.get(config.sampler.name)
    seed = (config.seed + seed_offset) % 2**32  # NumPy's seed range, whatever the offset
    return factory(SamplerRequest(config, seed, dict(config.sampler.options), runner))


def joining_sampler(
    config: StudyConfig, study: optuna.Study, *, runner: SearchRunner | None = None
) -> optuna.samplers.BaseSampler:
    """The sampler of a process joining (or resuming) ``study``.

    It must not replay the random stream of the first process, or it would propose the same
    candidates again: its seed is offset by the number of trials already there
    (deterministic for a given history; no offset for a new study).
    """
    return sampler_for(config, seed_offset=len(study.get_trials(deepcopy=False)), runner=runner)


def halving_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """The multi-objective successive-halving early stopper of ``config.early_stopping``."""
    from paretoedge.search._multifidelity import HalvingConfig, ParetoHalvingPruner

    es = config.early_stopping
    assert es is not None
    return ParetoHalvingPruner(
        HalvingConfig(
            min_fidelity=es.min_steps,
            eta=es.eta,
            min_peers=es.min_peers,
            min_dominators=es.min_dominators,
        ),
        [o.direction for o in config.objectives],
    )
