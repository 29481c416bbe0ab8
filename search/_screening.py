"""The screening sampler: train next the candidate that can add the most to the fronts.

A candidate's device metrics and size follow from its structure (see
:mod:`paretoedge.search._cheap_metrics`); only its accuracy needs a compression plus a
recovery fine-tune. So before each trial :class:`ScreeningSampler`

1. draws a *pool* of candidates from the whole space (the whole space when it is enumerable
   and no larger than ``pool_size``; conditional parameters included) once, and costs all of
   them on every device of the study in one batch (``metrics``);
2. drops the candidates already tried (by any trial, running ones included, so several
   workers on one database do not train the same candidate), those infeasible on every
   device, and those that cannot enter any device's front even at an optimistic accuracy
   (the best accuracy observed so far): these are never trained;
3. fits a Gaussian process (scikit-learn) of accuracy on the completed trials, over the
   spec's encoded parameters and the log of the cheap metrics;
4. proposes the candidate with the highest expected hypervolume improvement summed over the
   study's devices. Device metrics are known exactly, so the expectation is over the
   predicted accuracy only and is computed in closed form (:func:`expected_hvi`).

It is an ordinary Optuna sampler: the choice is made in :meth:`before_trial` and handed out
by :meth:`sample_independent`, so enqueued trials (the baselines), resume, several workers on
one database, the Ray backend and ``add-device`` work as with any other sampler. The state
is the study's trials; a sampler built again (a resumed run) chooses from them alone.
Deterministic for a seed and a history of trials.

When no candidate of the pool can still improve a front, the sampler proposes the best
completed candidate again: the controller reuses its stored result (a twin) instead of
training, so the remaining budget costs no training.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.trial import FrozenTrial, TrialState

from paretoedge.errors import ConfigError, ParetoEdgeError
from paretoedge.search._cheap_metrics import StructuralMetrics, screen
from paretoedge.search._config import ParamSpec, StudyConfig
from paretoedge.search._optuna_adapter import distribution_contains, trial_id
from paretoedge.search._pareto import hypervolume
from paretoedge.search._space import (
    BASELINE_SPECS,
    baseline_spec,
    candidate_spec,
    enumerate_space,
)

if TYPE_CHECKING:
    from optuna.study import Study

    from paretoedge.compression import CompressionSpec

_log = logging.getLogger(__name__)

#: Costs a batch of specs on the study's devices (None: cannot be built).
MetricsFn = Callable[[Sequence["CompressionSpec"]], list[StructuralMetrics | None]]

#: Sampler options a study YAML may set under ``sampler.options``.
OPTIONS = ("pool_size", "n_startup_trials")


@dataclass(frozen=True)
class _Candidate:
    params: Mapping[str, Any]
    key: str
    metrics: StructuralMetrics
    features: tuple[float, ...]


class ScreeningSampler(BaseSampler):
    """Screen a pool by cheap device metrics; train the best expected front improvement.

    Args:
        config: The study (space, objectives, constraints, devices).
        metrics: Costs a batch of specs from their structure (the controller passes its
            evaluator's :meth:`~paretoedge.search.Evaluator.structural_metrics`).
        devices: The devices whose fronts count (default: the config's).
        seed: Seeds the pool and the model; the same seed and trials give the same choice.
        pool_size: Candidates drawn from the space (the whole space if it has no more).
        n_startup_trials: Completed trials before the accuracy model is used; before that
            the sampler picks at random among the candidates that may still enter a front.

    Not thread-safe (one sampler per worker process, as Optuna's samplers).
    """

    def __init__(
        self,
        config: StudyConfig,
        *,
        metrics: MetricsFn,
        devices: Sequence[str] | None = None,
        seed: int | None = None,
        pool_size: int = 512,
        n_startup_trials: int = 4,
    ) -> None:
        if not isinstance(pool_size, int) or isinstance(pool_size, bool) or pool_size < 1:
            raise ConfigError("sampler.options.pool_size", pool_size, "an integer >= 1")
        if not isinstance(n_startup_trials, int) or n_startup_trials < 1:
            raise ConfigError(
                "sampler.options.n_startup_trials", n_startup_trials, "an integer >= 1"
            )
        if not any(o.name == "accuracy" for o in config.objectives):
            raise ConfigError(
                "sampler.name",
                "screening",
                "another sampler: screening needs an accuracy objective",
            )
        self.config = config
        self.devices = tuple(devices or config.devices)
        self._metrics = metrics
        self._seed = 0 if seed is None else int(seed)
        self.pool_size = pool_size
        self.n_startup_trials = n_startup_trials
        self._fallback = RandomSampler(seed=seed)
        self._pool: list[_Candidate] | None = None
        self._known: dict[str, StructuralMetrics | None] = {}
        self._picks: dict[int, Mapping[str, Any]] = {}
        self._refs: dict[str, tuple[float, ...]] = {}

    # -- Optuna's interface ---------------------------------------------------------

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:
            return  # an enqueued trial (a baseline, a retried trial): nothing to choose
        pick = self.choose(study.get_trials(deepcopy=False))
        if pick is not None:
            self._picks[trial_id(trial)] = pick

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        pick = self._picks.get(trial_id(trial), {})
        if param_name in pick:
            value = pick[param_name]
            if distribution_contains(param_distribution, value):
                return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._picks.pop(trial_id(trial), None)

    # -- the choice -------------------------------------------------------------------

    def choose(self, trials: Sequence[FrozenTrial]) -> dict[str, Any] | None:
        """The parameters to try next given the study's ``trials`` (None: nothing left,
        not even a completed candidate to repeat)."""
        pool = self.pool()
        tried = {self._key_of(t) for t in trials}
        observed = self._observations(trials)
        best_acc = max((acc for _, acc, _ in observed), default=None)
        open_ = [c for c in pool if c.key not in tried and self._feasible_somewhere(c.metrics)]
        fronts = {d: self._front(d, observed) for d in self.devices}
        if best_acc is not None:
            open_ = [c for c in open_ if self._potential(c.metrics, fronts, best_acc) > 0]
        if not open_:
            return self._repeat_best(trials, observed)
        rng = np.random.RandomState((self._seed + 7919 * len(trials)) % 2**32)
        fitted = [(f, a) for f, a, _ in observed]
        if len(fitted) < self.n_startup_trials:
            return dict(open_[int(rng.randint(len(open_)))].params)
        mu, sigma = self._predict(fitted, open_)
        scores = np.zeros(len(open_))
        for i, c in enumerate(open_):
            scores[i] = sum(
                expected_hvi(fronts[d], self._cheap_point(c.metrics, d), mu[i], sigma[i])
                for d in self.devices
            )
        return dict(open_[int(np.argmax(scores))].params)

    def pool(self) -> list[_Candidate]:
        """The pool of candidates with their cheap metrics (drawn and costed once)."""
        if self._pool is None:
            draws = _draw_pool(self.config.space, self.pool_size, self._seed)
            metrics = self._cost([self._spec(p) for p in draws])
            self._pool = [
                _Candidate(params=p, key=_key(p), metrics=m, features=self._features(p, m))
                for p, m in zip(draws, metrics, strict=True)
                if m is not None
            ]
            _log.info("screening pool: %d candidates costed", len(self._pool))
        return self._pool

    # -- helpers ------------------------------------------------------------------------

    def _spec(self, params: Mapping[str, Any]) -> CompressionSpec | None:
        """The candidate of ``params``, or None when the compression configs refuse it."""
        try:
            return candidate_spec(self.config, params)
        except ConfigError as exc:
            _log.info("screening: cannot cost %s: %s", dict(params), exc)
            return None

    def _cost(self, specs: Sequence[CompressionSpec | None]) -> list[StructuralMetrics | None]:
        keys = [None if s is None else s.to_json() for s in specs]
        todo = {k: s for k, s in zip(keys, specs, strict=True) if k is not None and s is not None}
        todo = {k: s for k, s in todo.items() if k not in self._known}
        if todo:
            got = self._metrics(list(todo.values()))
            for k, m in zip(todo, got, strict=True):
                self._known[k] = m
        return [None if k is None else self._known[k] for k in keys]

    def _key_of(self, trial: FrozenTrial) -> str:
        return _key(trial.params)

    def _observations(
        self, trials: Sequence[FrozenTrial]
    ) -> list[tuple[tuple[float, ...], float, StructuralMetrics]]:
        """(features, accuracy, cheap metrics) of every complete trial."""
        acc_i = next(i for i, o in enumerate(self.config.objectives) if o.name == "accuracy")
        done = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
        specs: list[CompressionSpec | None] = []
        for t in done:
            base = t.user_attrs.get("paretoedge.baseline")
            if base in BASELINE_SPECS:
                specs.append(baseline_spec(base))
            else:
                specs.append(self._spec(t.params))
        out = []
        for t, m in zip(done, self._cost(specs), strict=True):
            if m is None:
                continue
            out.append((self._features(t.params, m), float(t.values[acc_i]), m))
        return out

    def _features(self, params: Mapping[str, Any], m: StructuralMetrics) -> tuple[float, ...]:
        enc = _encode(params, self.config.space)
        cheap = [math.log(max(m.size_bytes, 1))]
        for d in self.devices:
            dm = m.devices.get(d)
            cheap.append(math.log(max(dm.latency_ms, 1e-9)) if dm is not None else 0.0)
        return tuple(enc + cheap)

    def _feasible_somewhere(self, m: StructuralMetrics) -> bool:
        return screen(self.config, m, self.devices).trainable

    def _cheap_point(self, m: StructuralMetrics, device: str) -> tuple[float, ...] | None:
        """The device front's objectives other than accuracy, as minimised values (None
        when infeasible on the device)."""
        if device in screen(self.config, m, [device]).reasons:
            return None
        ev = m.evaluation()
        return tuple(
            o.value(ev) if o.direction == "minimize" else -o.value(ev)
            for o in self.config.front_objectives(device)
            if o.name != "accuracy"
        )

    def _front(
        self, device: str, observed: Sequence[tuple[tuple[float, ...], float, StructuralMetrics]]
    ) -> _DeviceFront:
        floor = 0.0
        for c in self.config.device_constraints(device):
            if c.metric == "accuracy" and c.op == ">=":
                floor = max(floor, c.bound)
        points = []
        for _, acc, m in observed:
            y = self._cheap_point(m, device)
            if y is not None and acc >= floor:
                points.append((acc, y))
        return _DeviceFront.build(points, floor, self._reference(device))

    def _reference(self, device: str) -> tuple[float, ...]:
        """1.1 x the worst cheap objective over the pool (known before any training)."""
        if device not in self._refs:
            pool = self.pool()
            pts = [p for c in pool if (p := self._cheap_point(c.metrics, device)) is not None]
            worst = np.max(np.asarray(pts), axis=0) if pts else ()
            self._refs[device] = tuple(float(w * 1.1 if w > 0 else w * 0.9 + 1e-12) for w in worst)
        return self._refs[device]

    def _potential(
        self, m: StructuralMetrics, fronts: Mapping[str, _DeviceFront], accuracy: float
    ) -> float:
        """Hypervolume the candidate would add to the fronts at ``accuracy``."""
        return sum(
            expected_hvi(fronts[d], self._cheap_point(m, d), accuracy, 0.0) for d in self.devices
        )

    def _predict(
        self, observed: Sequence[tuple[tuple[float, ...], float]], pool: Sequence[_Candidate]
    ) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        x = np.asarray([f for f, _ in observed], dtype=float)
        y = np.asarray([a for _, a in observed], dtype=float)
        xp = np.asarray([c.features for c in pool], dtype=float)
        lo, hi = np.minimum(x.min(0), xp.min(0)), np.maximum(x.max(0), xp.max(0))
        scale = np.where(hi > lo, hi - lo, 1.0)
        x, xp = (x - lo) / scale, (xp - lo) / scale
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(
            length_scale=np.ones(x.shape[1]), length_scale_bounds=(1e-2, 1e2), nu=2.5
        ) + WhiteKernel(1e-4, (1e-8, 1e-1))
        gp = GaussianProcessRegressor(
            kernel=kernel,
            normalize_y=True,
            optimizer=_lbfgs_capped,
            n_restarts_optimizer=0,
            random_state=self._seed,
        )
        import warnings

        from threadpoolctl import threadpool_limits

        # a few dozen points: BLAS threads only contend (with the evaluator's, too)
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")  # convergence warnings on a handful of points
            gp.fit(x, y)
            mu, sigma = gp.predict(xp, return_std=True)
        return np.asarray(mu, dtype=float), np.maximum(np.asarray(sigma, dtype=float), 0.0)

    def _repeat_best(
        self,
        trials: Sequence[FrozenTrial],
        observed: Sequence[tuple[tuple[float, ...], float, StructuralMetrics]],
    ) -> dict[str, Any] | None:
        acc_i = next(i for i, o in enumerate(self.config.objectives) if o.name == "accuracy")
        done = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE
            and t.values
            and "paretoedge.baseline" not in t.user_attrs
        ]
        if not done:
            return None
        best = max(done, key=lambda t: (t.values[acc_i], -t.number))
        return dict(best.params)


@dataclass(frozen=True)
class _DeviceFront:
    """A device's feasible observed points: (accuracy, minimised cheap objectives).

    ``steps`` are the accuracy intervals ``(t0, t1)`` between the front's accuracies (from
    the floor up), each with the points at least as accurate as ``t1`` and their
    hypervolume in the cheap objectives (shared by every candidate scored against it).
    """

    points: tuple[tuple[float, tuple[float, ...]], ...]
    floor: float
    ref: tuple[float, ...]
    steps: tuple[tuple[float, float, tuple[tuple[float, ...], ...], float], ...] = ()

    @classmethod
    def build(
        cls,
        points: Sequence[tuple[float, tuple[float, ...]]],
        floor: float,
        ref: tuple[float, ...],
    ) -> _DeviceFront:
        levels = sorted({a for a, _ in points if a > floor})
        edges = [floor, *levels, math.inf]
        steps = []
        for k in range(len(edges) - 1):
            t0, t1 = edges[k], edges[k + 1]
            q = tuple(p for a, p in points if a >= t1)
            steps.append((t0, t1, q, _hv_min(q, ref) if ref else 0.0))
        return cls(points=tuple(points), floor=floor, ref=ref, steps=tuple(steps))


def expected_hvi(
    front: _DeviceFront, y: tuple[float, ...] | None, mu: float, sigma: float
) -> float:
    """Expected hypervolume improvement of a point with known cheap objectives ``y``
    (minimised) and accuracy ~ N(mu, sigma) (maximised) over ``front``.

    For accuracy t the improvement's cross-section is the part of y's box (up to the
    reference) not dominated by the front points whose accuracy is at least t, a step
    function of t that changes only at the front's accuracies. So the expectation is a sum
    over those intervals of (cross-section) x (integral of P(accuracy >= t) over the
    interval), and that integral has a closed form for a normal distribution. Accuracies
    below the study's accuracy floor (a constraint ``accuracy >= b``, else 0) add nothing.
    ``sigma == 0`` gives the improvement at accuracy ``mu`` exactly.
    """
    if y is None or not front.ref or any(v >= r for v, r in zip(y, front.ref, strict=True)):
        return 0.0
    total = 0.0
    for t0, t1, q, hv_q in front.steps:
        mass = _tail_integral(t0, t1, mu, sigma)
        if mass <= 0:
            continue
        if q:
            cross = _hv_min((*q, y), front.ref) - hv_q
        else:
            cross = math.prod(r - v for r, v in zip(front.ref, y, strict=True))
        total += cross * mass
    return total


def _hv_min(points: Sequence[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """Hypervolume of minimised ``points`` below ``ref``: a direct sweep in one and two
    dimensions (the common case, called for every pool candidate), else the general
    :func:`~paretoedge.search.hypervolume`."""
    pts = [p for p in points if all(x < r for x, r in zip(p, ref, strict=True))]
    if not pts:
        return 0.0
    if len(ref) == 1:
        return ref[0] - min(p[0] for p in pts)
    if len(ref) == 2:
        area, best_y = 0.0, ref[1]
        for x, yv in sorted(pts):
            if yv < best_y:
                area += (ref[0] - x) * (best_y - yv)
                best_y = yv
        return area
    return hypervolume(pts, ref, ["minimize"] * len(ref))


def _lbfgs_capped(
    obj_func: Callable[..., Any], initial_theta: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, float]:
    """scikit-learn's default kernel fit (L-BFGS-B on the log marginal likelihood) with at
    most 50 iterations: the fit runs before every trial, and a few dozen points do not need
    a tighter optimum."""
    from scipy.optimize import minimize

    res = minimize(
        obj_func,
        initial_theta,
        method="L-BFGS-B",
        jac=True,
        bounds=bounds,
        options={"maxiter": 50},
    )
    return res.x, float(res.fun)


def _tail_integral(t0: float, t1: float, mu: float, sigma: float) -> float:
    """The integral of P(N(mu, sigma) >= t) dt over [t0, t1]."""
    if sigma <= 1e-12:
        return max(0.0, min(t1, mu) - t0)

    def h(t: float) -> float:
        if math.isinf(t):
            return 0.0
        z = (t - mu) / sigma
        sf = 0.5 * math.erfc(z / math.sqrt(2))
        pdf = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        return z * sf - pdf

    return max(0.0, sigma * (h(t1) - h(t0)))


def _key(params: Mapping[str, Any]) -> str:
    # floats rounded: Optuna may hand back 0.30000000000000004 for the grid value 0.3
    norm = {k: round(v, 10) if isinstance(v, float) else v for k, v in params.items()}
    return json.dumps(norm, sort_keys=True, default=str)


def _encode(params: Mapping[str, Any], space: Sequence[ParamSpec]) -> list[float]:
    """Numbers in [0, 1] per dimension (one-hot for non-numeric choices; -1 when the
    dimension is inactive for this candidate)."""
    out: list[float] = []
    for p in space:
        v = params.get(p.key)
        if p.kind == "categorical":
            numeric = all(isinstance(c, int | float) and not isinstance(c, bool) for c in p.choices)
            if numeric:
                lo, hi = min(p.choices), max(p.choices)
                out.append(-1.0 if v is None else (float(v) - lo) / ((hi - lo) or 1.0))
            else:
                out.extend(1.0 if v == c else 0.0 for c in p.choices)
            continue
        assert p.low is not None and p.high is not None
        if v is None:
            out.append(-1.0)
        elif p.log:
            out.append(math.log(float(v) / p.low) / (math.log(p.high / p.low) or 1.0))
        else:
            out.append((float(v) - p.low) / ((p.high - p.low) or 1.0))
    return out


def _enumerable(space: Sequence[ParamSpec]) -> bool:
    return all(p.kind == "categorical" or p.step is not None for p in space)


def _draw_pool(space: Sequence[ParamSpec], size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` distinct candidates drawn uniformly (the whole space when it is enumerable
    and has at most ``size`` points), in a seeded order."""
    rng = np.random.RandomState(seed % 2**32)
    if _enumerable(space):
        everything = []
        for i, c in enumerate(enumerate_space(space)):
            if i >= size:
                break
            everything.append(c)
        else:
            order = rng.permutation(len(everything))
            return [everything[int(i)] for i in order]
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for _ in range(size * 20):
        if len(out) >= size:
            break
        cand = _draw_one(space, rng)
        k = _key(cand)
        if k not in seen:
            seen.add(k)
            out.append(cand)
    return out


def _draw_one(space: Sequence[ParamSpec], rng: np.random.RandomState) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for p in space:
        if not p.active(values):
            continue
        if p.kind == "categorical":
            values[p.key] = p.choices[int(rng.randint(len(p.choices)))]
            continue
        assert p.low is not None and p.high is not None
        if p.step is not None or p.kind == "int":
            grid = p.grid() if p.step is not None else tuple(range(int(p.low), int(p.high) + 1))
            values[p.key] = grid[int(rng.randint(len(grid)))]
        elif p.log:
            values[p.key] = float(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
        else:
            values[p.key] = float(rng.uniform(p.low, p.high))
    return values


def evaluator_metrics(evaluator_of: Callable[[], Any], devices: Sequence[str]) -> MetricsFn:
    """A :data:`MetricsFn` over an evaluator's ``structural_metrics`` (built lazily); a
    candidate that cannot be built costs None (the pool drops it). The pool is costed
    grouped by architecture (:func:`~paretoedge.search._cheap_metrics.architecture_key`),
    so that its bit-width and sparsity variants follow one another and share one export."""
    from paretoedge.search._cheap_metrics import architecture_key

    def metrics(specs: Sequence[CompressionSpec]) -> list[StructuralMetrics | None]:
        ev = evaluator_of()
        out: list[StructuralMetrics | None] = [None] * len(specs)
        order = sorted(range(len(specs)), key=lambda i: architecture_key(specs[i]))
        for i in order:
            try:
                out[i] = ev.structural_metrics(specs[i], devices)
            except ParetoEdgeError as exc:
                _log.info("screening: cannot cost %s: %s", specs[i].to_flat(), exc)
        return out

    return metrics


__all__ = ["OPTIONS", "MetricsFn", "ScreeningSampler", "evaluator_metrics", "expected_hvi"]
