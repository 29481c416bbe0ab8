"""How the trials of a study are executed: backends, looked up by name.

Why an interface: the runner (:class:`~paretoedge.search._runner.SearchRunner`) owns what a
trial *is* (sample, evaluate, store, rank); a backend only decides *where and when* trials
run. ``"optuna"`` runs them one after another in this process; ``"ray"`` on the workers of
a Ray cluster (:mod:`paretoedge.search._ray_backend`). Backends are registered in the
project's :class:`~paretoedge._registry.Registry` as factories, so Ray (heavy, optional)
is imported only when its backend is asked for.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from paretoedge._registry import Registry
from paretoedge.errors import ParetoEdgeError
from paretoedge.search._optuna_adapter import quiet_optuna

if TYPE_CHECKING:
    from paretoedge.search._runner import SearchRunner


class Backend(abc.ABC):
    """Executes the trials of a :class:`SearchRunner`.

    Contract: run at most ``n_trials`` more trials (``None``: no trial limit) for at most
    ``timeout`` seconds, each by calling ``runner.objective(trial)`` on a trial of
    ``runner.study`` (or of a study loaded from ``runner.optuna_storage()`` in a worker);
    return when done. After each trial the objective ran in this process, call
    ``runner.interrupts.deliver()`` (Ctrl-C held back while the trial was stored). Errors
    of single trials must not stop the search; a :class:`KeyboardInterrupt` must propagate
    after the running trials are failed.
    """

    @abc.abstractmethod
    def run(self, runner: SearchRunner, *, n_trials: int | None, timeout: float | None) -> None: ...


class OptunaBackend(Backend):
    """Trials run one after another in this process with ``study.optimize``.

    Args:
        gc_after_trial: Run the garbage collector after each trial (frees the compressed
            model's reference cycles before the next one is built).
    """

    #: Trials between collections of the whole heap (see :meth:`_collect`).
    FULL_GC_EVERY = 100

    def __init__(self, *, gc_after_trial: bool = True) -> None:
        self.gc_after_trial = gc_after_trial
        self._trials = 0

    def _collect(self) -> None:
        """Collect what the last trial left in reference cycles, walking only the objects
        made since the previous collection.

        A full ``gc.collect()`` walks every object of the process (torch, the study's
        cached trials): ~80 ms a trial, more as the study grows. After each collection the
        survivors are frozen (``gc.freeze``), so the next one walks only the newer objects;
        every ``FULL_GC_EVERY`` trials they are unfrozen and the whole heap is collected,
        so a long-lived object that later became garbage is freed too.
        """
        import gc

        self._trials += 1
        if self._trials % self.FULL_GC_EVERY == 0:
            gc.unfreeze()
        gc.collect()
        gc.freeze()

    def run(self, runner: SearchRunner, *, n_trials: int | None, timeout: float | None) -> None:
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
                        gc_after_trial=False,
                    )
                # Ctrl-C held back while the trial's result was stored, raised now that
                # Optuna has recorded the trial.
                runner.interrupts.deliver()
            finally:
                runner.release_claim()
                if self.gc_after_trial:
                    self._collect()


#: Backend name -> factory taking the backend's keyword options.
BACKENDS: Registry[Callable[..., Backend]] = Registry("backend")


@BACKENDS.register("optuna")
def _optuna_backend(**options: Any) -> Backend:
    return OptunaBackend(**options)


@BACKENDS.register("ray")
def _ray_backend(**options: Any) -> Backend:
    from paretoedge.search._ray_backend import RayBackend  # the extra, imported on demand

    return RayBackend(**options)


def get_backend(name: str, **options: Any) -> Backend:
    """Instantiate the backend registered as ``name``.

    Raises:
        UnknownNameError: no backend of that name.
        MissingExtraError: its optional dependencies are not installed.
    """
    factory = BACKENDS.get(name)
    try:
        return factory(**options)
    except ImportError as exc:
        from paretoedge.errors import MissingExtraError

        raise MissingExtraError(exc.name or name, name) from exc
