"""Artifacts: the files produced for a candidate (ONNX, HF directory, TVM library, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paretoedge.errors import ConfigError
from paretoedge.storage._common import (
    ARTIFACTS,
    check_choice,
    check_int,
    check_name,
    insert_for,
    require_candidate,
)
from paretoedge.storage._convert import artifact_record
from paretoedge.storage._models import utcnow
from paretoedge.storage._records import ARTIFACT_KINDS, ArtifactKind, ArtifactRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from paretoedge.storage._engine import Storage


def add_artifact(
    storage: Storage,
    *,
    candidate_id: int,
    kind: ArtifactKind,
    path: str,
    sha256: str,
    bytes: int,
) -> ArtifactRecord:
    """Record a file produced for a candidate; the same ``(kind, path)`` is updated.

    Raises:
        ConfigError: Unknown kind, or a sha256 that is not 64 hex digits.
        NotFoundError: The candidate does not exist.
    """

    check_int("candidate_id", candidate_id, minimum=1)
    check_choice("kind", kind, ARTIFACT_KINDS)
    check_name("path", path, 1024)
    if (
        not isinstance(sha256, str)
        or len(sha256) != 64
        or any(ch not in "0123456789abcdef" for ch in sha256)
    ):
        raise ConfigError("sha256", sha256, "64 lowercase hexadecimal digits")
    check_int("bytes", bytes)

    def work(session: Session) -> ArtifactRecord:
        require_candidate(session, candidate_id)
        stmt = insert_for(session, ARTIFACTS).values(
            candidate_id=candidate_id,
            kind=kind,
            path=path,
            sha256=sha256,
            bytes=bytes,
            created_at=utcnow(),
        )
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["candidate_id", "kind", "path"],
            set_={"sha256": new.sha256, "bytes": new.bytes, "created_at": new.created_at},
        ).returning(*ARTIFACTS.c)
        return artifact_record(session.execute(stmt).mappings().one())

    return storage.run(work)


def list_artifacts(storage: Storage, *, candidate_id: int) -> tuple[ArtifactRecord, ...]:
    """The artifacts recorded for a candidate, oldest first."""
    from sqlalchemy import select

    def work(session: Session) -> tuple[ArtifactRecord, ...]:
        rows = session.execute(
            select(ARTIFACTS)
            .where(ARTIFACTS.c.candidate_id == candidate_id)
            .order_by(ARTIFACTS.c.id)
        ).mappings()
        return tuple(artifact_record(r) for r in rows)

    return storage.run(work, readonly=True)
