"""Write to a temporary name beside the target, rename at the end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from cyclerflow.errors import InputError


def check_output_path(path: str | Path, *, force: bool = False) -> Path:
    """Refuse a missing folder or an existing file (unless ``force``)."""
    path = Path(path)
    if not path.parent.exists():
        raise InputError(f"output folder {str(path.parent)!r} does not exist", path=path)
    if path.exists() and not force:
        raise InputError("output file exists; use --force to overwrite", path=path)
    return path


def remove_stale_parts(path: Path) -> int:
    """Remove temporaries of ``path`` left by writers that were killed (their process is
    gone); returns how many."""
    from cyclerflow.store.lock import pid_alive

    removed = 0
    for part in path.parent.glob(f".{path.name}.part-*"):
        pid = part.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def atomic_output(path: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``path``, on error remove it."""
    path = check_output_path(path, force=force)
    remove_stale_parts(path)
    tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
