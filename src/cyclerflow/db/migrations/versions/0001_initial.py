"""Initial lab database schema: cells, layers, files, analysis_runs, cycles, spectra,
summaries, events, known_keys.

Revision ID: 0001
"""

from alembic import op

from cyclerflow.db.schema import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the first revision creates the tables as schema.py defines them; later revisions
    # change them with explicit op.* calls (tests/db checks the result matches schema.py)
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    metadata.drop_all(op.get_bind())
