"""The worst-case latency of an early-exit candidate: ``pe_device_metrics.latency_worst_ms``.

An early-exit model's ``latency_ms`` on a device is the *expected* latency over the
validation set's exit distribution; a deployment with a deadline also needs the latency
when no exit is taken (every layer and every exit head on the path). The column is
nullable: NULL for every candidate without exits, so existing rows are unchanged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pe_device_metrics", sa.Column("latency_worst_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    # SQLite before 3.35 cannot drop a column: batch mode copies the table there
    with op.batch_alter_table("pe_device_metrics") as batch:
        batch.drop_column("latency_worst_ms")
