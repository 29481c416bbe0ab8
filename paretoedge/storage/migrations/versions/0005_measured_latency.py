"""Measured latency beside the prediction: ``pe_measured_latency``.

``paretoedge verify`` rebuilds a front's members, times them on the device's runtime and
stores one row per ``(candidate, device)``: the median and spread of the timed repeats,
the runtime, thread count and file that was timed, and the latency the hardware model
predicted at that moment. A new table, so no existing row changes.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pe_measured_latency",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("runtime", sa.String(length=32), nullable=False),
        sa.Column("artifact", sa.String(length=32), nullable=False),
        sa.Column("threads", sa.Integer(), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("median_ms", sa.Float(), nullable=False),
        sa.Column("min_ms", sa.Float(), nullable=False),
        sa.Column("spread", sa.Float(), nullable=False),
        sa.Column("predicted_ms", sa.Float(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["pe_candidates.id"],
            name=op.f("fk_pe_measured_latency_candidate_id_pe_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_measured_latency")),
        sa.UniqueConstraint(
            "candidate_id", "device", name=op.f("uq_pe_measured_latency_candidate_id_device")
        ),
    )


def downgrade() -> None:
    op.drop_table("pe_measured_latency")
