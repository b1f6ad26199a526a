"""Drop the foreign key of cycles (bulk loads were 2.6x slower with a per-row key check).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

from cyclerflow.db import schema as S

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _cycles_foreign_keys(bind) -> list[dict]:
    return sa.inspect(bind).get_foreign_keys("cycles")


def _sqlite_recreate(bind) -> None:
    """SQLite cannot drop a constraint: copy the rows into the table schema.py defines."""
    op.execute("ALTER TABLE cycles RENAME TO _cycles_0001")
    S.cycles.create(bind)
    names = ", ".join(f'"{c.name}"' for c in S.cycles.columns)
    op.execute(f"INSERT INTO cycles ({names}) SELECT {names} FROM _cycles_0001")
    op.execute("DROP TABLE _cycles_0001")


def upgrade() -> None:
    bind = op.get_bind()
    fks = _cycles_foreign_keys(bind)
    if not fks:  # a database created at this revision (0001 creates schema.py's tables)
        return
    if bind.dialect.name == "sqlite":
        _sqlite_recreate(bind)
        return
    for fk in fks:
        op.drop_constraint(fk["name"], "cycles", type_="foreignkey")


def downgrade() -> None:
    op.create_foreign_key(
        "cycles_cell_id_fkey", "cycles", "cells", ["cell_id"], ["cell_id"], ondelete="CASCADE"
    )
