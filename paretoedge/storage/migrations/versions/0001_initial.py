"""Studies, candidates, per-device metrics and artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "pe_studies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("optuna_study_name", sa.String(512), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("devices", JSON, nullable=False),
        sa.Column("objectives", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'stopped', 'failed')",
            name=op.f("ck_pe_studies_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_pe_studies_name")),
    )
    op.create_table(
        "pe_candidates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("trial_number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("is_baseline", sa.Boolean(), nullable=False),
        sa.Column("baseline_name", sa.String(64), nullable=True),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("test_accuracy", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("parameters", sa.BigInteger(), nullable=True),
        sa.Column("sparsity", sa.Float(), nullable=True),
        sa.Column("fidelity", sa.Integer(), nullable=True),
        sa.Column("wall_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('running', 'complete', 'pruned', 'failed')",
            name=op.f("ck_pe_candidates_state"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["pe_studies.id"],
            name=op.f("fk_pe_candidates_study_id_pe_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_candidates")),
        sa.UniqueConstraint(
            "study_id", "trial_number", name=op.f("uq_pe_candidates_study_id_trial_number")
        ),
    )
    op.create_table(
        "pe_device_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("energy_mj", sa.Float(), nullable=True),
        sa.Column("flash_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sram_bytes", sa.BigInteger(), nullable=True),
        sa.Column("feasible", sa.Boolean(), nullable=False),
        sa.Column("violations", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["pe_candidates.id"],
            name=op.f("fk_pe_device_metrics_candidate_id_pe_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_device_metrics")),
        sa.UniqueConstraint(
            "candidate_id", "device", name=op.f("uq_pe_device_metrics_candidate_id_device")
        ),
    )
    op.create_table(
        "pe_artifacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('onnx', 'hf', 'tvm', 'card')", name=op.f("ck_pe_artifacts_kind")
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["pe_candidates.id"],
            name=op.f("fk_pe_artifacts_candidate_id_pe_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_artifacts")),
        sa.UniqueConstraint(
            "candidate_id", "kind", "path", name=op.f("uq_pe_artifacts_candidate_id_kind_path")
        ),
    )


def downgrade() -> None:
    op.drop_table("pe_artifacts")
    op.drop_table("pe_device_metrics")
    op.drop_table("pe_candidates")
    op.drop_table("pe_studies")
