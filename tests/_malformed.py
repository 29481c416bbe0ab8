"""Malformed study inputs shared by the config, CLI and HTTP suites, and a database digest.

``MUTATIONS`` lists single changes to a valid study (a tiny-bert study on the bundled task)
that must each be refused, with the dotted field the error has to name. The config suite
checks every entry against :func:`paretoedge.search.parse_config`; the CLI and HTTP suites
draw from the same list, so an entry that stopped being refused fails the cheap suite first
and never starts a real search in the others.

``db_digest`` hashes every table of a SQLite database, read through a read-only URI so
that hashing changes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def valid_study(name: str = "hardened") -> dict[str, Any]:
    """A valid study that would run in seconds (never run by these suites)."""
    return {
        "name": name,
        "model": "tiny-bert",
        "task": "sentiment",
        "seed": 0,
        "space": {
            "prune.sparsity": {"low": 0.0, "high": 0.5, "step": 0.25},
            "quant.bits": [32, 8],
        },
        "objectives": ["accuracy", "latency_ms", "size_bytes"],
        "devices": ["rpi4"],
        "constraints": ["accuracy >= 0.5"],
        "sampler": {"name": "nsga2", "options": {"population_size": 4}},
        "budget": {"trials": 2},
        "recovery": {"steps": 0},
    }


@dataclass(frozen=True)
class Mutation:
    """Set ``path`` (a tuple of keys) of the valid study to ``value``; ``field`` is the
    dotted field the error must name (exactly, or as a prefix when it ends with ``*``)."""

    path: tuple[str, ...]
    value: Any
    field: str

    def apply(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(doc)
        node = out
        for key in self.path[:-1]:
            node = node.setdefault(key, {})
        node[self.path[-1]] = self.value
        return out

    def matches(self, field: str) -> bool:
        if self.field.endswith("*"):
            return field.startswith(self.field[:-1])
        return field == self.field

    def __str__(self) -> str:
        shown = repr(self.value)
        return f"{'.'.join(self.path)}={shown[:40]}"


def _m(path: str, value: Any, field: str | None = None) -> Mutation:
    keys = tuple(path.split("/"))
    return Mutation(keys, value, field if field is not None else ".".join(keys))


_NESTED: Any = "leaf"
for _ in range(60):
    _NESTED = [_NESTED]

MUTATIONS: list[Mutation] = [
    # seeds: Optuna/NumPy's range and the database's INTEGER column
    _m("seed", -1),
    _m("seed", 2**40),
    _m("seed", 1e30),
    _m("seed", 1.5),
    _m("seed", True),
    _m("seed", "7"),
    _m("seed", None),
    # budget
    _m("budget/trials", 0),
    _m("budget/trials", -1),
    _m("budget/trials", "many"),
    _m("budget/trials", True),
    _m("budget/trials", 10**9),
    _m("budget/timeout_s", 0),
    _m("budget/timeout_s", float("inf")),
    _m("budget/timeout_s", float("nan")),
    _m("budget/timeout_s", 1e300),
    _m("seq_len", 4),
    _m("seq_len", 10**6),
    _m("seq_len", "long"),
    # sampler options against each sampler's limits
    _m("sampler", "cmaes"),
    _m("sampler", {"name": "cmaes"}, "sampler.name"),
    _m("sampler/options/population_size", -1),
    _m("sampler/options/population_size", 1),
    _m("sampler/options/population_size", "x"),
    _m("sampler/options/population_size", 1.5),
    _m("sampler/options/population_size", True),
    _m("sampler/options/mutation_prob", 5),
    _m("sampler/options/mutation_prob", -0.1),
    _m("sampler/options/mutation_prob", float("nan")),
    _m("sampler/options/crossover_prob", 2),
    _m("sampler/options/swapping_prob", "half"),
    _m("sampler/options/popsize", 8),
    _m("sampler", {"name": "tpe", "options": {"n_ei_candidates": 0}}, "sampler.options.*"),
    _m("sampler", {"name": "tpe", "options": {"group": True}}, "sampler.options.group"),
    _m("sampler", {"name": "gp", "options": {"n_startup_trials": -3}}, "sampler.options.*"),
    _m("sampler", {"name": "random", "options": {"seed": 3}}, "sampler.options.seed"),
    # search space
    _m("space/prune.sparsity", {"low": 0.0, "high": 0.5, "step": 1e-300}, "space.prune.sparsity.*"),
    _m("space/prune.sparsity", {"low": 0.0, "high": float("inf")}, "space.prune.sparsity.*"),
    _m("space/prune.sparsity", {"low": float("nan"), "high": 0.5}, "space.prune.sparsity.*"),
    _m("space/prune.sparsity", {"low": -1e308, "high": 1e308}, "space.prune.sparsity*"),
    _m("space/prune.sparsity", {"low": 0.5, "high": 0.1}, "space.prune.sparsity.high"),
    _m("space/prune.sparsity", {"low": 0.0, "high": 0.99}, "space.prune.sparsity"),
    _m("space/prune.sparsity", {"low": 0.0, "high": 0.5, "step": -0.1}, "space.prune.sparsity.*"),
    _m("space/quant.bits", [3]),
    _m("space/quant.bits", [3, 8]),
    _m("space/quant.bits", [], "space.quant.bits*"),
    _m("space/quant.bits", ["eight"], "space.quant.bits*"),
    _m("space/quant.bits", [True], "space.quant.bits*"),
    _m("space/quant.bits", [8, 8], "space.quant.bits*"),
    _m("space/prune.sparsty", [0.1]),
    _m("space", {}),
    _m("fixed", {"quant.act_bits": 5}, "fixed.quant.act_bits"),
    _m("fixed", {"quant.scheme": "fancy"}, "fixed.quant.scheme"),
    _m("fixed", {"prune.scope": 3}, "fixed.prune.scope"),
    _m("fixed", {"x": _NESTED}, "config"),
    # names: model, task, study
    _m("model", ""),
    _m("model", "../../../../etc"),
    _m("model", "a" * 40),
    _m("model", "/etc"),
    _m("model", "x" * 5000),
    _m("model", 5),
    _m("model", None),
    _m("task", ""),
    _m("task", "/etc/passwd"),
    _m("task", "../../x.csv"),
    _m("task", "nope.csv"),
    _m("task", 5),
    _m("name", "."),
    _m("name", ".."),
    _m("name", "-"),
    _m("name", "-x"),
    _m("name", "a/b"),
    _m("name", "../../x"),
    _m("name", "/abs/x"),
    _m("name", "x" * 101),
    _m("name", ""),
    _m("name", "ab\x00c"),
    _m("name", 5),
    # devices, objectives, constraints
    _m("devices", []),
    _m("devices", ["nowhere"], "devices[0]"),
    _m("devices", ["rpi4", "rpi4"]),
    _m("devices", "rpi4"),
    _m("objectives", ["latency_ms"]),
    _m("objectives", []),
    _m("objectives", ["accuracy", "speed"], "objectives[1].name"),
    _m("objectives", ["accuracy", "latency_ms[pi]"], "objectives[1].device"),
    _m("constraints", ["accuracy = 0.5"], "constraints[0]"),
    _m("constraints", ["latency_ms[rpi4] <= " + "9" * 5000], "constraints[0]"),
    _m("recovery/steps", -1),
    _m("recovery/lr", 0),
    _m("recovery/lr", float("inf")),
    _m("recovery/batch_size", 0),
    _m("baselines", ["fp16"], "baselines[0]"),
    _m("early_stopping", {"min_steps": 0}, "early_stopping.min_steps"),
    _m("ray/port", 70000),
    _m("ray/cpus_per_trial", 1e300),
    _m("teacher/epochs", 1e300),
    _m("recovery/steps", 10**12),
    _m("data/train_limit", 0),
    _m("early_stopping", {"min_steps": 10**12}, "early_stopping.min_steps"),
    # free text and unknown keys
    _m("description", "x" * 300_000, "config"),
    _m("budgett", {}),
    _m("x" * 10_000, 1, "x*"),
]


def db_digest(path: Path) -> str:
    """A hash of every row of every table of the SQLite file at ``path``."""
    h = hashlib.sha256()
    uri = f"file:{path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        for table in tables:
            h.update(table.encode())
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                h.update(repr(row).encode())
    conn.close()
    return h.hexdigest()


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
