"""Write batches of cells over several connections at once during a bulk load.

A bulk load into an empty cycles table on PostgreSQL (:mod:`cyclerflow.db.bulk`) is
bound by the server's work per row (one backend process per connection, one CPU each),
so two COPY streams on two connections load about twice as fast on a two-core server.
Each batch is still its own transaction, as with one stream; lab writers wait on the
load's advisory lock meanwhile. Elsewhere (SQLite: one writer at a time; a table that
already has rows) batches are written one after the other, in this thread.

A batch holding a cell id an earlier batch of this load wrote (two files with one cell
id) is written only after every earlier batch committed, deleting the earlier rows first,
so the later file wins as with one stream.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import sqlalchemy as sa

from cyclerflow.db.bulk import wait_for_bulk_load
from cyclerflow.db.engine import write_transaction
from cyclerflow.db.records import CellRecord
from cyclerflow.db.upsert import write_records

#: parallel COPY streams of a bulk load into an empty cycles table (PostgreSQL)
BULK_STREAMS = 2


def _write(engine: sa.Engine, recs: Sequence[CellRecord], fresh: bool, new: bool) -> None:
    with write_transaction(engine) as conn:
        if not fresh:
            wait_for_bulk_load(conn)
        write_records(conn, recs, new_cycles=new)


class BatchWriter:
    """Writes batches of cell records, each in one transaction; ``fresh``: a bulk load
    into an empty cycles table (:func:`cyclerflow.db.bulk.bulk_load` yielded True), the
    only case written over ``streams`` connections. Use as a context manager: leaving it
    waits for every batch and raises the first failure."""

    def __init__(self, engine: sa.Engine, fresh: bool, streams: int = BULK_STREAMS):
        self.engine = engine
        self.fresh = fresh
        parallel = fresh and engine.dialect.name == "postgresql" and streams > 1
        self.streams = streams if parallel else 1
        self._pool = ThreadPoolExecutor(self.streams) if self.streams > 1 else None
        self._pending: deque[Future] = deque()
        self._seen: set[str] = set()

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def write(self, recs: Sequence[CellRecord]) -> None:
        """Write one batch (in this thread, or on a free stream)."""
        ids = {r.cell_id for r in recs}
        again = bool(ids & self._seen)
        self._seen |= ids
        new = self.fresh and not again
        if self._pool is None:
            _write(self.engine, recs, self.fresh, new)
            return
        self._drain(0 if again else self.streams - 1)
        if again:
            _write(self.engine, recs, self.fresh, new)
            return
        self._pending.append(self._pool.submit(_write, self.engine, recs, self.fresh, new))

    def flush(self) -> None:
        """Wait until every batch written so far is committed (raises its failure)."""
        self._drain(0)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._drain(0)
            else:
                for fut in self._pending:
                    fut.cancel()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
