"""Dask keys of attempts: one key per attempt, named so that Dask groups tasks per process.

The Dask dashboard groups tasks by the *prefix* of their key, ``dask.utils.key_split``: the key's
first ``-``-separated word, then each following word that is all letters (and not an 8-letter
word beginning with ``a``-``f``, which Dask takes for a hash), up to the first word that is not.
An attempt's key is therefore ``<process>-<seq>-a<attempt>`` for run ``<process>-<seq>``: the
prefix is the process name, and the run number ends it.

A process name may hold a ``-`` that Dask would not take into the prefix (``load-v2``,
``x-database``); such a dash is written ``~`` in the key (``load~v2-3-a1``), so the prefix is
the whole name, as readable as Dask allows. ``~`` is not allowed in names, so the key is still
one per attempt (``attempt_of_key`` reads it back). One case Dask shortens whatever we do: a
name beginning with ``_`` is grouped without its leading underscores.

Keys must not change for an attempt already submitted: a restarted planner re-attaches to the
attempts an earlier one left on a remote cluster by computing their keys again
(``planner.live.restart``). So the rule is written out here rather than asked of Dask.
"""

from __future__ import annotations

__all__ = ["attempt_key", "attempt_of_key", "key_prefix"]

_HEX_START = frozenset("abcdef")


def _kept_by_dask(word: str) -> bool:
    """Whether ``key_split`` keeps ``word`` in the prefix when it follows a ``-``."""
    return word.isascii() and word.isalpha() and not (len(word) == 8 and word[0] in _HEX_START)


def key_prefix(process: str) -> str:
    """The first part of the keys of ``process``: its name, with each ``-`` that Dask would end
    the prefix at written ``~``."""
    first, *rest = process.split("-")
    return first + "".join(f"-{w}" if _kept_by_dask(w) else f"~{w}" for w in rest)


def attempt_key(run_id: str, attempt: int) -> str:
    """The Dask key of attempt ``attempt`` of run ``run_id`` (``f"{process}-{seq}"``)."""
    process, _, seq = run_id.rpartition("-")
    if not process or not seq.isdigit():  # not a run id the core makes: all of it is the name
        process, seq = run_id, "0"
    return f"{key_prefix(process)}-{seq}-a{attempt}"


def attempt_of_key(key: str) -> tuple[str, int]:
    """``(run id, attempt)`` of a key made by ``attempt_key``; ``ValueError`` for another key."""
    parts = key.rsplit("-", 2)
    if len(parts) != 3 or not (
        parts[1].isdigit() and parts[2][:1] == "a" and parts[2][1:].isdigit()
    ):
        raise ValueError(f"{key!r} is not the key of an attempt")
    prefix, seq, attempt = parts
    return f"{prefix.replace('~', '-')}-{seq}", int(attempt[1:])
