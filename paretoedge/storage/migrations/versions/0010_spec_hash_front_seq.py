"""Per-trial work that does not grow with the study: a spec hash and versioned fronts.

``pe_candidates.spec_hash`` holds :meth:`CompressionSpec.digest` of the stored spec, with an
index on ``(study_id, spec_hash)``: the search finds an already evaluated twin of a proposed
spec by one indexed lookup instead of reading every candidate. Existing rows are backfilled
from their stored spec document (read as storage reads it); a document that does not load
keeps NULL (it can never be a twin).

``pe_studies.front_version`` counts the transactions that wrote the study's fronts,
``pe_studies.front_reset`` is the version of the last whole-ranking replacement, and
``pe_front.seq`` is the version at which a row was added (indexed with the study and
device). A worker that keeps the ranking in memory reads only the rows added since the
version it saw, instead of ranking every candidate again after each trial. Existing rows
get 0 everywhere: a worker starting on an upgraded database reads its fronts once.

Downgrade drops the indexes and columns (on SQLite with ``ALTER TABLE ... DROP COLUMN``,
SQLite 3.35 or newer, as Python's own builds have shipped since 2021).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BATCH = 500
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_CANDIDATES = sa.table(
    "pe_candidates",
    sa.column("id", sa.Integer),
    sa.column("spec", _JSON),
    sa.column("spec_hash", sa.String),
)


def _digest(spec: Any) -> str | None:
    from paretoedge.errors import StorageError
    from paretoedge.storage._convert import spec_from_column

    try:
        return spec_from_column(spec).digest()
    except StorageError:
        return None


def _backfill() -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(_CANDIDATES.c.id, _CANDIDATES.c.spec)
            .where(_CANDIDATES.c.id > last)
            .order_by(_CANDIDATES.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        values = [{"cid": cid, "h": h} for cid, spec in rows if (h := _digest(spec)) is not None]
        if values:
            bind.execute(
                _CANDIDATES.update()
                .where(_CANDIDATES.c.id == sa.bindparam("cid"))
                .values(spec_hash=sa.bindparam("h")),
                values,
            )
        last = rows[-1][0]


def upgrade() -> None:
    op.add_column("pe_candidates", sa.Column("spec_hash", sa.String(length=64), nullable=True))
    op.create_index(
        op.f("ix_pe_candidates_study_id_spec_hash"), "pe_candidates", ["study_id", "spec_hash"]
    )
    for column in ("front_version", "front_reset"):
        op.add_column(
            "pe_studies", sa.Column(column, sa.Integer(), server_default="0", nullable=False)
        )
    op.add_column("pe_front", sa.Column("seq", sa.Integer(), server_default="0", nullable=False))
    op.create_index(
        op.f("ix_pe_front_study_id_device_seq"), "pe_front", ["study_id", "device", "seq"]
    )
    _backfill()


def downgrade() -> None:
    op.drop_index(op.f("ix_pe_front_study_id_device_seq"), table_name="pe_front")
    op.drop_index(op.f("ix_pe_candidates_study_id_spec_hash"), table_name="pe_candidates")
    # A plain DROP COLUMN (SQLite >= 3.35), not batch mode: batch mode copies the table,
    # and dropping the old pe_studies or pe_candidates would cascade to every child row.
    op.drop_column("pe_front", "seq")
    op.drop_column("pe_studies", "front_reset")
    op.drop_column("pe_studies", "front_version")
    op.drop_column("pe_candidates", "spec_hash")
