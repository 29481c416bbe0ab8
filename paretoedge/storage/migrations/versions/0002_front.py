"""Precomputed front membership per device, and the indexes of the front query.

``pe_front`` holds the non-dominated-sort rank of every ranked candidate on each device,
written in one transaction by ``replace_front``; ``get_front`` reads it through
``(study_id, device, rank)`` and joins the candidate by primary key and its device
metrics through ``(candidate_id, device)``, so answering never scans a study's trials.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pe_front",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["pe_studies.id"],
            name=op.f("fk_pe_front_study_id_pe_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["pe_candidates.id"],
            name=op.f("fk_pe_front_candidate_id_pe_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("study_id", "device", "candidate_id", name=op.f("pk_pe_front")),
    )
    op.create_index(
        op.f("ix_pe_front_study_id_device_rank"), "pe_front", ["study_id", "device", "rank"]
    )
    op.create_index(
        op.f("ix_pe_device_metrics_device_candidate_id"),
        "pe_device_metrics",
        ["device", "candidate_id"],
    )
    op.create_index(op.f("ix_pe_candidates_study_id_state"), "pe_candidates", ["study_id", "state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pe_candidates_study_id_state"), table_name="pe_candidates")
    op.drop_index(op.f("ix_pe_device_metrics_device_candidate_id"), table_name="pe_device_metrics")
    op.drop_index(op.f("ix_pe_front_study_id_device_rank"), table_name="pe_front")
    op.drop_table("pe_front")
