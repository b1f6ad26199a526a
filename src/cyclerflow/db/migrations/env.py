"""Alembic environment for the lab database: always given a live connection
(``config.attributes["connection"]``) by :mod:`cyclerflow.db.migrate`."""

from alembic import context

from cyclerflow.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
