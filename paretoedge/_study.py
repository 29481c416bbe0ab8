"""The public Python API: ``create_study`` / ``load_study`` return a :class:`Study`.

Shaped like ``optuna.create_study``: a study lives in a database (SQLite file or
PostgreSQL) and a :class:`Study` is a handle on it, so two processes (or machines) that
create the same study join it, and a handle from :func:`load_study` sees what any worker
stored. The CLI's ``search``/``resume``/``add-device``/``front``/``export`` are thin
wrappers around this module, the HTTP API's jobs run the CLI in a child process, and Ray
workers open the study with the same runner entry as :func:`load_study`
(:func:`paretoedge.search.resume_runner`), so every entry point goes through the same code.

Importing this module is cheap: torch, TVM and Ray are imported by the methods that need
them (``import paretoedge`` exposes these names lazily).

Example::

    import paretoedge

    study = paretoedge.create_study("quickstart", storage="sqlite:///qs.db",
                                    overrides=["model=tiny-bert", "budget.trials=6"])
    study.optimize()
    for row in study.front("rpi4"):
        print(row.candidate.trial_number, row.candidate.accuracy, row.metrics.latency_ms)
    study.export(row.candidate.trial_number, "rpi4", "exported/")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from paretoedge.compression import CompressionResult, CompressionSpec
    from paretoedge.export import ExportResult
    from paretoedge.hardware_profiles import Prediction
    from paretoedge.search import (
        Backend,
        EvaluatorFactory,
        SearchRunner,
        SearchSummary,
        StudyConfig,
    )
    from paretoedge.storage import CandidateRecord, FrontEntry, Storage, StudyRecord

__all__ = ["Study", "compress", "create_study", "load_study", "predict"]


def resolve_storage_url(storage: str | None) -> str:
    """The database URL to use: ``storage`` if given, else the configured default
    (``PARETOEDGE_STORAGE``, else ``sqlite:///paretoedge.db``), checked before anything is
    opened.

    Raises:
        ConfigError: an empty or malformed URL (naming ``storage`` or
            ``PARETOEDGE_STORAGE``).
    """
    from paretoedge.settings import get_settings
    from paretoedge.storage import check_url

    if storage is None:
        return check_url(get_settings().storage, field="PARETOEDGE_STORAGE")
    return check_url(storage, field="storage")


class Study:
    """A handle on one stored study (create one with :func:`create_study` or
    :func:`load_study`, not directly).

    The handle holds a database connection pool and the study's validated config; it is
    not thread-safe (give each thread its own handle, as with a SQLAlchemy session).
    Everything it returns is a frozen record read from the database at call time.
    """

    def __init__(self, runner: SearchRunner) -> None:
        self._runner = runner

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, storage={self._runner.storage.url!r})"

    @property
    def name(self) -> str:
        """The study's name in the database."""
        return self._runner.name

    @property
    def config(self) -> StudyConfig:
        """The validated study config (as stored with the study)."""
        return self._runner.config

    @property
    def storage(self) -> Storage:
        """The paretoedge storage the study lives in."""
        return self._runner.storage

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device the study is scored on: its config's plus those added later."""
        from paretoedge.storage import get_study

        return tuple(get_study(self.storage, name=self.name).devices)

    @property
    def record(self) -> StudyRecord:
        """The study's stored row (status, devices, objectives, config)."""
        from paretoedge.storage import get_study

        return get_study(self.storage, name=self.name)

    @property
    def trials(self) -> tuple[CandidateRecord, ...]:
        """Every stored candidate (one per Optuna trial), in trial order, with the metrics
        of every device."""
        from paretoedge.storage import list_candidates

        return tuple(list_candidates(self.storage, study=self.name))

    def optimize(
        self,
        n_trials: int | None = None,
        timeout: float | None = None,
        backend: str | Backend = "optuna",
        *,
        progress: bool = False,
        **options: Any,
    ) -> SearchSummary:
        """Run trials until the study's budget is reached (or ``n_trials`` more, or
        ``timeout`` seconds), then store every device's front.

        The budget counts trials already in the database, so calling this again on a
        finished study runs nothing, and on an interrupted one runs only what is missing
        (``resume``). ``backend`` is ``"optuna"`` (this process) or ``"ray"``; ``options``
        go to the backend (Ray: ``address``, ``workers``).

        Raises:
            ConfigError: an unknown backend or an option it does not take.
        """
        from paretoedge.search import get_backend

        if n_trials is not None and (isinstance(n_trials, bool) or n_trials < 1):
            raise ConfigError("n_trials", n_trials, "a positive integer or None")
        if timeout is not None and not timeout >= 0:
            raise ConfigError("timeout", timeout, "seconds >= 0 or None")
        be = get_backend(backend, **options) if isinstance(backend, str) else backend
        if options and not isinstance(backend, str):
            raise ConfigError("options", sorted(options), "only with a backend given by name")
        self._runner.progress = progress
        return self._runner.run(n_trials=n_trials, timeout=timeout, backend=be)

    def add_device(self, device: str, *, progress: bool = False) -> SearchSummary:
        """Score every complete candidate on ``device`` (no training) and store its front.

        Raises:
            UnknownNameError: no such device profile.
        """
        from paretoedge.search import add_device

        runner, summary = add_device(
            self.name,
            device=device,
            storage_url=self._runner.storage_url,
            evaluator_factory=self._runner.evaluator_factory,
            progress=progress,
            artifacts_dir=self._runner.artifacts_dir,
        )
        self._runner = runner
        return summary

    def front(
        self,
        device: str,
        *,
        baselines: bool = False,
        limit: int = 1000,
        **filters: Any,
    ) -> tuple[FrontEntry, ...]:
        """The non-dominated candidates on ``device`` (fastest first), each with its
        accuracy and the device's metrics.

        ``filters`` are those of :func:`paretoedge.storage.get_front` (``max_latency_ms``,
        ``min_accuracy``, ``max_size_bytes``, ``sort``, ``offset``, ``max_rank``);
        ``baselines=True`` appends the study's baselines for reference.

        Raises:
            NotFoundError: ``device`` is not a device of the study.
            ConfigError: an invalid filter (the message names it).
        """
        from paretoedge.storage import get_front

        unknown = set(filters) - _FRONT_FILTERS
        if unknown:
            raise ConfigError("filters", sorted(unknown), f"one of {sorted(_FRONT_FILTERS)}")
        page = get_front(
            self.storage,
            study=self.name,
            device=device,
            limit=limit,
            baselines=baselines,
            **filters,
        )
        return page.entries

    def export(
        self, trial: int, device: str, out: str | Path, *, progress: bool = False
    ) -> ExportResult:
        """Rebuild trial ``trial`` and write it for ``device`` under ``out`` (Hugging Face
        folder, ONNX, int8 QDQ where it applies, TVM library, model card).

        Raises:
            NotFoundError: no such trial.
            ConfigError: ``device`` is not a device of the study or the trial is not
                complete.
        """
        from paretoedge.export import export_candidate

        return export_candidate(
            self.storage,
            study=self.name,
            trial=trial,
            device=device,
            out=Path(out),
            progress=progress,
        )


_FRONT_FILTERS = frozenset(
    {"max_latency_ms", "min_accuracy", "max_size_bytes", "sort", "offset", "max_rank"}
)


def _config_of(config: str | Path | StudyConfig, overrides: Sequence[str]) -> StudyConfig:
    from paretoedge.search import StudyConfig, apply_overrides, load_config, parse_config

    if isinstance(config, StudyConfig):
        if not overrides:
            return config
        # the object was validated when it was built (perhaps with custom device names,
        # check_names=False); the overrides are type- and range-checked again here
        return parse_config(apply_overrides(config.to_dict(), list(overrides)), check_names=False)
    if isinstance(config, str | Path):
        return load_config(str(config), list(overrides))
    raise ConfigError(
        "config", type(config).__name__, "a YAML path, a bundled study name or a StudyConfig"
    )


def create_study(
    config: str | Path | StudyConfig,
    *,
    storage: str | None = None,
    overrides: Sequence[str] = (),
    study_name: str | None = None,
    evaluator_factory: EvaluatorFactory | None = None,
) -> Study:
    """Create a study in ``storage`` (or join the stored one of that name).

    Args:
        config: A study YAML file, a bundled study name (``"quickstart"``, see
            :func:`paretoedge.search.bundled_configs`) or a :class:`StudyConfig`.
        storage: Database URL; default ``PARETOEDGE_STORAGE`` or ``sqlite:///paretoedge.db``.
        overrides: ``KEY=VALUE`` strings applied to the config, as ``--set`` on the CLI
            (e.g. ``["model=tiny-bert", "budget.trials=6"]``).
        study_name: The name in the database (default: the config's ``name``).
        evaluator_factory: ``StudyConfig -> Evaluator`` used by :meth:`Study.optimize`
            (default: the real pipeline: compress, recover, evaluate, export, hardware
            models). A replay of recorded results, or a custom task, plugs in here.

    Joining is how several workers share one study: a stored study of the same name and
    the same config is joined; one with a different config is refused with the fields that
    differ, and nothing is written.

    Raises:
        ConfigError: invalid config or override (the message names the field), or a
            stored study of that name with another config.
        StorageError: the database cannot be opened.
    """
    from paretoedge.search import SearchRunner

    cfg = _config_of(config, overrides)
    runner = SearchRunner(
        cfg,
        storage_url=resolve_storage_url(storage),
        study_name=study_name,
        evaluator_factory=evaluator_factory,
    )
    runner.setup()
    return Study(runner)


def load_study(
    name: str, *, storage: str | None = None, evaluator_factory: EvaluatorFactory | None = None
) -> Study:
    """A handle on the stored study ``name``, configured from what the database holds
    (``evaluator_factory`` as in :func:`create_study`).

    Raises:
        NotFoundError: no study of that name in ``storage``.
        StorageError: the database does not exist or cannot be opened (it is never
            created here).
    """
    from paretoedge.search import resume_runner
    from paretoedge.storage import open_storage

    url = resolve_storage_url(storage)
    open_storage(url, create=False).close()  # a misspelt SQLite path is not a new database
    runner = resume_runner(name, storage_url=url, evaluator_factory=evaluator_factory)
    return Study(runner)


def compress(
    model: str | PreTrainedModel,
    spec: CompressionSpec | Mapping[str, Any],
    *,
    task: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    seed: int = 0,
) -> CompressionResult:
    """Compress one model with ``spec`` (the canonical order of the transforms).

    Args:
        model: A model name (``"minilm"``, ``"tiny-bert"``, a local HF folder) or a loaded
            sequence-classification model (not modified).
        spec: A :class:`~paretoedge.compression.CompressionSpec` or its flat form
            (``{"quant.bits": 8, "prune.sparsity": 0.5}``).
        task: A task name or data file; needed by transforms that train or calibrate
            (distillation, recovery, activation calibration).
        tokenizer: The model's tokenizer, when ``model`` is a loaded model and ``task`` is
            given (a model named by ``model`` brings its own).
        seed: Seeds every random choice.

    Raises:
        ConfigError: an invalid spec (the message names the field and allowed values).
    """
    from paretoedge.compression import CompressionSpec
    from paretoedge.compression import compress as _compress
    from paretoedge.models import load_model, load_tokenizer

    if not isinstance(spec, CompressionSpec):
        if not isinstance(spec, Mapping):
            raise ConfigError("spec", type(spec).__name__, "a CompressionSpec or a flat mapping")
        spec = CompressionSpec.from_flat(dict(spec))
    if isinstance(model, str):
        if task is not None and tokenizer is None:
            tokenizer = load_tokenizer(model)
        model = load_model(model, seed=seed)
    data = None
    if task is not None:
        from paretoedge.tasks import load_task

        if tokenizer is None:
            raise ConfigError("tokenizer", None, "the model's tokenizer when a task is given")
        data = load_task(task)
    return _compress(model, spec, task=data, tokenizer=tokenizer, seed=seed)


def predict(
    onnx: str | Path, devices: str | Sequence[str], *, use_cache: bool = True
) -> dict[str, Prediction]:
    """Latency, memory and energy of one ONNX file on each device.

    The graph is read, folded and hashed once and lowered per device target (cached on
    disk by structure and target), so many devices cost one preparation.

    Raises:
        UnknownNameError: an unknown device name.
        LoweringError: the file is not a static-shape ONNX model TVM can build.
    """
    from paretoedge.hardware_profiles import predict_many

    return predict_many(onnx, devices, use_cache=use_cache)
