"""Create or migrate the lab database with Alembic, run programmatically.

The migration scripts live in ``cyclerflow/db/migrations``. A database whose schema
revision this cyclerflow does not know (written by a newer version) is refused: a newer
schema may hold rows this version would misread or overwrite.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from cyclerflow.db.engine import write_transaction
from cyclerflow.errors import InputError

MIGRATIONS = Path(__file__).with_name("migrations")
#: PostgreSQL advisory lock taken while the schema is created or migrated (SQLite writers
#: are serialised by BEGIN IMMEDIATE)
MIGRATE_LOCK_KEY = 0x63666D67  # "cfmg"


@lru_cache(maxsize=1)
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    """The newest schema revision this cyclerflow knows."""
    return _script().get_current_head()


def current(conn: sa.Connection) -> str | None:
    """The schema revision stored in the database (None when it has none yet)."""
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if heads else None


def check_known(rev: str | None, where: str) -> None:
    """Refuse a database of a schema revision this version does not know (a newer one)."""
    if rev is None:
        return
    try:
        _script().get_revision(rev)
    except Exception:  # alembic raises ResolutionError / CommandError subclasses
        raise InputError(
            f"lab database {where} has schema revision {rev!r}, newer than this cyclerflow "
            f"knows (newest: {head()!r}); upgrade cyclerflow to use it"
        ) from None


def upgrade(engine: sa.Engine, where: str) -> tuple[str | None, str]:
    """Create or migrate to the newest schema; returns (revision before, revision after)."""
    from alembic import command

    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":  # two first writers: one creates, one waits
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK_KEY})
        before = current(conn)
        check_known(before, where)
        if before != head():
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return before, head()


def require_current(conn: sa.Connection, where: str) -> None:
    """For readers: the database exists and is at the newest schema."""
    rev = current(conn)
    if rev is None:
        raise InputError(f"lab database {where} is empty: run `cyclerflow db upgrade` first")
    check_known(rev, where)
    if rev != head():
        raise InputError(
            f"lab database {where} has an older schema ({rev!r}): run `cyclerflow db upgrade`"
        )
