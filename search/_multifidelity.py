"""Multi-objective early stopping: successive halving on non-dominated rank.

The recovery fine-tune budget (steps done) is the fidelity. Latency and size of a candidate
are known before it trains; its accuracy improves with steps. At each *rung* (a fixed step
count ``min_fidelity * eta**k``) a candidate's intermediate point — (accuracy, latency per
device..., size...) in the study's objective order — is ranked by constrained
non-dominated sorting against every other candidate that reported a point at that **same**
rung (still running, finished or already stopped). The candidate is stopped when it is
clearly in the worse part of that rung: at least ``ceil(n / eta)`` candidates have a strictly
better non-dominated rank and at least ``min_dominators`` of them dominate it outright. A
candidate on the rung's front is never stopped, and nothing is decided before ``min_peers``
candidates have reached the rung (asynchronous successive halving, as in ASHA, with the one
metric replaced by Pareto rank).

Optuna has no multi-objective pruner (``Trial.report`` and ``Trial.should_prune`` raise for
multi-objective studies), and Ray's ASHA ranks one metric, so the rule lives here once:

* :class:`ParetoHalving` — the pure decision rule, no Optuna, no Ray.
* :class:`RungTable` — an in-memory record of observations, for a driver that sees every
  result (the Ray Tune scheduler in :mod:`paretoedge.search._ray_backend`).
* :class:`ParetoHalvingPruner` — an :class:`optuna.pruners.BasePruner` whose state lives in
  the study's storage: :func:`report_intermediate` stores a point as a trial user attribute,
  so every process that shares the Optuna database (local workers, Ray workers, a resumed
  driver) sees the same rungs and takes the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from paretoedge.errors import ConfigError
from paretoedge.search._pareto import DIRECTIONS, Direction, non_dominated_sort

if TYPE_CHECKING:
    from optuna.study import Study
    from optuna.trial import FrozenTrial, Trial

__all__ = [
    "USER_ATTR_PREFIX",
    "HalvingConfig",
    "HalvingDecision",
    "Observation",
    "ParetoHalving",
    "ParetoHalvingPruner",
    "RungTable",
    "intermediate_observations",
    "report_intermediate",
]

USER_ATTR_PREFIX = "pe_mf:"
"""Prefix of the trial user attributes holding intermediate points (``pe_mf:<step>``)."""


@dataclass(frozen=True)
class HalvingConfig:
    """Parameters of the halving rule.

    Attributes:
        min_fidelity: The first rung, in recovery steps (``>= 1``).
        eta: Reduction factor (``> 1``): rungs are ``min_fidelity * eta**k`` and about
            ``1/eta`` of the candidates reaching a rung go on.
        min_peers: Candidates (this one included) that must have reached a rung before
            anything is stopped there; ``None`` means ``ceil(eta)``.
        min_dominators: Peers at the rung that must Pareto-dominate a candidate before it
            may be stopped (``>= 1``; 1 means "not on the rung's front").
        field: Dotted name of this section in the study config, used in error messages.
    """

    min_fidelity: int
    eta: float = 3.0
    min_peers: int | None = None
    min_dominators: int = 1
    field: str = "early_stopping"

    def __post_init__(self) -> None:
        if isinstance(self.min_fidelity, bool) or not isinstance(self.min_fidelity, int):
            raise ConfigError(f"{self.field}.min_steps", self.min_fidelity, "an integer >= 1")
        if self.min_fidelity < 1:
            raise ConfigError(f"{self.field}.min_steps", self.min_fidelity, "an integer >= 1")
        if (
            isinstance(self.eta, bool)
            or not isinstance(self.eta, int | float)
            or not math.isfinite(self.eta)
            or self.eta <= 1.0
        ):
            raise ConfigError(f"{self.field}.eta", self.eta, "a number > 1")
        if self.min_peers is not None and (
            isinstance(self.min_peers, bool)
            or not isinstance(self.min_peers, int)
            or self.min_peers < 2
        ):
            raise ConfigError(f"{self.field}.min_peers", self.min_peers, "an integer >= 2")
        if (
            isinstance(self.min_dominators, bool)
            or not isinstance(self.min_dominators, int)
            or self.min_dominators < 1
        ):
            raise ConfigError(
                f"{self.field}.min_dominators", self.min_dominators, "an integer >= 1"
            )

    @property
    def peers_needed(self) -> int:
        """Candidates needed at a rung before it may stop any (``min_peers`` resolved)."""
        return self.min_peers if self.min_peers is not None else math.ceil(self.eta)

    def rungs(self, max_fidelity: int) -> tuple[int, ...]:
        """Rung step counts strictly below ``max_fidelity``, ascending.

        The rungs do not depend on ``max_fidelity`` (only their count does), so candidates
        with different recovery budgets are still compared at the same step counts.
        """
        out: list[int] = []
        k = 0
        while True:
            step = int(round(self.min_fidelity * self.eta**k))
            if step >= max_fidelity:
                return tuple(out)
            if not out or step > out[-1]:
                out.append(step)
            k += 1

    def is_rung(self, step: int) -> bool:
        """Whether ``step`` is one of the rungs."""
        return step in self.rungs(step + 1)


@dataclass(frozen=True)
class Observation:
    """One candidate's intermediate point at one fidelity.

    Attributes:
        key: Identifies the candidate (the Optuna trial number).
        fidelity: Recovery steps done when the point was measured.
        point: Objective values in the study's objective order.
        violation: Total constraint violation (0 = feasible); infeasible points rank behind
            every feasible one, as in the study's own Pareto ranking.
    """

    key: Hashable
    fidelity: int
    point: tuple[float, ...]
    violation: float = 0.0


@dataclass(frozen=True)
class HalvingDecision:
    """Why a candidate goes on or stops at a rung (logged and stored with pruned trials).

    Attributes:
        stop: Whether the candidate should stop.
        fidelity: The rung.
        peers: Candidates at the rung, this one included.
        keep: How many candidates the rung keeps (``ceil(peers / eta)``).
        rank: This candidate's non-dominated rank at the rung (0 = front).
        better: Candidates at the rung with a strictly better rank.
        dominators: Candidates at the rung that dominate this one.
        reason: One line for logs.
    """

    stop: bool
    fidelity: int
    peers: int
    keep: int
    rank: int
    better: int
    dominators: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "stop": self.stop,
            "fidelity": self.fidelity,
            "peers": self.peers,
            "keep": self.keep,
            "rank": self.rank,
            "better": self.better,
            "dominators": self.dominators,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ParetoHalving:
    """The decision rule, for a fixed objective order.

    Args:
        config: Rung and reduction parameters.
        directions: One direction per objective, in the order of every point.
    """

    config: HalvingConfig
    directions: tuple[Direction, ...]

    def __post_init__(self) -> None:
        if not self.directions:
            raise ConfigError("directions", self.directions, "at least one objective")
        for i, d in enumerate(self.directions):
            if d not in DIRECTIONS:
                raise ConfigError(f"directions[{i}]", d, DIRECTIONS)

    def _check(self, obs: Observation) -> None:
        if len(obs.point) != len(self.directions):
            raise ConfigError(
                "point", obs.point, f"{len(self.directions)} values in objective order"
            )
        if any(not math.isfinite(v) for v in obs.point):
            raise ConfigError("point", obs.point, "finite numbers")

    def decide(self, obs: Observation, peers: Iterable[Observation]) -> HalvingDecision:
        """Decide for ``obs`` given every other observation known (any fidelity).

        Only peers at ``obs.fidelity`` with another key count; when one key appears several
        times there (a retried trial), its last observation counts.
        """
        self._check(obs)
        same: dict[Hashable, Observation] = {}
        for p in peers:
            if p.fidelity == obs.fidelity and p.key != obs.key:
                self._check(p)
                same[p.key] = p
        group = [obs, *same.values()]
        n = len(group)
        keep = max(1, math.ceil(n / self.config.eta))
        if n < self.config.peers_needed:
            return HalvingDecision(
                stop=False,
                fidelity=obs.fidelity,
                peers=n,
                keep=keep,
                rank=0,
                better=0,
                dominators=0,
                reason=f"{n} of {self.config.peers_needed} candidates needed at step "
                f"{obs.fidelity}",
            )
        ranks = non_dominated_sort(
            [o.point for o in group], self.directions, [o.violation for o in group]
        )
        mine = ranks[0]
        better = sum(1 for r in ranks[1:] if r < mine)
        dominators = sum(
            1
            for p in group[1:]
            if non_dominated_sort(
                [p.point, obs.point], self.directions, [p.violation, obs.violation]
            )
            == [0, 1]
        )
        stop = better >= keep and dominators >= self.config.min_dominators
        if stop:
            reason = (
                f"stopped at step {obs.fidelity}: rank {mine}, {better} of {n} candidates "
                f"rank better (keeps {keep}), dominated by {dominators}"
            )
        else:
            reason = (
                f"continues at step {obs.fidelity}: rank {mine}, {better} of {n} candidates "
                f"rank better (keeps {keep}), dominated by {dominators}"
            )
        return HalvingDecision(
            stop=stop,
            fidelity=obs.fidelity,
            peers=n,
            keep=keep,
            rank=mine,
            better=better,
            dominators=dominators,
            reason=reason,
        )


@dataclass
class RungTable:
    """Observations held in memory, for a single driver that sees every result.

    ``observe`` records a point and decides for it in one call. The table can be seeded with
    the observations of earlier runs of the same study (``history``), so a resumed or
    switched-backend study keeps comparing against every candidate that ever reached a rung.
    Not thread-safe: the Ray Tune driver calls it from its one event loop.
    """

    rule: ParetoHalving
    history: Iterable[Observation] = ()
    _by_rung: dict[int, dict[Hashable, Observation]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_rung = {}
        for obs in self.history:
            self.record(obs)

    def record(self, obs: Observation) -> None:
        """Add (or replace, for the same key and fidelity) an observation."""
        self.rule._check(obs)
        self._by_rung.setdefault(obs.fidelity, {})[obs.key] = obs

    def observe(self, obs: Observation) -> HalvingDecision:
        """Record ``obs`` and decide whether its candidate stops."""
        self.record(obs)
        return self.rule.decide(obs, self._by_rung[obs.fidelity].values())

    def at(self, fidelity: int) -> tuple[Observation, ...]:
        """Every observation recorded at ``fidelity``."""
        return tuple(self._by_rung.get(fidelity, {}).values())


def report_intermediate(
    trial: Trial, step: int, point: Sequence[float], *, violation: float = 0.0
) -> None:
    """Store a candidate's intermediate point at ``step`` on its Optuna trial.

    Replaces ``Trial.report`` (single-objective only in Optuna). The point is kept in a user
    attribute ``pe_mf:<step>`` in the study's storage, so pruners in other processes see it.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ConfigError("step", step, "an integer >= 0")
    values = [float(v) for v in point]
    if any(not math.isfinite(v) for v in values):
        raise ConfigError("point", tuple(point), "finite numbers")
    trial.set_user_attr(
        f"{USER_ATTR_PREFIX}{step}", {"point": values, "violation": float(violation)}
    )


def intermediate_observations(trial: FrozenTrial) -> list[Observation]:
    """The points a trial stored with :func:`report_intermediate`, by ascending step."""
    return _observations(trial.number, trial.user_attrs)


def _observations(key: Hashable, attrs: Mapping[str, Any]) -> list[Observation]:
    out = []
    for name, value in attrs.items():
        if not name.startswith(USER_ATTR_PREFIX) or not isinstance(value, dict):
            continue
        try:
            step = int(name[len(USER_ATTR_PREFIX) :])
            point = tuple(float(v) for v in value["point"])
            violation = float(value.get("violation", 0.0))
        except (KeyError, TypeError, ValueError):
            continue
        out.append(Observation(key=key, fidelity=step, point=point, violation=violation))
    out.sort(key=lambda o: o.fidelity)
    return out


_PEER_STATES = (
    optuna.trial.TrialState.RUNNING,
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
)


class ParetoHalvingPruner(optuna.pruners.BasePruner):
    """Successive halving on non-dominated rank, as an Optuna pruner.

    Works on multi-objective studies because it never uses ``Trial.report``: the objective
    function stores points with :func:`report_intermediate` at each rung and then calls
    ``pruner.prune(study, frozen_trial)`` itself (``Trial.should_prune`` refuses
    multi-objective studies). The decision looks only at the trial's latest stored point and
    only when that point's step is a rung; peers are every running, complete or pruned trial
    of the study with a point at the same step. State lives in the storage, so the pruner is
    stateless, safe to share between threads and identical in every process.

    Args:
        config: Rung and reduction parameters.
        directions: The study's directions, in objective order.
    """

    def __init__(self, config: HalvingConfig, directions: Sequence[Direction]) -> None:
        self.rule = ParetoHalving(config, tuple(directions))

    @property
    def config(self) -> HalvingConfig:
        return self.rule.config

    def rungs(self, max_fidelity: int) -> tuple[int, ...]:
        """The steps at which the objective should report and ask, below ``max_fidelity``."""
        return self.rule.config.rungs(max_fidelity)

    def decide(self, study: Study, trial: FrozenTrial) -> HalvingDecision | None:
        """The decision for the trial's latest point, or ``None`` when there is none to take."""
        have = tuple(d.name.lower() for d in study.directions)
        if have != self.rule.directions:
            raise ConfigError(
                "directions",
                self.rule.directions,
                f"the study's directions {list(have)}",
            )
        mine = intermediate_observations(trial)
        if not mine or not self.rule.config.is_rung(mine[-1].fidelity):
            return None
        obs = mine[-1]
        peers: list[Observation] = []
        for other in study.get_trials(deepcopy=False, states=_PEER_STATES):
            if other.number == trial.number:
                continue
            for o in intermediate_observations(other):
                if o.fidelity == obs.fidelity:
                    peers.append(o)
        return self.rule.decide(obs, peers)

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        decision = self.decide(study, trial)
        return decision is not None and decision.stop
