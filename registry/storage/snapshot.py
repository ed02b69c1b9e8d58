"""The registry as a writer last validated it, so that reading an unchanged registry validates
nothing.

Loading the registry from its tables decodes every row and validates it like a YAML file
(``registry.storage.queries.load_registry``): at 20,000 processes, seconds of CPU for every
``planner plan``, ``status``, ``explain`` or API read, and for every reload of the live planner.
Yet the rows change only when ``registry_revision`` does (database triggers bump it on every
change of the registry tables, direct SQL edits included). So whoever has just validated the
rows and may write keeps the result in ``registry_snapshot``: what ``load_registry`` returned
(the ``RegistryDef`` with its valid and invalid processes and problems, and the first-applied
times), pickled, with the revision it is of and this planner's ``identity()``. ``read`` takes it,
in the caller's read transaction together with the revision, when both still match; otherwise the
caller validates the rows as before. This follows ``registry.storage.digest``, which binds the
digest of the files last applied to the revision the same way.

- Writers store it (``write``): ``SqlStore.apply`` and ``update_processes`` in their transaction
  after their writes, so the revision recorded is the one they leave; ``SqlStore.load_registry(
  refresh=True)`` (the live planner's reload) in a short write transaction after its read, fenced
  like the planner's other writes, and only if the revision is still the one it read.
- Read-only commands never write it: after a direct SQL edit they validate the rows in full, and
  refuse a bad row for that process alone, until a writer stores a new snapshot.
- ``identity()`` covers what the result depends on besides the rows: the planner's version,
  schema revision and validation code (``digest``), the code that decodes the rows (``codec``,
  ``queries``, this module), Python's version and pydantic's. Another release, a changed
  checkout or an upgraded pydantic validates again.

Why pickle: a snapshot is read only from the planner's own database, and whoever can write that
database can already make the planner run any code it likes (a process's ``run:`` or
``command:``), so unpickling what it holds crosses no trust boundary that the rows themselves do
not. A snapshot that fails to load, whatever the exception, is ignored (with a warning) and the
rows are validated as before. The definitions there is one of per process (``ProcessDef``,
``Source``) are pickled as their field values and rebuilt through their slots, and the cyclic
collector is paused while a snapshot loads: both would otherwise cost more than the rest of it.

What the revision cannot tell: an operator who sets the counter back by hand
(``UPDATE registry_revision SET revision = ...``) and then changes the rows until it reaches a
snapshot's revision again. Any write of a row through the store stores a new one.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import importlib.metadata
import io
import logging
import pickle
import sys
from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, select

from registry.model import ProcessDef, RegistryDef, Source
from registry.storage import digest
from registry.storage.tables import registry_revision, registry_snapshot

__all__ = ["Loaded", "current_revision", "fresh", "identity", "read", "write"]

log = logging.getLogger(__name__)

#: what ``load_registry`` returns: the registry, and per process when it was first applied
Loaded = tuple[RegistryDef, dict[str, datetime]]

#: bump when what a snapshot holds changes meaning
_FORMAT = b"dask-planner registry snapshot 1\n"
_PROTOCOL = 5
_ROW = 1
#: the storage modules whose code decides what loading the rows gives (besides ``digest``'s)
_CODE = ("codec.py", "queries.py", "snapshot.py")


@cache
def identity() -> str:
    """The sha256 (hex) of what a snapshot's content depends on besides the rows."""
    found = hashlib.sha256(_FORMAT)
    found.update(digest._planner_identity())
    found.update(f"python {sys.version_info[0]}.{sys.version_info[1]}\n".encode())
    for package in ("pydantic", "pydantic-core"):
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "none"
        found.update(f"{package} {version}\n".encode())
    here = Path(__file__).resolve().parent
    for name in _CODE:
        found.update(name.encode() + b"\0" + (here / name).read_bytes())
    return found.hexdigest()


def current_revision(conn: Connection) -> int:
    query = select(registry_revision.c.revision).where(registry_revision.c.id == 1)
    return int(conn.execute(query).scalar_one())


def _this(revision: int) -> ColumnElement[bool]:
    """The snapshot row is one of ``revision`` by this planner."""
    return and_(
        registry_snapshot.c.id == _ROW,
        registry_snapshot.c.revision == revision,
        registry_snapshot.c.identity == identity(),
    )


def fresh(conn: Connection, revision: int) -> bool:
    """Whether a snapshot of ``revision`` by this planner is stored (its data left unread)."""
    query = select(registry_snapshot.c.id).where(_this(revision))
    return conn.execute(query).scalar_one_or_none() is not None


def read(conn: Connection) -> tuple[int, Loaded | None]:
    """The registry revision, and the snapshot if it is of that revision, by this planner, and
    loads; ``None`` otherwise (the caller validates the rows, in the same transaction)."""
    revision = current_revision(conn)
    data = conn.execute(
        select(registry_snapshot.c.data).where(_this(revision))
    ).scalar_one_or_none()
    return revision, None if data is None else _loads(data)


def write(conn: Connection, loaded: Loaded, *, revision: int) -> bool:
    """Keep ``loaded``, what the rows gave at ``revision``, as the snapshot; in a write
    transaction. Nothing is written if the registry is no longer at ``revision`` (the snapshot
    would be stale at once). Whether it was written."""
    locked = select(registry_revision.c.revision).where(registry_revision.c.id == 1)
    if int(conn.execute(locked.with_for_update()).scalar_one()) != revision:
        return False
    try:
        data = _dumps(loaded)
    except Exception as exc:  # a value pickle cannot take: no snapshot, the write goes on
        log.warning("no registry snapshot: the registry does not pickle: %r", exc)
        return False
    values = {"revision": revision, "identity": identity(), "data": data}
    exists = conn.execute(
        select(registry_snapshot.c.id).where(registry_snapshot.c.id == _ROW)
    ).scalar_one_or_none()
    if exists is None:
        conn.execute(registry_snapshot.insert().values(id=_ROW, **values))
    else:
        conn.execute(
            registry_snapshot.update().where(registry_snapshot.c.id == _ROW).values(**values)
        )
    return True


def _dumps(loaded: Loaded) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=_PROTOCOL).dump(loaded)
    return out.getvalue()


class _Pickler(pickle.Pickler):
    """Pickles the definitions there is one of per process as their class and field values.

    Left to themselves, frozen dataclasses with slots unpickle through ``dataclasses``'
    ``__setstate__``, which looks their fields up again for every object: a third of the load."""

    def reducer_override(self, obj: Any) -> Any:
        names = _FIELDS.get(type(obj))
        if names is None:
            return NotImplemented
        return _rebuild, (type(obj), tuple([getattr(obj, name) for name in names]))


#: the definitions ``_Pickler`` pickles by their fields, and the fields' names in order
_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in (ProcessDef, Source)
}
#: their slots' own descriptors' setters, which the frozen classes' ``__init__`` goes through too
_SETTERS: dict[type, tuple[Callable[[Any, Any], None], ...]] = {
    cls: tuple(getattr(cls, name).__set__ for name in names) for cls, names in _FIELDS.items()
}


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    """The object of ``cls`` with ``values`` as its fields, in ``_FIELDS[cls]``'s order."""
    setters = _SETTERS.get(cls)
    if setters is None or len(values) != len(setters):
        raise pickle.UnpicklingError(f"not a definition of this planner: {cls!r}")
    obj: Any = object.__new__(cls)
    for setter, value in zip(setters, values, strict=True):
        setter(obj, value)
    return obj


def _loads(data: bytes) -> Loaded | None:
    # Unpickling makes some hundred thousand objects at once; the cyclic collector would walk the
    # growing heap again and again meanwhile (half the time at 20,000 processes) for nothing.
    enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = pickle.loads(data)
    except Exception as exc:  # whatever it is, the rows are still there to validate
        log.warning("ignoring the registry snapshot, which does not load: %r", exc)
        return None
    finally:
        if enabled:
            gc.enable()
    if not (
        isinstance(loaded, tuple)
        and len(loaded) == 2
        and isinstance(loaded[0], RegistryDef)
        and isinstance(loaded[1], dict)
    ):
        log.warning("ignoring the registry snapshot, which holds %s", type(loaded).__name__)
        return None
    return loaded
