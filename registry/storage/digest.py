"""The digest of the registry files last applied, so that an unchanged registry is not validated
again at the next ``planner run FILES``.

``files_digest(paths)`` is a sha256 over what validation depends on: the files' names (as given:
they are written into each process's ``source``) and bytes, this planner's version and schema
revision, and the text of its validation code (``registry.definitions``, ``registry.model``), so
that a new release — or a changed checkout — validates again. ``record`` keeps it in the
``registry_digest`` table, in the transaction of the apply that applied those files;
``unchanged`` tells whether the files' digest is still the one applied.

The stored value binds the files' digest to the registry revision that the apply left
(``registry_revision``, which database triggers bump on every change of the registry tables).
So "unchanged" means both: the files are the ones last applied, and nothing changed the
registry since — no ``planner set`` or ``hold``, no SQL ``UPDATE``, no apply of other files. A
registry changed in between is applied again from the files, as it always was.

What the digest does not see: the code of the job modules that ``run:`` and the hooks name. A job
module changed (or removed) since the last apply, under files that did not change, is not
import-checked again; its run fails, with the import error, when it starts. ``planner apply``
always validates.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, select

from registry.storage.tables import registry_digest, registry_revision

__all__ = ["files_digest", "record", "unchanged"]

#: bump when the digest's inputs change meaning
_FORMAT = b"dask-planner registry digest 1\n"
_ROW = 1


def files_digest(paths: Sequence[str | os.PathLike[str]]) -> str:
    """The sha256 (hex) of the files at ``paths``, in this order, and of this planner.

    ``OSError`` if a file cannot be read (validation then says so, naming it)."""
    digest = hashlib.sha256(_FORMAT)
    digest.update(_planner_identity())
    for path in paths:
        data = Path(path).read_bytes()
        name = os.fsencode(path)
        digest.update(b"%d:%s%d:" % (len(name), name, len(data)))
        digest.update(data)
    return digest.hexdigest()


@cache
def _planner_identity() -> bytes:
    """This planner's version, schema revision and validation code, as bytes."""
    from registry.storage.schema_version import head

    try:
        version = importlib.metadata.version("dask-planner")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        version = "unknown"
    code = hashlib.sha256()
    registry = Path(__file__).resolve().parent.parent
    for source in sorted([*(registry / "definitions").glob("*.py"), registry / "model.py"]):
        code.update(source.name.encode() + b"\0" + source.read_bytes())
    return f"{version}\n{head()}\n{code.hexdigest()}\n".encode()


def _bound(files: str, revision: int) -> str:
    return hashlib.sha256(f"{files}\n{revision}".encode()).hexdigest()


def _revision(conn: Connection) -> int:
    query = select(registry_revision.c.revision).where(registry_revision.c.id == 1)
    return int(conn.execute(query).scalar_one())


def record(conn: Connection, files: str, *, now: datetime) -> None:
    """Remember, inside the apply's transaction and after its writes, that ``files`` (a
    ``files_digest``) were applied and left the registry at its current revision."""
    value = _bound(files, _revision(conn))
    row = conn.execute(
        select(registry_digest.c.id).where(registry_digest.c.id == _ROW)
    ).scalar_one_or_none()
    if row is None:
        conn.execute(registry_digest.insert().values(id=_ROW, digest=value, applied_at=now))
    else:
        conn.execute(
            registry_digest.update()
            .where(registry_digest.c.id == _ROW)
            .values(digest=value, applied_at=now)
        )


def unchanged(conn: Connection, files: str) -> bool:
    """Whether ``files`` were the last files applied and the registry has not changed since."""
    stored = conn.execute(
        select(registry_digest.c.digest).where(registry_digest.c.id == _ROW)
    ).scalar_one_or_none()
    return stored is not None and stored == _bound(files, _revision(conn))
