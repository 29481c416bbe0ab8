"""A twin lookup that stays one index probe as the study grows.

The twin lookup (:func:`paretoedge.storage.candidates_with_spec`) asks for the earliest
trial of a spec: ``WHERE study_id = ? AND spec_hash = ? ... ORDER BY trial_number LIMIT 1``.
With an index on ``(study_id, spec_hash)`` only, SQLite's planner preferred the unique
``(study_id, trial_number)`` index, which returns rows already in order, and walked the
study's candidates from its first trial until one had the spec: a read that grew with the
study (measured with ``EXPLAIN QUERY PLAN`` on a 3,200-trial study). An index on
``(study_id, spec_hash, trial_number)`` serves both the equality and the order, so both
SQLite and PostgreSQL read the twin's rows only. It replaces the two-column index (a prefix
of it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_pe_candidates_study_id_spec_hash"), table_name="pe_candidates")
    op.create_index(
        op.f("ix_pe_candidates_study_id_spec_hash_trial_number"),
        "pe_candidates",
        ["study_id", "spec_hash", "trial_number"],
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_pe_candidates_study_id_spec_hash_trial_number"), table_name="pe_candidates"
    )
    op.create_index(
        op.f("ix_pe_candidates_study_id_spec_hash"), "pe_candidates", ["study_id", "spec_hash"]
    )
