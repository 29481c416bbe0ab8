"""Measured MCU memory beside the prediction: ``pe_measured_memory``.

A candidate converted to an int8 TFLite flatbuffer and allocated by TensorFlow Lite
Micro's own interpreter: the flatbuffer's size (flash) and the smallest tensor arena with
which TFLM runs it (SRAM), next to what the hardware model predicted for the same pointer
width (the host's, where TFLM measured). One row per ``(candidate, device)``, replaced by a
newer measurement. A new table, so no existing row changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pe_measured_memory",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("runtime", sa.String(length=32), nullable=False),
        sa.Column("flash_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sram_bytes", sa.BigInteger(), nullable=False),
        sa.Column("predicted_flash_bytes", sa.BigInteger(), nullable=False),
        sa.Column("predicted_sram_bytes", sa.BigInteger(), nullable=False),
        sa.Column("pointer_bytes", sa.Integer(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["pe_candidates.id"],
            name=op.f("fk_pe_measured_memory_candidate_id_pe_candidates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pe_measured_memory")),
        sa.UniqueConstraint(
            "candidate_id", "device", name=op.f("uq_pe_measured_memory_candidate_id_device")
        ),
    )


def downgrade() -> None:
    op.drop_table("pe_measured_memory")
