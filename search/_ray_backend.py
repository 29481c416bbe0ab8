"""The ``"ray"`` backend: the trials of a study run on the workers of a Ray cluster.

The study is the same one the local backend runs — same Optuna study in the same RDB
storage, same paretoedge tables — so a study started on one backend resumes on the other.

How a trial runs:

* The **driver** (the ``paretoedge search --backend ray`` process) samples.
  :class:`StudySearcher`, a Ray Tune searcher, asks the study (with the study's own seeded
  sampler, baselines first because they are enqueued) and runs the study's define-by-run
  search space, so there is one sampler for the whole cluster, exactly as locally.
* A **worker** gets only the trial's id. It opens (once per worker process) the stored
  study the way :func:`paretoedge.load_study` does
  (:func:`~paretoedge.search._maintenance.resume_runner`), calls
  ``runner.objective`` on that Optuna trial (which reads the parameters the driver fixed) and
  tells Optuna the outcome itself, while a heartbeat thread keeps the trial alive. A result
  is in the database as soon as the trial ends, whatever happens to the driver afterwards.
* Multi-objective early stopping (:class:`~paretoedge.search._multifidelity.ParetoHalvingPruner`)
  runs inside the worker against the shared storage: the same decisions, from the same rungs,
  as the local backend. :class:`ParetoHalvingStopper` is the same rule as a Ray Tune stopper,
  for Tune experiments that report points to the driver.

Fault tolerance: a worker process or node lost mid-trial makes Tune restart that trial
(``FailureConfig(max_failures)``) on the same Optuna trial; completed trials are never
recomputed. An exception raised by the trial itself fails it at once (it would repeat).
When the retries are spent, the driver fails the trial. When the driver dies, running trials
stop heartbeating; ``paretoedge resume`` fails them as stale, re-enqueues their parameters
and continues (on either backend).

Security: Ray clusters run arbitrary code for whoever can reach them. A local head started
here uses Ray's token authentication with a fresh random token held only in this process's
environment (never written to disk), listens on an explicit GCS port (default 6380; Redis
commonly holds Ray's default 6379) and starts no dashboard. Connecting to a remote cluster
requires its token in ``RAY_AUTH_TOKEN`` (or ``RAY_AUTH_TOKEN_PATH``), unless the operator
explicitly set ``RAY_AUTH_MODE=disabled``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import secrets
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError, MissingExtraError, ParetoEdgeError

try:
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter, Searcher
    from ray.tune.stopper import Stopper
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("ray", "ray") from exc

from paretoedge.search import _optuna_adapter as oa
from paretoedge.search._backends import Backend
from paretoedge.search._maintenance import resume_runner
from paretoedge.search._multifidelity import (
    HalvingConfig,
    Observation,
    ParetoHalving,
    RungTable,
    intermediate_observations,
)
from paretoedge.search._optuna_adapter import quiet_optuna
from paretoedge.search._runner import SearchRunner

if TYPE_CHECKING:
    import optuna

    from paretoedge.search._config import StudyConfig
    from paretoedge.search._pareto import Direction

__all__ = [
    "DEFAULT_GCS_PORT",
    "ParetoHalvingStopper",
    "RayBackend",
    "RayOptions",
    "propagated_env",
    "refresh_auth_config",
    "ray_session",
    "study_observations",
]

_log = logging.getLogger(__name__)

DEFAULT_GCS_PORT = 6380
"""GCS port of a head started here. Not Ray's default 6379, which Redis often holds."""

#: Environment variables a driver hands to its workers when they are set on the driver:
#: where caches live (the fine-tuned teacher and the compile cache are shared through it)
#: and the offline switches. Secrets are not in this list.
PROPAGATED_ENV = (
    "PARETOEDGE_HOME",
    "PARETOEDGE_DEVICES_DIR",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "TOKENIZERS_PARALLELISM",
    "PYTHONPATH",
)


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class RayOptions:
    """How trials are placed on the cluster (from the study config's ``ray`` section and
    the command line; the section's ``max_concurrent`` is ``workers`` here).

    Attributes:
        address: ``None`` starts a local head in this process; ``"auto"`` joins the cluster
            of this machine; ``"host:port"`` or ``"ray://host:10001"`` a remote one.
        workers: Trials running at once (default: as many as the cluster's CPUs allow).
        cpus_per_trial: CPUs reserved per trial (fractions allowed).
        gpus_per_trial: GPUs reserved per trial (0: CPU only).
        max_failures: Restarts of a trial whose worker died before it is failed.
        port: GCS port of a local head (``None``: :data:`DEFAULT_GCS_PORT`; 0: any free).
        num_cpus: CPUs of a local head (``None``: all of this machine's).
        storage_path: Where Tune writes its per-trial logs (default
            ``<PARETOEDGE_HOME>/ray_results``).
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2
    port: int | None = None
    num_cpus: int | None = None
    storage_path: Path | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ConfigError("ray.workers", self.workers, "an integer >= 1")
        if not _is_number(self.cpus_per_trial) or not self.cpus_per_trial > 0:
            raise ConfigError("ray.cpus_per_trial", self.cpus_per_trial, "a number > 0")
        if not _is_number(self.gpus_per_trial) or not self.gpus_per_trial >= 0:
            raise ConfigError("ray.gpus_per_trial", self.gpus_per_trial, "a number >= 0")
        if (
            isinstance(self.max_failures, bool)
            or not isinstance(self.max_failures, int)
            or self.max_failures < 0
        ):
            raise ConfigError("ray.max_failures", self.max_failures, "an integer >= 0")
        if self.port is not None and (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not 0 <= self.port <= 65535
            or self.port == 6379
        ):
            raise ConfigError(
                "ray.port", self.port, "0 (any free port) or 1-65535 except 6379 (Redis)"
            )
        if self.num_cpus is not None and (
            isinstance(self.num_cpus, bool)
            or not isinstance(self.num_cpus, int)
            or self.num_cpus < 1
        ):
            raise ConfigError("ray.num_cpus", self.num_cpus, "an integer >= 1")
        if self.address is not None and (not isinstance(self.address, str) or not self.address):
            raise ConfigError("ray.address", self.address, "auto, host:port or ray://host:port")

    @classmethod
    def from_config(cls, config: StudyConfig, **overrides: Any) -> RayOptions:
        """Options from the config's optional ``ray`` section, then non-``None`` overrides."""
        values: dict[str, Any] = {}
        section = getattr(config, "ray", None)
        if section is not None:
            raw = section if isinstance(section, Mapping) else vars(section)
            for key, value in raw.items():
                key = _CONFIG_ALIASES.get(key, key)
                if key not in cls.__dataclass_fields__:
                    raise ConfigError(f"ray.{key}", value, sorted(cls.__dataclass_fields__))
                values[key] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


#: Study-config names (``ray:`` section) of :class:`RayOptions` fields.
_CONFIG_ALIASES = {"max_concurrent": "workers"}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# ----------------------------------------------------------------------------- session


def propagated_env() -> dict[str, str]:
    """The :data:`PROPAGATED_ENV` variables set in this process."""
    return {k: os.environ[k] for k in PROPAGATED_ENV if k in os.environ}


@contextlib.contextmanager
def ray_session(
    options: RayOptions, *, env: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """Connect this process to Ray (or start a local head) for the duration of a study.

    A local head gets an explicit GCS port and token authentication with a per-run random
    token kept in this process's environment; the environment is restored afterwards.
    ``env`` becomes the job's runtime environment variables (every worker of this job sees
    them). Yields the GCS address and whether this call connected.
    """
    runtime_env = {"env_vars": dict(env)} if env else None
    if ray.is_initialized():
        # A caller (a test, a notebook) already connected: use that session as it is.
        yield {"address": ray.get_runtime_context().gcs_address, "started": False}
        return
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", _GCS_PORT_ENV)}
    try:
        if options.address is None:
            if os.environ.get("RAY_AUTH_MODE", "").lower() != "disabled":
                os.environ["RAY_AUTH_MODE"] = "token"
                os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_urlsafe(32))
            refresh_auth_config()
            port = DEFAULT_GCS_PORT if options.port is None else options.port
            os.environ[_GCS_PORT_ENV] = str(port)
            info = ray.init(
                num_cpus=options.num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                runtime_env=runtime_env,
            )
        else:
            _check_remote_auth(options.address)
            refresh_auth_config()
            info = ray.init(
                address=options.address, logging_level=logging.WARNING, runtime_env=runtime_env
            )
        try:
            yield {"address": info.address_info.get("gcs_address"), "started": True}  # type: ignore[attr-defined]
        finally:
            ray.shutdown()
    except ConnectionError as exc:
        raise ParetoEdgeError(f"cannot reach the Ray cluster at {options.address}: {exc}") from exc
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"


def refresh_auth_config() -> None:
    """Make this process see a changed ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN``.

    Ray reads its configuration (the authentication mode included) when ``ray`` is imported
    and caches the token it first loads; this re-reads both, in the order Ray's own test
    utilities use. Call it only while this process is not connected to Ray.
    """
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _check_remote_auth(address: str) -> None:
    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    if mode == "disabled":
        _log.warning(
            "connecting to %s without Ray token authentication (RAY_AUTH_MODE=disabled)", address
        )
        return
    have_token = bool(os.environ.get("RAY_AUTH_TOKEN")) or bool(
        os.environ.get("RAY_AUTH_TOKEN_PATH")
    )
    if not have_token and not (Path.home() / ".ray" / "auth_token").is_file():
        raise ConfigError(
            "RAY_AUTH_TOKEN",
            None,
            "the cluster's token (from `ray get-auth-token` on the head) in RAY_AUTH_TOKEN or "
            "a file named by RAY_AUTH_TOKEN_PATH; RAY_AUTH_MODE=disabled only for a cluster "
            "started without authentication",
        )
    os.environ.setdefault("RAY_AUTH_MODE", "token")


# ----------------------------------------------------------------------------- searcher


class StudySearcher(Searcher):
    """A Ray Tune searcher that asks the paretoedge study, with outcomes told by the workers.

    Built on Tune's public :class:`~ray.tune.search.Searcher` and Optuna's public ask
    interface (Ray's ``OptunaSearch`` keeps its study and trials in private attributes, which
    this class needs to own): ``suggest`` claims a slot of the study's budget, asks the study
    (an enqueued baseline first, then the sampler), fixes the trial's parameters with the
    study's define-by-run space and returns only the trial's id and number, so workers read
    the parameters from the storage. ``on_trial_complete`` tells nothing for trials a worker
    finished; a trial still running in Optuna when Tune gives up on it (its worker died more
    than ``max_failures`` times) is failed here. The searcher's state is the database, so
    ``save``/``restore`` keep nothing (no database URL lands in Tune's experiment directory);
    resume with ``paretoedge resume``.
    """

    def __init__(self, runner: SearchRunner, ostorage: optuna.storages.RDBStorage) -> None:
        import optuna

        super().__init__(metric=None, mode=None)
        self._runner = runner
        self._study_name = runner.name
        with quiet_optuna():
            # the runner's sampler: seeded as the runner opened the study (the study's seed
            # for a new study, offset by the trials already there for a resumed one), so a
            # study samples the same on either backend and a resume does not replay a run
            self._study: optuna.Study | None = optuna.load_study(
                study_name=runner.name, storage=ostorage, sampler=runner.study.sampler
            )
        self._asked: dict[str, optuna.Trial] = {}
        self._finished: set[str] = set()
        self.failed_numbers: list[int] = []
        self._refused_until = 0.0

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        # the study fixes objectives and space; Tune's metric/mode/param_space are unused
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        from paretoedge.search._space import suggest

        assert self._study is not None
        if trial_id not in self._asked:
            # The study's budget is claimed in the database before each ask, counted with
            # every other driver and local worker of the study (paretoedge.storage._claims).
            live = set(self._asked) - self._finished
            if live and time.monotonic() < self._refused_until:
                return None  # Tune asks in a tight loop; the database is asked once a second
            if not self._runner.claim_trial():
                # A running trial may still fail and give its slot back: ask again later.
                self._refused_until = time.monotonic() + 1.0
                if live:
                    return None
                # Tune's documented "no more trials" sentinel, a str its annotation omits
                return Searcher.FINISHED  # type: ignore[return-value]
            try:
                with quiet_optuna(), warnings.catch_warnings():
                    # Heartbeats are recorded by the worker that runs the trial, not by ask().
                    warnings.filterwarnings("ignore", message="Heartbeat of storage")
                    self._asked[trial_id] = self._study.ask()
            except BaseException:
                self._runner.release_claim()
                raise
            # The driver owns the trial until a worker takes it over in `objective`.
            self._runner.bind_claim(self._asked[trial_id].number)
            # A first heartbeat now: if the driver dies before a worker starts the trial,
            # `resume` still sees it as stale, fails it and retries its parameters.
            oa.record_heartbeat(self._study, self._asked[trial_id], always=True)
        ot_trial = self._asked[trial_id]
        with quiet_optuna():
            suggest(ot_trial, self._runner.config.space)
        return {"trial_number": ot_trial.number, "optuna_trial_id": oa.trial_id(ot_trial)}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        return None

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        import optuna

        ot_trial = self._asked.get(trial_id)
        if ot_trial is None or trial_id in self._finished:
            return
        self._finished.add(trial_id)
        assert self._study is not None
        if oa.frozen_trial(self._study, ot_trial).state != optuna.trial.TrialState.RUNNING:
            return
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            oa.set_trial_state(self._study, ot_trial, optuna.trial.TrialState.FAIL)
            self.failed_numbers.append(ot_trial.number)
            _log.warning("trial %d failed on the cluster (error=%s)", ot_trial.number, error)
        self._runner.sync_failed(self._study)

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its searcher into the experiment directory; the study (and the
        # database URL with its password) stay out of it.
        return {"_study_name": self._study_name, "_metric": None, "_mode": None, "_study": None}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as fh:
            pickle.dump({"study": self._study_name}, fh)

    def restore(self, checkpoint_path: str) -> None:
        _log.info("state of study %s lives in its database; nothing to restore", self._study_name)


# ------------------------------------------------------------------------------ workers


@dataclass(frozen=True)
class _WorkerSpec:
    """What a worker needs to open the driver's study (picklable, no open handles)."""

    storage_url: str
    study_name: str
    devices: tuple[str, ...]
    artifacts_dir: Path
    evaluator_factory: Any
    pruner: Any
    heartbeat_interval: int
    grace_period: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.storage_url, self.study_name)


_RUNNERS: dict[tuple[str, str], SearchRunner] = {}


def _worker_runner(spec: _WorkerSpec) -> SearchRunner:
    """The worker's runner of the study: opened from the database as
    :func:`paretoedge.load_study` opens it (the entry every caller of a stored study uses),
    with the driver's evaluator factory, pruner, devices and heartbeat."""
    runner = _RUNNERS.get(spec.key)
    if runner is None:
        runner = resume_runner(
            spec.study_name,
            storage_url=spec.storage_url,
            evaluator_factory=spec.evaluator_factory,
            devices=spec.devices,
            pruner=spec.pruner,
            artifacts_dir=spec.artifacts_dir,
            heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period,
        )
        _RUNNERS[spec.key] = runner
    return runner


def run_trial(config: dict[str, Any], spec: _WorkerSpec) -> None:
    """Tune function trainable: run one Optuna trial of the study on this worker.

    Reports one result: ``state`` (complete, pruned, failed, skipped), ``trial_number`` and
    a value under every objective label (Tune requires them in every result): the final
    values when complete, the last rung's partial point when pruned, NaN otherwise.
    """
    import optuna

    runner = _worker_runner(spec)
    trial_id = int(config["optuna_trial_id"])
    number = int(config["trial_number"])
    labels = [o.label for o in runner.config.objectives]

    def report(state: str, values: Sequence[float] | None = None, **extra: Any) -> None:
        point = values if values is not None else [math.nan] * len(labels)
        metrics = dict(zip(labels, (float(v) for v in point), strict=True))
        tune.report({"state": state, "trial_number": number, **metrics, **extra})

    with quiet_optuna():
        study = runner.study
    state = oa.frozen_trial(study, trial_id).state
    if state.is_finished():
        # A restarted trial whose first attempt already ended (or a stale trial failed by a
        # resumed driver): nothing to redo.
        report("skipped", optuna_state=state.name)
        return
    trial = oa.trial_of(study, trial_id)
    with quiet_optuna(), oa.heartbeat(study, trial_id, spec.heartbeat_interval):
        try:
            values = runner.objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            points = intermediate_observations(oa.frozen_trial(study, trial_id))
            report("pruned", points[-1].point if points else None)
            return
        except Exception as exc:
            # An error raised by the trial itself (the candidate cannot be built, or a bug)
            # would repeat on another worker: fail it now. Only a lost worker (process or
            # node gone, no exception here) is restarted by Tune.
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if isinstance(exc, ParetoEdgeError):
                _log.warning("trial %d failed: %s", number, exc)
            else:
                _log.error("trial %d failed with an unexpected error", number, exc_info=True)
            report("failed", error=repr(exc))
            return
        try:
            study.tell(trial, values)
        except optuna.exceptions.UpdateFinishedTrialError:
            # An orphaned earlier attempt (its node was lost, the process was not) finished
            # the same trial first; its rows are the same candidate's.
            report("skipped", optuna_state="COMPLETE")
            return
    report("complete", values)


# ------------------------------------------------------------------------------ backend


class RayBackend(Backend):
    """Runs a study's trials as Ray Tune trials (see the module docstring).

    Args:
        address, workers, port, num_cpus: Override the config's ``ray`` section
            (:class:`RayOptions`); ``None`` keeps the config's value or the default.
        options: Everything at once (the other arguments still override it).
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        port: int | None = None,
        num_cpus: int | None = None,
        options: RayOptions | None = None,
    ) -> None:
        self._overrides = {
            "address": address,
            "workers": workers,
            "port": port,
            "num_cpus": num_cpus,
        }
        self._options = options
        self.last_results: Any = None
        self.last_searcher: StudySearcher | None = None

    def options_for(self, runner: SearchRunner) -> RayOptions:
        if self._options is not None:
            base = {k: getattr(self._options, k) for k in RayOptions.__dataclass_fields__}
            base.update({k: v for k, v in self._overrides.items() if v is not None})
            return RayOptions(**base)
        return RayOptions.from_config(runner.config, **self._overrides)

    def run(self, runner: SearchRunner, *, n_trials: int | None, timeout: float | None) -> None:
        from ray.tune import FailureConfig, RunConfig, TuneConfig, Tuner

        from paretoedge.settings import get_settings

        opts = self.options_for(runner)
        if opts.address not in (None, "auto") and runner.storage_url.startswith("sqlite"):
            _log.warning(
                "study %s uses SQLite (%s): workers on other machines need that file on a "
                "shared filesystem; use PostgreSQL for a real cluster",
                runner.name,
                runner.storage_url,
            )
        _ = runner.study  # created (baselines enqueued) once, by the runner
        spec = _WorkerSpec(
            storage_url=runner.storage_url,
            study_name=runner.name,
            devices=tuple(runner.devices),
            artifacts_dir=runner.artifacts_dir,
            evaluator_factory=runner.evaluator_factory,
            pruner=runner.pruner,
            heartbeat_interval=runner.heartbeat_interval,
            grace_period=runner.grace_period,
        )
        with ray_session(opts, env=propagated_env()):
            resources = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
            workers = opts.workers or max(
                1, int(ray.cluster_resources().get("CPU", 1) // opts.cpus_per_trial)
            )
            searcher = StudySearcher(runner, runner.optuna_storage())
            self.last_searcher = searcher
            trainable = tune.with_resources(
                tune.with_parameters(run_trial, spec=spec), resources=resources
            )
            storage_path = opts.storage_path or get_settings().home / "ray_results"
            storage_path.mkdir(parents=True, exist_ok=True)
            tuner = Tuner(
                trainable,
                tune_config=TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=workers),
                    num_samples=-1 if n_trials is None else n_trials,
                    time_budget_s=timeout,
                    reuse_actors=True,
                ),
                run_config=RunConfig(
                    name=f"paretoedge-{runner.name}",
                    storage_path=str(storage_path),
                    failure_config=FailureConfig(max_failures=opts.max_failures),
                    verbose=0,
                ),
            )
            self.last_results = tuner.fit()


# ---------------------------------------------------------------- Tune stopper adapter


def study_observations(study: optuna.Study) -> list[Observation]:
    """Every intermediate point stored in a study (to seed a :class:`ParetoHalvingStopper`)."""
    import optuna

    out: list[Observation] = []
    states = (
        optuna.trial.TrialState.RUNNING,
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    )
    for t in study.get_trials(deepcopy=False, states=states):
        out.extend(intermediate_observations(t))
    return out


@dataclass
class ParetoHalvingStopper(Stopper):
    """Successive halving on non-dominated rank as a Ray Tune :class:`~ray.tune.Stopper`.

    For Tune experiments whose trainables ``tune.report`` an intermediate point at each rung:
    the result must hold ``fidelity_key`` (steps done) and one value per name in ``metrics``
    (in the order of ``directions``), optionally ``violation_key``. The driver sees every
    result, so the decision is taken against all candidates that reached the same rung,
    including ``history`` (observations of earlier runs of the same study).

    Args:
        config: Rung and reduction parameters.
        directions: One per metric.
        metrics: Result keys of the point's values.
        fidelity_key: Result key of the steps done.
        key: Result key identifying the candidate (default: Tune's ``trial_id``).
        violation_key: Result key of the constraint violation (absent: feasible).
        history: Earlier observations.
    """

    config: HalvingConfig
    directions: Sequence[Direction]
    metrics: Sequence[str]
    fidelity_key: str = "fidelity"
    key: str = "trial_id"
    violation_key: str = "violation"
    history: Iterable[Observation] = ()
    decisions: dict[str, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if len(self.metrics) != len(self.directions):
            raise ConfigError("metrics", tuple(self.metrics), f"{len(self.directions)} names")
        self._table = RungTable(ParetoHalving(self.config, tuple(self.directions)), self.history)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        fidelity = result.get(self.fidelity_key)
        if not isinstance(fidelity, int | float) or not self.config.is_rung(int(fidelity)):
            return False
        if any(m not in result for m in self.metrics):
            return False
        obs = Observation(
            key=result.get(self.key, trial_id),
            fidelity=int(fidelity),
            point=tuple(float(result[m]) for m in self.metrics),
            violation=float(result.get(self.violation_key, 0.0) or 0.0),
        )
        decision = self._table.observe(obs)
        self.decisions[trial_id] = decision
        if decision.stop:
            _log.info("trial %s %s", trial_id, decision.reason)
        return decision.stop

    def stop_all(self) -> bool:
        return False
