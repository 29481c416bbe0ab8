"""Studies: create (idempotent), read, list with trial counts, status and devices.

Same contract as every data-access module (:mod:`paretoedge.storage`): keyword-only
arguments, one retried transaction, frozen records out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from paretoedge.errors import ConfigError
from paretoedge.storage._common import (
    CANDIDATES,
    DEVICE_MAX,
    NAME_MAX,
    STUDIES,
    check_choice,
    check_int,
    check_json,
    check_name,
    insert_for,
    study_row,
)
from paretoedge.storage._convert import study_record
from paretoedge.storage._models import utcnow
from paretoedge.storage._records import (
    DIRECTIONS,
    STUDY_STATUSES,
    ObjectiveRecord,
    StudyRecord,
    StudyStatus,
    StudySummary,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from paretoedge.storage._engine import Storage


def _objectives(value: Iterable[ObjectiveRecord | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, obj in enumerate(value):
        if isinstance(obj, ObjectiveRecord):
            obj = obj.to_dict()
        if not isinstance(obj, Mapping) or set(obj) - {"name", "device", "direction"}:
            raise ConfigError(
                f"objectives[{i}]", obj, "a mapping with keys name, device, direction"
            )
        name = check_name(f"objectives[{i}].name", obj.get("name"), NAME_MAX)
        device = obj.get("device")
        if device is not None:
            check_name(f"objectives[{i}].device", device, DEVICE_MAX)
        direction = check_choice(f"objectives[{i}].direction", obj.get("direction"), DIRECTIONS)
        out.append({"name": name, "device": device, "direction": direction})
    if not out:
        raise ConfigError("objectives", [], "at least one objective")
    return out


def _devices(value: Iterable[str]) -> list[str]:
    if isinstance(value, str):
        raise ConfigError("devices", value, "a list of device names")
    devices = [check_name(f"devices[{i}]", d, DEVICE_MAX) for i, d in enumerate(value)]
    if not devices:
        raise ConfigError("devices", devices, "at least one device")
    if len(set(devices)) != len(devices):
        raise ConfigError("devices", devices, "distinct device names")
    return devices


def _diff(stored: Mapping[str, Any], new: Mapping[str, Any], prefix: str) -> list[str]:
    keys = sorted(set(stored) | set(new))
    return [f"{prefix}{k}" for k in keys if stored.get(k) != new.get(k)]


def create_study(
    storage: Storage,
    *,
    name: str,
    config: Mapping[str, Any],
    devices: Sequence[str],
    objectives: Sequence[ObjectiveRecord | Mapping[str, Any]],
    seed: int,
    optuna_study_name: str | None = None,
) -> StudyRecord:
    """Store a new study, or return the stored one if it has exactly this definition.

    Calling it again with the same arguments (a second worker, a restarted process)
    returns the existing study unchanged, status included.

    Args:
        name: Unique study name (1-200 characters).
        config: The full validated study configuration (JSON-serialisable).
        devices: Target device names, distinct, at least one.
        objectives: ``ObjectiveRecord`` or mappings ``{name, device, direction}``.
        seed: The study's seed.
        optuna_study_name: Name of the Optuna study in the same database (default: name).

    Raises:
        ConfigError: Invalid arguments, or ``study``: a study with this name exists with a
            different config, devices, objectives, seed or Optuna study name.
    """
    from sqlalchemy import select

    check_name("study", name, NAME_MAX)
    values = {
        "name": name,
        "optuna_study_name": check_name("optuna_study_name", optuna_study_name or name, 512),
        "config": check_json(
            "config", dict(config) if isinstance(config, Mapping) else config, dict
        ),
        "devices": _devices(devices),
        "objectives": _objectives(objectives),
        "seed": check_int("seed", seed, minimum=-(2**31)),
        "status": "running",
    }

    def work(session: Session) -> StudyRecord:
        now = utcnow()
        stmt = insert_for(session, STUDIES).values(**values, created_at=now, updated_at=now)
        session.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        row = session.execute(select(STUDIES).where(STUDIES.c.name == name)).mappings().one()
        differs = _diff(row["config"], values["config"], "config.")
        for key in ("devices", "objectives", "seed", "optuna_study_name"):
            if row[key] != values[key]:
                differs.append(key)
        if differs:
            raise ConfigError(
                "study",
                name,
                "a name not in use, or exactly the stored study's definition "
                f"(a study {name!r} exists; it differs in {', '.join(differs)})",
            )
        return study_record(row)

    return storage.run(work)


def get_study(storage: Storage, *, name: str) -> StudyRecord:
    """The study called ``name``.

    Raises:
        NotFoundError: No such study (the message lists stored ones).
    """
    return storage.run(lambda s: study_record(study_row(s, name)), readonly=True)


def list_studies(storage: Storage) -> tuple[StudySummary, ...]:
    """Every study, oldest first, with its number of trials in each state."""
    from sqlalchemy import func, select

    def work(session: Session) -> tuple[StudySummary, ...]:
        counts: dict[int, dict[str, int]] = {}
        grouped = select(
            CANDIDATES.c.study_id, CANDIDATES.c.state, func.count().label("n")
        ).group_by(CANDIDATES.c.study_id, CANDIDATES.c.state)
        for study_id, state, n in session.execute(grouped):
            counts.setdefault(study_id, {})[state] = n
        out = []
        for row in session.execute(select(STUDIES).order_by(STUDIES.c.id)).mappings():
            c = counts.get(row["id"], {})
            out.append(
                StudySummary(
                    study=study_record(row),
                    trials_complete=c.get("complete", 0),
                    trials_failed=c.get("failed", 0),
                    trials_running=c.get("running", 0),
                    trials_pruned=c.get("pruned", 0),
                )
            )
        return tuple(out)

    return storage.run(work, readonly=True)


def set_study_status(storage: Storage, *, study: str, status: StudyStatus) -> StudyRecord:
    """Set a study's status (``running``, ``finished``, ``stopped``, ``failed``).

    Raises:
        ConfigError: Unknown status.
        NotFoundError: No such study.
    """
    from sqlalchemy import update

    check_choice("status", status, STUDY_STATUSES)

    def work(session: Session) -> StudyRecord:
        row = study_row(session, study, for_update=True)
        session.execute(
            update(STUDIES)
            .where(STUDIES.c.id == row["id"])
            .values(status=status, updated_at=utcnow())
        )
        return study_record(study_row(session, study))

    return storage.run(work)


def add_study_device(storage: Storage, *, study: str, device: str) -> StudyRecord:
    """Add ``device`` to a study's target devices (``paretoedge add-device``); idempotent.

    Raises:
        NotFoundError: No such study.
    """
    from sqlalchemy import update

    check_name("device", device, DEVICE_MAX)

    def work(session: Session) -> StudyRecord:
        row = study_row(session, study, for_update=True)
        if device not in row["devices"]:
            session.execute(
                update(STUDIES)
                .where(STUDIES.c.id == row["id"])
                .values(devices=[*row["devices"], device], updated_at=utcnow())
            )
        return study_record(study_row(session, study))

    return storage.run(work)
