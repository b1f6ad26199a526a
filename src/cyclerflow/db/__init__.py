"""The lab database: every cell, layer, file, cycle, spectrum and summary in SQLite
(default, ``ROOT/.cyclerflow/lab.db``) or PostgreSQL. Needs the ``[db]`` extra.

Python API (pandas DataFrames): :func:`cyclerflow.db.query.cells`,
:func:`cyclerflow.db.query.query`, :func:`cyclerflow.db.query.table`.
"""
