"""Allow the deployment formats beyond ONNX as artifact kinds: ``executorch``, ``tflite``.

``paretoedge export`` writes ExecuTorch programs (``.pte``) for ARM CPUs and phones and
records every written file as an artifact of the candidate; the kind's CHECK constraint
listed only ``onnx``, ``hf``, ``tvm`` and ``card``. Existing rows are unchanged.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_OLD = "kind IN ('onnx', 'hf', 'tvm', 'card')"
_NEW = "kind IN ('onnx', 'hf', 'tvm', 'card', 'executorch', 'tflite')"


def _replace(condition: str) -> None:
    # SQLite cannot alter a constraint: batch mode copies the table; the named CHECK is
    # dropped and re-created under the same name on both dialects
    with op.batch_alter_table("pe_artifacts") as batch:
        batch.drop_constraint(op.f("ck_pe_artifacts_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_pe_artifacts_kind"), condition)


def upgrade() -> None:
    _replace(_NEW)


def downgrade() -> None:
    op.execute("DELETE FROM pe_artifacts WHERE kind IN ('executorch', 'tflite')")
    _replace(_OLD)
