"""The search runner: one multi-objective Optuna study per paretoedge study.

For each trial: sample a candidate (baselines first) -> :class:`Evaluator` (compress with the
recovery budget, validation accuracy, ONNX export once, every device's hardware model) ->
constraints through ``trial.set_constraint`` -> store the candidate, its device metrics and
its ONNX artifact (:mod:`~paretoedge.search._results`) -> rank it into the stored front of
every device (:class:`~paretoedge.search._fronts.FrontKeeper`: only the new candidate and
the ranks it changes are written).

What a trial costs the controller does not grow with the study: the twin lookup is one
indexed query on the spec's digest, the fronts are updated from an in-memory copy of the
ranking, and no step reads every candidate (``bench/controller_overhead.py`` measures it).

Optuna's RDB storage lives in the same database as the paretoedge tables, with a heartbeat:
a trial whose process died is failed once its heartbeat is stale and re-enqueued
(:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`), so a resumed study retries it
while completed trials are never recomputed. Every trial is asked under a budget claim
that records its owning process (:mod:`paretoedge.storage._claims`), so the budget holds
across workers and a run finishes the trials of dead local owners at once
(:mod:`paretoedge.search._recovery`) instead of after the heartbeat grace.

How trials are executed is a *backend* (:mod:`~paretoedge.search._backends`); backends call
:meth:`SearchRunner.objective`. Optuna's internals are reached only through
:mod:`~paretoedge.search._optuna_adapter`. Users reach a runner through the Python API
(:func:`paretoedge.create_study` / :func:`paretoedge.load_study`), which the CLI, the HTTP
API's jobs and the Ray workers call too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from paretoedge._describe import describe_spec
from paretoedge.errors import ConfigError, ParetoEdgeError
from paretoedge.objectives import Direction, Evaluation
from paretoedge.search import _optuna_adapter as oa
from paretoedge.search._config import StudyConfig
from paretoedge.search._evaluator import (
    CandidateResult,
    Evaluator,
    EvaluatorFactory,
    PipelineEvaluator,
)
from paretoedge.search._fronts import (
    DeviceFront,
    FrontKeeper,
    fill_test_accuracy,
    update_fronts,
)
from paretoedge.search._interrupts import InterruptGuard
from paretoedge.search._optuna_adapter import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, quiet_optuna
from paretoedge.search._results import (
    completed_twin,
    expected_record,
    finish_result,
    metrics_record,
    store_result,
)
from paretoedge.search._samplers import halving_pruner, joining_sampler, sampler_for
from paretoedge.search._space import baseline_params, baseline_spec, candidate_spec, suggest

if TYPE_CHECKING:
    import optuna

    from paretoedge.compression import CompressionSpec
    from paretoedge.search._backends import Backend
    from paretoedge.search._display import Display
    from paretoedge.storage import CandidateRecord, Storage, StudyStatus

_log = logging.getLogger(__name__)

#: Trial user attribute naming the baseline a trial evaluates.
BASELINE_ATTR = "paretoedge.baseline"
#: Trial user attribute naming the complete trial whose stored result a duplicate reused.
TWIN_ATTR = "paretoedge.twin_of"
#: Sub-directory of the study's artifacts holding the recovery checkpoints of candidates
#: between early-stopping rungs (:mod:`~paretoedge.search._rung_checkpoint`).
CHECKPOINTS_DIR = "rungs"


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
        extra_devices: Devices scored besides the config's (added later with add-device).
        storage: An open storage on ``storage_url`` to use (default: opened on first use).
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
        storage: Storage | None = None,
    ) -> None:
        from paretoedge.search._names import study_dirname
        from paretoedge.settings import get_settings

        self.config = config
        self.storage_url = storage_url
        self.name = study_name or config.name
        self._evaluator_factory = evaluator_factory or PipelineEvaluator
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
        self._storage: Storage | None = storage
        self._study: optuna.Study | None = None
        self._display: Display | None = None
        self._claim_id: int | None = None
        self.created = False
        self._screens: bool | None = None
        self._keeper: FrontKeeper | None = None
        #: Ctrl-C held back while a finished trial is stored (see ``_interrupts``).
        self.interrupts = InterruptGuard()
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
        """What builds this runner's evaluator (passed on to add-device, the API and the
        Ray workers)."""
        return self._evaluator_factory

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self.setup()
        assert self._study is not None
        return self._study

    def optuna_storage(self) -> optuna.storages.RDBStorage:
        return oa.open_optuna_storage(
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
        # Under the cross-process set-up lock: a process killed between creating the Optuna
        # study and enqueuing the baselines leaves a study that the next one completes
        # (exactly once, whoever comes first).
        with quiet_optuna(), oa.setup_lock(self.storage):
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
            study.sampler = joining_sampler(cfg, study, runner=self)
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
        from paretoedge.storage._owner import current_owner

        cfg = self.config
        baseline = trial.user_attrs.get(BASELINE_ATTR)
        params = suggest(trial, cfg.space)
        number = trial.number
        # Record a heartbeat before the candidate becomes visible as running: a process
        # killed before Optuna's heartbeat thread first wrote would leave a trial that never
        # turns stale (no heartbeat row), so resume could not retry it.
        oa.record_heartbeat(trial.study, trial)
        # Optuna's dotted parameter names end here: the candidate is a typed spec from now on
        # (a value the compression configs refuse fails the trial, with no candidate row;
        # its claim is bound all the same).
        try:
            spec = baseline_spec(baseline) if baseline else candidate_spec(cfg, params)
        except ConfigError:
            self.bind_claim(number)
            raise
        # The trial's owner (this process) goes into its claim with the running row: `resume`
        # fails the trial of a dead local owner at once instead of after the heartbeat grace.
        claim_id, self._claim_id = self._claim_id, None
        running = st.start_trial(
            self.storage,
            study=self.name,
            trial_number=number,
            spec=spec,
            owner=current_owner(),
            claim_id=claim_id,
            is_baseline=bool(baseline),
            baseline_name=baseline,
        )
        if self._display:
            self._display.start_trial(number, baseline or describe_spec(spec.to_flat()))
        try:
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            onnx_path = self.artifacts_dir / f"trial-{number:05d}.onnx"
            rungs, on_rung = self._rung_hook(trial, spec)
            # With early stopping active a trial goes through its rungs as usual.
            twin = (
                None
                if rungs
                else completed_twin(self.storage, study=self.name, spec=spec, devices=self.devices)
            )
            if twin is not None:
                result = twin
                trial.set_user_attr(TWIN_ATTR, twin.twin_of)
            else:
                if not baseline and self._screen_can_reject():
                    self._screen_before_training(trial, spec)
                # only a candidate with rungs keeps a recovery between them; a custom
                # evaluator written before checkpoints keeps working without early stopping
                keep = {"checkpoints": self.artifacts_dir / CHECKPOINTS_DIR} if rungs else {}
                result = self.evaluator.evaluate(
                    spec,
                    devices=self.devices,
                    onnx_path=onnx_path,
                    rungs=rungs,
                    on_rung=on_rung,
                    **keep,
                )
            if result.pruned:
                with self.interrupts.held():
                    finish_result(
                        self.storage,
                        study=self.name,
                        candidate_id=running.id,
                        trial_number=number,
                        result=result,
                        baseline=baseline,
                        state="pruned",
                    )
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
                    spec=spec,
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
        # The result, its device metrics and its front ranks in one transaction. Ctrl-C
        # from here on waits until Optuna has recorded the trial: raised now, it would fail
        # a trial whose result is stored, and recovery would then fail its row.
        with self.interrupts.held():
            keeper = self.front_keeper()
            plan = keeper.prepare(expected_record(running, result))
            done = finish_result(
                self.storage,
                study=self.name,
                candidate_id=running.id,
                trial_number=number,
                result=result,
                baseline=baseline,
                fronts=plan.extension,
            )
            keeper.settle(plan, done.front_version)
            if self._display:
                self._display.finish_trial(number, result, keeper.fronts())
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

    def _screen_before_training(self, trial: optuna.Trial, spec: CompressionSpec) -> None:
        """Cost ``spec`` on every device from its structure; stop it untrained (Optuna:
        pruned, candidate: pruned at fidelity 0 with its device metrics and size) when it
        can enter no device's front (:func:`~paretoedge.search._cheap_metrics.screen`).
        The trial still counts against the budget and samplers see it."""
        import time

        from paretoedge import storage as st
        from paretoedge.search._cheap_metrics import SCREENED_ATTR, screen

        start = time.perf_counter()
        metrics = self.evaluator.structural_metrics(spec, self.devices)
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
            spec=spec,
            size_bytes=metrics.size_bytes,
            parameters=metrics.parameters,
            sparsity=metrics.sparsity,
            fidelity=0,
            wall_s=time.perf_counter() - start,
        )
        st.upsert_device_metrics_many(
            self.storage,
            metrics=[metrics_record(rec.id, d, m) for d, m in metrics.devices.items()],
        )
        trial.set_user_attr(SCREENED_ATTR, verdict.describe())
        import optuna

        raise optuna.TrialPruned(f"screened out before training: {verdict.describe()}")

    def _rung_hook(
        self, trial: optuna.Trial, spec: CompressionSpec
    ) -> tuple[tuple[int, ...], Callable[[int, Evaluation], bool] | None]:
        """Rungs and the callback reporting partial points to the early stopper."""
        rungs_of = getattr(self.pruner, "rungs", None)
        steps = spec.recovery.steps if spec.recovery is not None else 0
        if rungs_of is None or steps <= 0 or trial.user_attrs.get(BASELINE_ATTR):
            return (), None
        from paretoedge.search._multifidelity import report_intermediate

        pruner = self.pruner

        def on_rung(step: int, evaluation: Evaluation) -> bool:
            point = self.objective_values(evaluation)
            violation = sum(c.violation(evaluation) for c in self.config.constraints)
            report_intermediate(trial, step, point, violation=violation)
            frozen = oa.frozen_trial(trial.study, trial)
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
        artifact (:func:`paretoedge.search._results.store_result`)."""
        return store_result(
            self.storage,
            study=self.name,
            trial_number=trial_number,
            result=result,
            baseline=baseline,
            state=state,
        )

    # -- fronts ---------------------------------------------------------------------

    def front_keeper(self) -> FrontKeeper:
        """The in-memory ranking that per-trial front updates go through (made again when
        the run's devices changed)."""
        if self._keeper is None or self._keeper.devices != self.devices:
            self._keeper = FrontKeeper(
                self.storage, study=self.name, config=self.config, devices=self.devices
            )
        return self._keeper

    def update_fronts(self, devices: Sequence[str] | None = None) -> dict[str, DeviceFront]:
        """Rank all complete candidates on ``devices`` (default: every device of the run)
        and store the whole ranking (:func:`paretoedge.search._fronts.update_fronts`): the
        full path, for repairs and a new device; trials use :meth:`front_keeper`."""
        return update_fronts(
            self.storage, study=self.name, config=self.config, devices=devices or self.devices
        )

    def reconcile_fronts(self) -> dict[str, DeviceFront]:
        """Every device's stored ranking, ranking whole only the devices whose stored fronts
        miss a complete candidate or hold one that is no longer complete
        (:meth:`FrontKeeper.reconcile`)."""
        return self.front_keeper().reconcile()

    def fill_test_accuracy(self, fronts: Mapping[str, DeviceFront]) -> int:
        """Measure test accuracy of front members and baselines that lack it."""
        return fill_test_accuracy(
            self.storage, study=self.name, evaluator=self.evaluator, fronts=fronts
        )

    def sync_failed(self, study: optuna.Study) -> int:
        """Give every failed Optuna trial a failed candidate row
        (:func:`paretoedge.search._maintenance.sync_failed`)."""
        from paretoedge.search._maintenance import sync_failed

        return sync_failed(self, study)

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
        from paretoedge.search._backends import get_backend
        from paretoedge.search._display import Display
        from paretoedge.search._recovery import recover

        study = self.study
        recover(self, study)
        # Candidates that recovery completed are ranked now, before the first trial.
        self.reconcile_fronts()
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
                    self._display = Display(self, total=remaining)
                    with self._display:
                        be.run(self, n_trials=remaining, timeout=timeout)
                else:
                    be.run(self, n_trials=remaining, timeout=timeout)
                self.interrupts.deliver()  # for a backend that did not
            status = "running"
        except KeyboardInterrupt:
            status = "stopped"
            raise
        finally:
            self._display = None
            recover(self, study)
            fronts = self.reconcile_fronts()
            if status == "running":
                # Decided last: recovery may have completed trials, and other workers may
                # have finished the budget while this one stored its fronts.
                status = _final_status(self, study)
            st.set_study_status(self.storage, study=self.name, status=status)
        self.fill_test_accuracy(fronts)
        return self.summary(fronts)

    def summary(self, fronts: Mapping[str, DeviceFront] | None = None) -> SearchSummary:
        import optuna

        study = self.study
        fronts = fronts if fronts is not None else self.reconcile_fronts()
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
