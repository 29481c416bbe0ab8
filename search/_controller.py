"""The search controller: one multi-objective Optuna study per paretoedge study.

For each trial: sample a candidate (baselines first) -> :class:`Evaluator` (compress with the
recovery budget, validation accuracy, ONNX export once, every device's hardware model) ->
constraints through ``trial.set_constraint`` -> store the candidate, its device metrics and
its ONNX artifact -> recompute and store the ranked front of every device.

Optuna's RDB storage lives in the same database as the paretoedge tables, with a heartbeat:
a trial whose process died is failed once its heartbeat is stale and re-enqueued
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so :func:`resume_study` retries
it while completed trials are never recomputed. Every trial is asked under a budget claim
that records its owning process (:mod:`paretoedge.storage._claims`), so the budget holds
across workers and a run finishes the trials of dead local owners at once
(:mod:`paretoedge.search._recovery`) instead of after the heartbeat grace.

How trials are executed is a *backend* (``"optuna"``: ``study.optimize`` in this process;
``"ray"``: workers of a Ray cluster), looked up by name and imported lazily. Backends call
:meth:`SearchRunner.objective` and may pass an Optuna pruner to :class:`SearchRunner`.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import importlib
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from paretoedge._describe import describe_spec
from paretoedge.errors import ConfigError, ParetoEdgeError, UnknownNameError
from paretoedge.objectives import DeviceMetrics, Direction, Evaluation
from paretoedge.search._config import StudyConfig, parse_config
from paretoedge.search._evaluator import CandidateResult, Evaluator, PipelineEvaluator
from paretoedge.search._pareto import non_dominated_sort
from paretoedge.search._space import baseline_flat, baseline_params, candidate_flat, suggest

if TYPE_CHECKING:
    import optuna

    from paretoedge.storage import CandidateRecord, Storage, StudyStatus

_log = logging.getLogger(__name__)

#: Trial user attribute naming the baseline a trial evaluates.
BASELINE_ATTR = "paretoedge.baseline"
#: Trial user attribute naming the complete trial whose stored result a duplicate reused.
TWIN_ATTR = "paretoedge.twin_of"
#: Seconds between heartbeats of a running trial, and after which a silent one is stale.
HEARTBEAT_INTERVAL_S = 5
GRACE_PERIOD_S = 15

EvaluatorFactory = Callable[[StudyConfig], Evaluator]


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's experimental-feature warnings (heartbeat, metric names, GP) and
    its per-trial INFO logs; paretoedge reports progress itself."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


def _default_evaluator(config: StudyConfig) -> Evaluator:
    return PipelineEvaluator(config)


# -------------------------------------------------------------------------- backends


class Backend(abc.ABC):
    """Executes the trials of a :class:`SearchRunner`.

    Contract: run at most ``n_trials`` more trials (``None``: no trial limit) for at most
    ``timeout`` seconds, each by calling ``runner.objective(trial)`` on a trial of
    ``runner.study`` (or of a study loaded from ``runner.optuna_storage()`` in a worker);
    return when done. Errors of single trials must not stop the search; a
    :class:`KeyboardInterrupt` must propagate after the running trials are failed.
    """

    @abc.abstractmethod
    def run(self, runner: SearchRunner, *, n_trials: int | None, timeout: float | None) -> None: ...


class OptunaBackend(Backend):
    """Trials run one after another in this process with ``study.optimize``.

    Args:
        gc_after_trial: Run the garbage collector after each trial (frees the compressed
            model's reference cycles before the next one is built; costs ~0.1 s a trial).
    """

    def __init__(self, *, gc_after_trial: bool = True) -> None:
        self.gc_after_trial = gc_after_trial

    def run(self, runner: SearchRunner, *, n_trials: int | None, timeout: float | None) -> None:

        import time

        # One trial per optimize() call, each under a budget claim taken in the database
        # (see paretoedge.storage._claims): N processes on a budget of N trials finish N.
        deadline = None if timeout is None else time.monotonic() + timeout
        started = 0
        while n_trials is None or started < n_trials:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            if not runner.claim_trial():
                break
            started += 1
            try:
                with quiet_optuna():
                    runner.study.optimize(
                        runner.objective,
                        n_trials=1,
                        timeout=left,
                        catch=(ParetoEdgeError,),
                        gc_after_trial=self.gc_after_trial,
                    )
            finally:
                runner.release_claim()


#: Backend name -> "module:Class", imported on first use (Ray is heavy and optional).
BACKENDS: dict[str, str] = {
    "optuna": "paretoedge.search._controller:OptunaBackend",
    "ray": "paretoedge.search._ray_backend:RayBackend",
}


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate the backend registered as ``name``."""
    if name not in BACKENDS:
        raise UnknownNameError("backend", name, BACKENDS)
    module_name, _, cls_name = BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        from paretoedge.errors import MissingExtraError

        raise MissingExtraError(exc.name or module_name, name) from exc
    return getattr(module, cls_name)(**options)


# ---------------------------------------------------------------------------- runner


@dataclass(frozen=True)
class DeviceFront:
    """One device's ranked front (rank 0 first, then by trial number)."""

    device: str
    ranks: Mapping[int, int]  # trial number -> rank
    front: tuple[int, ...]  # trial numbers of rank 0


@dataclass(frozen=True)
class SearchSummary:
    """What a finished (or interrupted) run leaves in the database."""

    study: str
    storage: str
    trials_complete: int
    trials_failed: int
    fronts: Mapping[str, DeviceFront] = field(default_factory=dict)
    #: Trials stopped before training because they could enter no device's front.
    trainings_saved: int = 0


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


def sampler_for(
    config: StudyConfig, *, seed_offset: int = 0, runner: SearchRunner | None = None
) -> optuna.samplers.BaseSampler:
    """The configured Optuna sampler, seeded with the study's seed (plus ``seed_offset``).

    The screening sampler costs candidates with ``runner``'s evaluator (default: the real
    pipeline for ``config``, built on first use)."""
    import optuna

    opts = dict(config.sampler.options)
    name = config.sampler.name
    seed = (config.seed + seed_offset) % 2**32  # NumPy's seed range, whatever the offset
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, **opts)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **opts)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **opts)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "screening":
        from paretoedge.search._screening import ScreeningSampler, evaluator_metrics

        try:
            import sklearn  # noqa: F401  (its Gaussian process models accuracy)
        except ImportError:
            from paretoedge.errors import MissingExtraError

            raise MissingExtraError("scikit-learn", "screening") from None

        devices = runner.devices if runner is not None else config.devices
        evaluator_of = (lambda: runner.evaluator) if runner is not None else _lazy(config)
        return ScreeningSampler(
            config,
            metrics=evaluator_metrics(evaluator_of, devices),
            devices=devices,
            seed=seed,
            **opts,
        )
    raise ConfigError("sampler.name", name, ("nsga2", "tpe", "gp", "random", "screening"))


def _lazy(config: StudyConfig) -> Callable[[], Evaluator]:
    built: list[Evaluator] = []

    def get() -> Evaluator:
        if not built:
            built.append(_default_evaluator(config))
        return built[0]

    return get


def open_optuna_storage(
    url: str, *, heartbeat_interval: int = HEARTBEAT_INTERVAL_S, grace_period: int = GRACE_PERIOD_S
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage on the same database, with heartbeat and stale-trial retry.

    A trial whose heartbeat is older than ``grace_period`` seconds is failed by the next
    process that looks (a resumed run, another worker) and its parameters are queued again
    (up to 3 times) with :class:`optuna.storages.RetryHeartbeatStaleTrialCallback`.
    """
    import optuna

    from paretoedge.storage import optuna_storage

    with quiet_optuna():
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
        return optuna_storage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=callback,
        )


class SearchRunner:
    """Owns one study: its config, database handles, evaluator and front bookkeeping.

    Args:
        config: The validated study.
        storage_url: Database URL (SQLite file or PostgreSQL).
        study_name: Name in the database (default: ``config.name``).
        evaluator_factory: Builds the evaluator (default: the real pipeline). Called once,
            lazily, in the process that evaluates.
        pruner: An Optuna pruner (e.g. the multi-objective early stopper) for the study.
        progress: Show a Rich live display of trials and per-device fronts.
        artifacts_dir: Where ONNX files go (default: ``<home>/artifacts/<study directory>``,
            see :func:`paretoedge.search._names.study_dirname`).
        heartbeat_interval, grace_period: Heartbeat of running trials, in seconds.
    """

    def __init__(
        self,
        config: StudyConfig,
        *,
        storage_url: str,
        study_name: str | None = None,
        evaluator_factory: EvaluatorFactory | None = None,
        pruner: optuna.pruners.BasePruner | None = None,
        progress: bool = False,
        artifacts_dir: Path | None = None,
        heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
        grace_period: int = GRACE_PERIOD_S,
        extra_devices: Sequence[str] = (),
    ) -> None:
        from paretoedge.search._names import study_dirname
        from paretoedge.settings import get_settings

        self.config = config
        self.storage_url = storage_url
        self.name = study_name or config.name
        self._evaluator_factory = evaluator_factory or _default_evaluator
        self._evaluator: Evaluator | None = None
        if pruner is None and config.early_stopping is not None:
            pruner = halving_pruner(config)
        self.pruner = pruner
        self.progress = progress
        # The name is data; the directory is one safe component derived from it.
        self.artifacts_dir = artifacts_dir or get_settings().home / "artifacts" / study_dirname(
            self.name
        )
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self._storage: Storage | None = None
        self._study: optuna.Study | None = None
        self._display: _Display | None = None
        self._claim_id: int | None = None
        self.created = False
        self._screens: bool | None = None
        #: Devices scored and ranked: the config's plus those added later (add-device).
        self.devices: tuple[str, ...] = tuple(dict.fromkeys([*config.devices, *extra_devices]))

    # -- handles ------------------------------------------------------------------

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            from paretoedge.storage import open_storage

            self._storage = open_storage(self.storage_url)
        return self._storage

    @property
    def evaluator(self) -> Evaluator:
        if self._evaluator is None:
            self._evaluator = self._evaluator_factory(self.config)
        return self._evaluator

    @property
    def evaluator_factory(self) -> EvaluatorFactory:
        """What builds this runner's evaluator (passed on to add-device and the API)."""
        return self._evaluator_factory

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self.setup()
        assert self._study is not None
        return self._study

    def optuna_storage(self) -> optuna.storages.RDBStorage:
        return open_optuna_storage(
            self.storage_url,
            heartbeat_interval=self.heartbeat_interval,
            grace_period=self.grace_period,
        )

    def setup(self) -> optuna.Study:
        """Create (or join) the study in both the paretoedge tables and Optuna.

        Idempotent and safe for concurrent workers: the paretoedge study row is unique by
        name, and only the process whose Optuna study was new enqueues the baselines.
        """

        from paretoedge import storage as st

        cfg = self.config
        st.create_study(
            self.storage,
            name=self.name,
            config=cfg.to_dict(),
            devices=list(self.devices),
            objectives=[
                {"name": o.name, "device": o.device, "direction": o.direction}
                for o in cfg.objectives
            ],
            seed=cfg.seed,
            optuna_study_name=self.name,
        )
        ostorage = self.optuna_storage()
        directions: list[Direction] = [o.direction for o in cfg.objectives]
        from paretoedge.storage._optuna import _init_lock

        # Under the cross-process set-up lock: a process killed between creating the Optuna
        # study and enqueuing the baselines leaves a study that the next one completes
        # (exactly once, whoever comes first).
        with quiet_optuna(), _init_lock(self.storage.engine.url, self.storage.engine):
            return self._setup_optuna(ostorage, directions)

    def _setup_optuna(
        self, ostorage: optuna.storages.RDBStorage, directions: list[Direction]
    ) -> optuna.Study:
        import optuna

        cfg = self.config
        try:
            study = optuna.create_study(
                storage=ostorage,
                study_name=self.name,
                directions=directions,
                sampler=sampler_for(cfg, runner=self),
                pruner=self.pruner,
            )
            self.created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(
                study_name=self.name,
                storage=ostorage,
                sampler=sampler_for(cfg, runner=self),
                pruner=self.pruner,
            )
            # A process joining (or resuming) a study must not replay the random stream of
            # the first one, or it would propose the same candidates again: offset the seed
            # by the number of trials already there (deterministic for a given history).
            n = len(study.get_trials(deepcopy=False))
            if n:
                study.sampler = sampler_for(cfg, seed_offset=n, runner=self)
        if not study.metric_names:
            study.set_metric_names([o.label for o in cfg.objectives])
        enqueued = {t.user_attrs.get(BASELINE_ATTR) for t in study.get_trials(deepcopy=False)}
        for name in cfg.baselines:
            if name not in enqueued:
                study.enqueue_trial(
                    baseline_params(name, cfg.space),
                    user_attrs={BASELINE_ATTR: name},
                    skip_if_exists=False,
                )
        self._study = study
        return study

    # -- budget claims -------------------------------------------------------------

    def claim_trial(self) -> bool:
        """Take one slot of the study's trial budget in the database before asking Optuna
        for a trial; ``False`` when the budget is used up (by every worker together).

        The claim is bound to the trial by :meth:`objective` (first thing it writes).
        """
        from paretoedge.storage._claims import claim_trial
        from paretoedge.storage._owner import current_owner

        _ = self.study  # the study and its baselines exist before any claim
        self._claim_id = claim_trial(
            self.storage,
            study=self.name,
            budget=self.config.budget.trials,
            owner=current_owner(),
            stale_after_s=self.grace_period,
        )
        return self._claim_id is not None

    def bind_claim(self, trial_number: int) -> None:
        """Record this process as the owner of trial ``trial_number``, binding the claim
        taken for it (if this process took one; a Ray worker takes over its driver's)."""
        from paretoedge.storage._claims import bind_claim
        from paretoedge.storage._owner import current_owner

        claim_id, self._claim_id = self._claim_id, None
        bind_claim(
            self.storage,
            study=self.name,
            trial_number=trial_number,
            owner=current_owner(),
            claim_id=claim_id,
        )

    def release_claim(self) -> None:
        """Give back a claim no trial was started for (the timeout hit, ``ask`` failed)."""
        from paretoedge.storage._claims import release_claim

        claim_id, self._claim_id = self._claim_id, None
        if claim_id is not None:
            release_claim(self.storage, claim_id=claim_id)

    # -- one trial ----------------------------------------------------------------

    def objective(self, trial: optuna.Trial) -> tuple[float, ...]:
        """Evaluate one trial and store everything about it (see the module docstring)."""
        from paretoedge import storage as st

        cfg = self.config
        baseline = trial.user_attrs.get(BASELINE_ATTR)
        params = suggest(trial, cfg.space)
        flat = normalize_flat(baseline_flat(baseline) if baseline else candidate_flat(cfg, params))
        number = trial.number
        # Record a heartbeat before the candidate becomes visible as running: a process
        # killed before Optuna's heartbeat thread first wrote would leave a trial that never
        # turns stale (no heartbeat row), so resume could not retry it.
        from optuna.storages._heartbeat import is_heartbeat_enabled

        if is_heartbeat_enabled(trial.study._storage):
            trial.study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
        # The trial's owner (this process) goes into its claim first: `resume` fails the
        # trial of a dead local owner at once instead of after the heartbeat grace.
        self.bind_claim(number)
        st.upsert_candidate(
            self.storage,
            study=self.name,
            trial_number=number,
            state="running",
            spec=flat,
            is_baseline=bool(baseline),
            baseline_name=baseline,
        )
        if self._display:
            self._display.start_trial(number, baseline or describe_spec(flat))
        try:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            onnx_path = self.artifacts_dir / f"trial-{number:05d}.onnx"
            rungs, on_rung = self._rung_hook(trial, flat)
            twin = None if rungs else self._completed_twin(flat)
            if twin is not None:
                result = twin
                trial.set_user_attr(TWIN_ATTR, twin.twin_of)
            else:
                if not baseline and self._screen_can_reject():
                    self._screen_before_training(trial, flat)
                result = self.evaluator.evaluate(
                    flat, devices=self.devices, onnx_path=onnx_path, rungs=rungs, on_rung=on_rung
                )
            if result.pruned:
                self.store_result(number, result, baseline=baseline, state="pruned")
                import optuna

                raise optuna.TrialPruned(f"stopped at {result.fidelity} recovery steps")
            values = self.objective_values(result.evaluation)
            for c in cfg.constraints:
                gap = c.value(result.evaluation) - c.bound
                trial.set_constraint(c.label, gap if c.op == "<=" else -gap)
        except BaseException as exc:
            if type(exc).__name__ != "TrialPruned":
                st.upsert_candidate(
                    self.storage,
                    study=self.name,
                    trial_number=number,
                    state="failed",
                    spec=flat,
                    is_baseline=bool(baseline),
                    baseline_name=baseline,
                )
            if isinstance(exc, KeyboardInterrupt):
                # Ctrl-C: Optuna fails this trial; queue its parameters again so that
                # `paretoedge resume` evaluates them first (a killed process is handled by
                # the heartbeat instead).
                with quiet_optuna():
                    trial.study.enqueue_trial(
                        params,
                        user_attrs={BASELINE_ATTR: baseline} if baseline else None,
                        skip_if_exists=False,
                    )
            raise
        self.store_result(number, result, baseline=baseline)
        fronts = self.update_fronts()
        if self._display:
            self._display.finish_trial(number, result, fronts)
        return values

    def _screen_can_reject(self) -> bool:
        """Whether the structural screen can stop a candidate in this study: a constraint
        that needs no accuracy, a microcontroller (flash/SRAM limits models do break), or
        the screening sampler (which costs candidates anyway). Elsewhere the untrained
        export it needs would be paid on every trial for nothing."""
        if self._screens is None:
            from paretoedge.hardware_profiles import load_profile
            from paretoedge.search._cheap_metrics import EXPENSIVE_METRICS

            cfg = self.config
            self._screens = (
                cfg.sampler.name == "screening"
                or any(c.metric not in EXPENSIVE_METRICS for c in cfg.constraints)
                or any(_device_kind(d, load_profile) == "mcu" for d in self.devices)
            )
        return self._screens

    def _screen_before_training(self, trial: optuna.Trial, flat: Mapping[str, Any]) -> None:
        """Cost ``flat`` on every device from its structure; stop it untrained (Optuna:
        pruned, candidate: pruned at fidelity 0 with its device metrics and size) when it
        can enter no device's front (:func:`~paretoedge.search._cheap_metrics.screen`).
        The trial still counts against the budget and samplers see it."""
        import time

        from paretoedge import storage as st
        from paretoedge.search._cheap_metrics import SCREENED_ATTR, screen
        from paretoedge.storage import DeviceMetricsRecord

        start = time.perf_counter()
        metrics = self.evaluator.structural_metrics(flat, self.devices)
        if metrics is None:
            return
        verdict = screen(self.config, metrics, self.devices)
        if verdict.trainable:
            return
        rec = st.upsert_candidate(
            self.storage,
            study=self.name,
            trial_number=trial.number,
            state="pruned",
            spec=dict(flat),
            size_bytes=metrics.size_bytes,
            parameters=metrics.parameters,
            sparsity=metrics.sparsity,
            fidelity=0,
            wall_s=time.perf_counter() - start,
        )
        st.upsert_device_metrics_many(
            self.storage,
            metrics=[
                _metrics_record(DeviceMetricsRecord, rec.id, d, m)
                for d, m in metrics.devices.items()
            ],
        )
        trial.set_user_attr(SCREENED_ATTR, verdict.describe())
        import optuna

        raise optuna.TrialPruned(f"screened out before training: {verdict.describe()}")

    def _completed_twin(self, flat: Mapping[str, Any]) -> CandidateResult | None:
        """The stored result of a complete candidate with the same spec, if there is one.

        Samplers propose a configuration again (NSGA-II's crossover and mutation on a small
        discrete space often do). The evaluator is deterministic for a spec (it seeds
        compression and recovery with the study seed), so re-evaluating would store the same
        numbers at the cost of a full compression; the twin's accuracy, size and device
        metrics are reused instead (Optuna still records the trial, so samplers see it).
        Only full-fidelity twins that have every device of this run qualify; with early
        stopping active a trial goes through its rungs as usual.
        """
        from paretoedge import storage as st

        key = _spec_key(flat)
        for c in st.list_candidates(self.storage, study=self.name, states=["complete"]):
            if c.is_baseline or _spec_key(c.spec) != key:
                continue
            if any(c.metrics_for(d) is None for d in self.devices):
                continue
            return CandidateResult(
                flat=dict(c.spec),
                evaluation=evaluation_of(c),
                onnx_path=_onnx_artifact(self.storage, c.id),
                fidelity=int(c.fidelity or 0),
                wall_s=0.0,
                twin_of=c.trial_number,
            )
        return None

    def _rung_hook(
        self, trial: optuna.Trial, flat: Mapping[str, Any]
    ) -> tuple[tuple[int, ...], Callable[[int, Evaluation], bool] | None]:
        """Rungs and the callback reporting partial points to the early stopper."""
        rungs_of = getattr(self.pruner, "rungs", None)
        steps = int(flat.get("recovery.steps", 0) or 0)
        if rungs_of is None or steps <= 0 or trial.user_attrs.get(BASELINE_ATTR):
            return (), None
        from paretoedge.search._multifidelity import report_intermediate

        pruner = self.pruner

        def on_rung(step: int, evaluation: Evaluation) -> bool:
            point = self.objective_values(evaluation)
            violation = sum(c.violation(evaluation) for c in self.config.constraints)
            report_intermediate(trial, step, point, violation=violation)
            frozen = trial.study._storage.get_trial(trial._trial_id)
            return bool(pruner.prune(trial.study, frozen))  # type: ignore[union-attr]

        return tuple(rungs_of(steps)), on_rung

    def objective_values(self, evaluation: Evaluation) -> tuple[float, ...]:
        """The study's objective vector (Optuna's order) for one evaluation."""
        values = tuple(o.value(evaluation) for o in self.config.objectives)
        for o, v in zip(self.config.objectives, values, strict=True):
            if math.isnan(v):
                raise ConfigError(o.label, v, "a number (the evaluator returned NaN)")
        return values

    def store_result(
        self,
        trial_number: int,
        result: CandidateResult,
        *,
        baseline: str | None = None,
        state: Literal["complete", "pruned"] = "complete",
    ) -> CandidateRecord:
        """Write a complete (or early-stopped) candidate, its device metrics and its ONNX
        artifact. Only complete candidates are ranked into fronts."""
        from paretoedge import storage as st
        from paretoedge.storage import DeviceMetricsRecord

        ev = result.evaluation
        rec = st.upsert_candidate(
            self.storage,
            study=self.name,
            trial_number=trial_number,
            state=state,
            spec=dict(result.flat),
            accuracy=ev.accuracy,
            size_bytes=ev.size_bytes,
            parameters=ev.parameters,
            sparsity=ev.sparsity,
            fidelity=result.fidelity,
            wall_s=result.wall_s,
            is_baseline=baseline is not None,
            baseline_name=baseline,
        )
        st.upsert_device_metrics_many(
            self.storage,
            metrics=[
                _metrics_record(DeviceMetricsRecord, rec.id, d, m) for d, m in ev.devices.items()
            ],
        )
        if result.onnx_path is not None and result.onnx_path.is_file():
            data = result.onnx_path.read_bytes()
            st.add_artifact(
                self.storage,
                candidate_id=rec.id,
                kind="onnx",
                path=str(result.onnx_path),
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
            )
        return rec

    # -- fronts ---------------------------------------------------------------------

    def update_fronts(self, devices: Sequence[str] | None = None) -> dict[str, DeviceFront]:
        """Rank the study's complete candidates on each device and store the ranking.

        Several workers rank concurrently, each from its own snapshot, and the last write
        wins: after writing, the complete candidates are listed again and, if they changed
        meanwhile (another worker finished one), ranked again, so the front stored last is
        never older than the candidates any worker saw.
        """
        from paretoedge import storage as st

        def snapshot(cands: Sequence[CandidateRecord]) -> set[tuple[int, tuple[str, ...]]]:
            return {(c.trial_number, tuple(m.device for m in c.metrics)) for c in cands}

        candidates = st.list_candidates(self.storage, study=self.name, states=["complete"])
        for _ in range(5):
            out = self._store_fronts(candidates, devices)
            again = st.list_candidates(self.storage, study=self.name, states=["complete"])
            if snapshot(again) == snapshot(candidates):
                break
            candidates = again
        return out

    def _store_fronts(
        self, candidates: Sequence[CandidateRecord], devices: Sequence[str] | None
    ) -> dict[str, DeviceFront]:
        from paretoedge import storage as st

        out = {}
        for device in devices or self.devices:
            ranks = rank_candidates(self.config, device, candidates)
            by_id = {c.trial_number: c.id for c in candidates}
            st.replace_front(
                self.storage,
                study=self.name,
                device=device,
                ranks={by_id[n]: r for n, r in ranks.items()},
            )
            out[device] = DeviceFront(
                device=device,
                ranks=ranks,
                front=tuple(sorted(n for n, r in ranks.items() if r == 0)),
            )
        return out

    def fill_test_accuracy(self, fronts: Mapping[str, DeviceFront]) -> int:
        """Measure test accuracy of front members, and of the baselines (shown beside every
        front for reference), that do not have it yet (ONNX on disk)."""
        from paretoedge import storage as st

        baselines = {
            c.trial_number
            for c in st.list_candidates(self.storage, study=self.name, states=["complete"])
            if c.is_baseline
        }
        members = sorted({n for f in fronts.values() for n in f.front} | baselines)
        done = 0
        for n in members:
            cand = st.get_candidate(self.storage, study=self.name, trial_number=n)
            if cand.test_accuracy is not None:
                continue
            path = _onnx_artifact(self.storage, cand.id)
            if path is None:
                continue
            acc = self.evaluator.test_accuracy(path)
            if acc is None:
                return done
            st.set_test_accuracy(self.storage, study=self.name, trial_number=n, test_accuracy=acc)
            done += 1
        return done

    # -- a whole run ----------------------------------------------------------------

    def run(
        self,
        *,
        n_trials: int | None = None,
        timeout: float | None = None,
        backend: str | Backend = "optuna",
    ) -> SearchSummary:
        """Run the study until its trial budget (or ``n_trials`` more trials, or the
        timeout) is reached, then store fronts and the front members' test accuracy.

        The trial budget counts complete and pruned trials already in the database, so a
        resumed study only runs what is missing.
        """
        import optuna

        from paretoedge import storage as st
        from paretoedge.search._recovery import recover

        study = self.study
        recover(self, study)
        budget = self.config.budget
        done = _count(study, (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        remaining = None if budget.trials is None else max(0, budget.trials - done)
        if n_trials is not None:
            remaining = n_trials if remaining is None else min(n_trials, remaining)
        timeout = timeout if timeout is not None else budget.timeout_s
        be = get_backend(backend) if isinstance(backend, str) else backend
        st.set_study_status(self.storage, study=self.name, status="running")
        status: StudyStatus = "stopped"
        try:
            if remaining is None or remaining > 0:
                if self.progress:
                    self._display = _Display(self, total=remaining)
                    with self._display:
                        be.run(self, n_trials=remaining, timeout=timeout)
                else:
                    be.run(self, n_trials=remaining, timeout=timeout)
            status = "running"
        except KeyboardInterrupt:
            status = "stopped"
            raise
        finally:
            self._display = None
            recover(self, study)
            fronts = self.update_fronts()
            if status == "running":
                # Decided last: recovery may have completed trials, and other workers may
                # have finished the budget while this one stored its fronts.
                status = _final_status(self, study)
            st.set_study_status(self.storage, study=self.name, status=status)
        self.fill_test_accuracy(fronts)
        return self.summary(fronts)

    def sync_failed(self, study: optuna.Study) -> int:
        """Mark candidates failed whose Optuna trial failed while their process was gone
        (a row left ``running``, or ``complete`` when the heartbeat failed the trial after
        its result was written: the retry re-evaluates it, and rows follow trial states).

        A trial can also die before its worker wrote any candidate row (a Ray driver killed
        between creating the trial and the worker starting it): it gets a failed row with the
        spec of its parameters, so every Optuna trial keeps exactly one candidate row.
        """
        import optuna

        from paretoedge import storage as st

        failed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        rows = {c.trial_number: c for c in st.list_candidates(self.storage, study=self.name)}
        n = 0
        for t in failed:
            row = rows.get(t.number)
            if row is not None and row.state == "failed":
                continue
            baseline = t.user_attrs.get(BASELINE_ATTR)
            if row is not None:
                spec = dict(row.spec)
                baseline = row.baseline_name if row.is_baseline else baseline
            elif baseline:
                spec = baseline_flat(baseline)
            else:
                spec = normalize_flat(candidate_flat(self.config, t.params))
            st.upsert_candidate(
                self.storage,
                study=self.name,
                trial_number=t.number,
                state="failed",
                spec=spec,
                is_baseline=bool(baseline),
                baseline_name=baseline,
            )
            n += 1
        return n

    def summary(self, fronts: Mapping[str, DeviceFront] | None = None) -> SearchSummary:
        import optuna

        study = self.study
        fronts = fronts if fronts is not None else self.update_fronts()
        return SearchSummary(
            study=self.name,
            storage=self.storage.url,
            trials_complete=_count(study, (optuna.trial.TrialState.COMPLETE,)),
            trials_failed=_count(study, (optuna.trial.TrialState.FAIL,)),
            fronts=fronts,
            trainings_saved=screened_out(study),
        )


def _final_status(runner: SearchRunner, study: optuna.Study) -> StudyStatus:
    import optuna

    trials = runner.config.budget.trials
    done = _count(study, (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    if trials is None or done >= trials:
        return "finished"
    if done == 0 and _count(study, (optuna.trial.TrialState.FAIL,)) > 0:
        return "failed"
    return "stopped"


def normalize_flat(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The flat spec as ``CompressionSpec.to_flat()`` writes it (every field of every enabled
    transform), so stored specs are complete and compare equal across runs. An invalid spec
    is returned as given; evaluating it fails the trial with the compression config's error."""
    from paretoedge.compression import CompressionSpec

    try:
        return CompressionSpec.from_flat(flat).to_flat()
    except ConfigError:
        return dict(flat)


def _spec_key(flat: Mapping[str, Any]) -> dict[str, Any]:
    """A flat spec with the compression defaults filled in, for comparing two specs."""
    from paretoedge.compression import CompressionSpec

    try:
        return normalize_flat(CompressionSpec.from_flat(flat).to_flat())
    except ParetoEdgeError:  # keys of a custom evaluator's own
        return normalize_flat(flat)


def _device_kind(device: str, load: Callable[[str], Any]) -> str | None:
    """A device's kind, or None for a name no profile has (a custom evaluator's own)."""
    try:
        return str(load(device).kind)
    except ParetoEdgeError:
        return None


def screened_out(study: optuna.Study) -> int:
    """Trials stopped before training by the structural screen (trainings saved)."""
    import optuna

    from paretoedge.search._cheap_metrics import SCREENED_ATTR

    pruned = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
    return sum(SCREENED_ATTR in t.user_attrs for t in pruned)


def _count(study: optuna.Study, states: tuple[Any, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _metrics_record(cls: Any, candidate_id: int, device: str, m: DeviceMetrics) -> Any:
    return cls(
        candidate_id=candidate_id,
        device=device,
        latency_ms=m.latency_ms,
        peak_memory_bytes=m.peak_memory_bytes,
        energy_mj=m.energy_mj,
        flash_bytes=m.flash_bytes,
        sram_bytes=m.sram_bytes,
        feasible=m.feasible,
        violations=tuple(m.violations),
        latency_worst_ms=m.latency_worst_ms,
    )


def _onnx_artifact(storage: Storage, candidate_id: int) -> Path | None:
    from paretoedge.storage import list_artifacts

    for a in reversed(list_artifacts(storage, candidate_id=candidate_id)):
        if a.kind == "onnx" and Path(a.path).is_file():
            return Path(a.path)
    return None


def evaluation_of(candidate: CandidateRecord) -> Evaluation:
    """The :class:`Evaluation` of a stored complete candidate."""
    return Evaluation(
        accuracy=float(candidate.accuracy if candidate.accuracy is not None else math.nan),
        size_bytes=int(candidate.size_bytes or 0),
        parameters=int(candidate.parameters or 0),
        sparsity=float(candidate.sparsity or 0.0),
        devices={m.device: DeviceMetrics.from_object(m) for m in candidate.metrics},
    )


def rank_candidates(
    config: StudyConfig, device: str, candidates: Sequence[CandidateRecord]
) -> dict[int, int]:
    """Trial number -> constrained non-dominated rank on ``device``.

    The front's objectives are the device-independent ones plus ``device``'s own; a
    candidate is infeasible on ``device`` when it breaks a constraint that applies there or
    when the hardware model reports a violation (it does not fit the device).
    """
    return rank_by(
        config.front_objectives(device), config.device_constraints(device), device, candidates
    )


def rank_by(
    objs: Sequence[Any], cons: Sequence[Any], device: str, candidates: Sequence[CandidateRecord]
) -> dict[int, int]:
    """:func:`rank_candidates` for explicit front objectives and constraints (a migration
    ranks stored studies whose config this version can no longer parse)."""
    rows, viol, numbers = [], [], []
    for c in candidates:
        if c.metrics_for(device) is None:
            continue
        ev = evaluation_of(c)
        rows.append([o.value(ev) for o in objs])
        m = ev.devices[device]
        viol.append(sum(k.violation(ev) for k in cons) + (0.0 if m.feasible else 1.0))
        numbers.append(c.trial_number)
    ranks = non_dominated_sort(rows, [o.direction for o in objs], viol)
    return dict(zip(numbers, ranks, strict=True))


def config_of(record_config: Mapping[str, Any]) -> StudyConfig:
    """Rebuild the validated config stored with a study (for ``resume`` and ``add-device``)."""
    return parse_config(record_config, check_names=False)


def resume_runner(
    name: str,
    *,
    storage_url: str,
    progress: bool = False,
    evaluator_factory: EvaluatorFactory | None = None,
    **kwargs: Any,
) -> SearchRunner:
    """A runner for the stored study ``name``, configured from what the database holds."""
    from paretoedge.storage import get_study, open_storage

    storage = open_storage(storage_url)
    record = get_study(storage, name=name)
    config = config_of(record.config)
    runner = SearchRunner(
        config,
        storage_url=storage_url,
        study_name=name,
        progress=progress,
        evaluator_factory=evaluator_factory,
        extra_devices=record.devices,
        **kwargs,
    )
    runner._storage = storage
    return runner


def add_device(
    name: str,
    *,
    device: str,
    storage_url: str,
    evaluator_factory: EvaluatorFactory | None = None,
    progress: bool = True,
    artifacts_dir: Path | None = None,
) -> tuple[SearchRunner, SearchSummary]:
    """Score every complete candidate of study ``name`` on ``device`` and store its front.

    Candidates are scored from their stored ONNX artifact; where that file is gone, the
    candidate is rebuilt from its stored spec and the study's seed (and re-exported). No
    accuracy is recomputed or overwritten.
    """
    from rich.progress import Progress

    from paretoedge import storage as st
    from paretoedge.hardware_profiles import load_profile
    from paretoedge.storage import DeviceMetricsRecord

    load_profile(device)
    runner = resume_runner(
        name,
        storage_url=storage_url,
        evaluator_factory=evaluator_factory,
        artifacts_dir=artifacts_dir,
    )
    runner.devices = tuple(dict.fromkeys([*runner.devices, device]))
    candidates = st.list_candidates(runner.storage, study=name, states=["complete"])
    records = []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"scoring on {device}", total=len(candidates))
        for c in candidates:
            path = _onnx_artifact(runner.storage, c.id)
            if path is not None:
                metrics = runner.evaluator.score_onnx(path, [device])[device]
            else:
                runner.artifacts_dir.mkdir(parents=True, exist_ok=True)
                out = runner.artifacts_dir / f"trial-{c.trial_number:05d}.onnx"
                result = runner.evaluator.evaluate(dict(c.spec), devices=[device], onnx_path=out)
                metrics = result.evaluation.devices[device]
                data = out.read_bytes()
                st.add_artifact(
                    runner.storage,
                    candidate_id=c.id,
                    kind="onnx",
                    path=str(out),
                    sha256=hashlib.sha256(data).hexdigest(),
                    bytes=len(data),
                )
            records.append(_metrics_record(DeviceMetricsRecord, c.id, device, metrics))
            bar.advance(task)
    if records:
        st.upsert_device_metrics_many(runner.storage, metrics=records)
    st.add_study_device(runner.storage, study=name, device=device)
    fronts = runner.update_fronts([device])
    runner.fill_test_accuracy(fronts)
    return runner, runner.summary(fronts)


# ---------------------------------------------------------------------------- display


class _Display:
    """Progress of a run: on a terminal a Rich live view (trial bar, best-so-far and front
    size per device); elsewhere (CI, a log file, ``nohup``) one plain line per finished
    trial on stderr, since a live view writes nothing useful to a file."""

    def __init__(self, runner: SearchRunner, total: int | None) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.runner = runner
        self.console = Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.total = total
        self.finished = 0
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=self.console,
        )
        self.task = self.progress.add_task("", total=total)
        self.fronts: Mapping[str, DeviceFront] = {}
        self.best: dict[str, tuple[float, float]] = {}
        self.live = Live(self._render(), console=self.console, refresh_per_second=4)

    def __enter__(self) -> _Display:
        if not self.plain:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.plain:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(title=f"study {self.runner.name}", expand=False)
        for col in ("device", "front size", "best accuracy", "fastest ms (front)"):
            table.add_column(col)
        for d in self.runner.devices:
            f = self.fronts.get(d)
            acc, lat = self.best.get(d, (math.nan, math.nan))
            table.add_row(d, str(len(f.front)) if f else "-", f"{acc:.3f}", f"{lat:.2f}")
        return Group(self.progress, table)

    def start_trial(self, number: int, what: str) -> None:
        if self.plain:
            return
        self.progress.update(self.task, description=f"trial {number}: {what}")
        self.live.update(self._render())

    def finish_trial(
        self, number: int, result: CandidateResult, fronts: Mapping[str, DeviceFront]
    ) -> None:
        from paretoedge import storage as st

        self.fronts = fronts
        cands = {
            c.trial_number: c
            for c in st.list_candidates(
                self.runner.storage, study=self.runner.name, states=["complete"]
            )
        }
        for d, f in fronts.items():
            members = [cands[n] for n in f.front if n in cands]
            accs = [c.accuracy for c in members if c.accuracy is not None]
            lats = [m.latency_ms for c in members if (m := c.metrics_for(d)) is not None]
            self.best[d] = (max(accs, default=math.nan), min(lats, default=math.nan))
        self.finished += 1
        if self.plain:
            self.console.print(
                self._line(number, result), markup=False, highlight=False, soft_wrap=True
            )
            return
        self.progress.advance(self.task)
        self.live.update(self._render())

    def _line(self, number: int, result: CandidateResult) -> str:
        """``trial 7 (3/20) 12.4 s acc 0.842: sparsity 0.3 int8 | rpi4 front 5 ...``"""
        of = f"{self.finished}/{self.total}" if self.total is not None else str(self.finished)
        how = (
            f"reused trial {result.twin_of}"
            if result.twin_of is not None
            else (f"{result.wall_s:.1f} s")
        )
        acc = result.evaluation.accuracy
        fronts = ", ".join(
            f"{d} front {len(f.front)} (fastest {self.best.get(d, (math.nan, math.nan))[1]:.2f} ms)"
            for d, f in self.fronts.items()
        )
        return f"trial {number} ({of}) {how} acc {acc:.3f}: {describe_spec(result.flat)} | {fronts}"
