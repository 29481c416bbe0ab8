"""Candidates' specs as versioned documents instead of flat dotted keys.

Up to 0008 ``pe_candidates.spec`` held the flat form (``{"quant.bits": 8, ...}``); from
0009 it holds the :class:`~paretoedge.compression.CompressionSpec` document
(``{"_type": "CompressionSpec", "_version": 2, "_data": {"quant": {"_type":
"QuantConfig", "_version": 1, "_data": {...}}}}``), which storage reads back as the typed
spec. The column type is unchanged (JSON; JSONB on PostgreSQL).

Upgrade: each flat spec is read as paretoedge always read it (``CompressionSpec.from_flat``,
which fills each set transform's defaults) and written as the document. A flat spec the
compression configs refuse (none is written by paretoedge's search) is kept whole inside a
version-1 document, ``{"_type": "CompressionSpec", "_version": 1, "_data": <the flat
keys>}``, so nothing stored is lost; reading that candidate then reports why it does not
load.

Downgrade: each document becomes its flat keys again (``CompressionSpec.to_flat``: every
field of every set transform, the form the search has always stored); a version-1 document
that does not load gives back the flat keys it kept.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 500
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_CANDIDATES = sa.table("pe_candidates", sa.column("id", sa.Integer), sa.column("spec", _JSON))


def _is_document(value: Any) -> bool:
    return isinstance(value, Mapping) and "_type" in value


def _to_document(value: Any) -> Any:
    from paretoedge.compression import CompressionSpec
    from paretoedge.errors import ConfigError

    if _is_document(value) or not isinstance(value, Mapping):
        return value
    try:
        return CompressionSpec.from_flat(value).to_dict()
    except ConfigError:
        return {"_type": "CompressionSpec", "_version": 1, "_data": dict(value)}


def _to_flat(value: Any) -> Any:
    from paretoedge.compression import CompressionSpec
    from paretoedge.errors import ConfigError

    if not _is_document(value):
        return value
    try:
        return CompressionSpec.from_dict(value).to_flat()
    except ConfigError:
        if value.get("_version") == 1 and isinstance(value.get("_data"), Mapping):
            return dict(value["_data"])
        raise


def _rewrite(convert: Callable[[Any], Any]) -> None:
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
        changed = []
        for cid, spec in rows:
            new = convert(spec)
            if new != spec:
                changed.append({"cid": cid, "new": new})
        if changed:
            bind.execute(
                _CANDIDATES.update()
                .where(_CANDIDATES.c.id == sa.bindparam("cid"))
                .values(spec=sa.bindparam("new", type_=_JSON)),
                changed,
            )
        last = rows[-1][0]


def upgrade() -> None:
    _rewrite(_to_document)


def downgrade() -> None:
    _rewrite(_to_flat)
