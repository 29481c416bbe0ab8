"""Trial claims (budgets counted in the database, owners of running trials); fronts
recomputed where an earlier upgrade left them empty.

``pe_trial_claims`` holds one row per budget slot taken by a worker: the trial it is bound
to (``NULL`` between the claim and Optuna's ``ask``) and the owning process (host key, pid,
start time), see :mod:`paretoedge.storage._claims`.

Revision 0002 created ``pe_front`` empty, so a database upgraded from 0001 showed empty
fronts until a ``resume`` ranked the study again. This revision ranks every
``(study, device)`` that has measured complete candidates but no front rows
(:func:`paretoedge.search._refront.recompute_missing_fronts`), so an upgrade leaves the fronts
a user had.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pe_trial_claims",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Column("owner_host", sa.String(255), nullable=False),
        sa.Column("owner_pid", sa.Integer(), nullable=False),
        sa.Column("owner_started", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["pe_studies.id"],
            name=op.f("fk_pe_trial_claims_study_id_pe_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_trial_claims")),
        sa.UniqueConstraint(
            "study_id", "trial_number", name=op.f("uq_pe_trial_claims_study_id_trial_number")
        ),
    )
    from paretoedge.search._refront import recompute_missing_fronts

    recompute_missing_fronts(op.get_bind())


def downgrade() -> None:
    op.drop_table("pe_trial_claims")
