"""The candidate list: every candidate under its rank key, and the same keys grouped by the
capacity they need, so that an allocation skips what cannot start.

``Candidates`` behaves like the sorted list of rank keys it replaces (``add``, ``discard``,
``remove``, iteration best-first, ``len``, indexing). Besides, each key sits in the **group** of
its process's ``(pool, resources)``: every member of a group is blocked by the same pool or the
same resources, with the same reason, so "this pool is full" is one check for the whole group.

What an allocation round must reproduce is the plain walk — every candidate best-first, each
started or held back with its capacity reason — until the slots are full. Holding back a
candidate whose reasons, last logged decision and alarm already say the same (``settled``)
changes nothing, so a **closed** group (its pool full, or no worker with its resources) only needs
its *pending* members visited: a superset of those that are not settled with the group's current
reason. A member becomes pending when it joins (or is re-evaluated, or gets another reason), and
stops being pending when it is held back with the group's reason; when that reason changes (a
pool's count or size changed, a resource block became a pool block), every member is pending
again. ``Walk`` merges the heads of the groups, taking from an open group its next member and from
a closed one its next pending member, so a decision costs O(groups + visited · log n) however many
candidates full pools park at the head of the list.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sortedcontainers import SortedList

from planner.core.events import Reason
from planner.core.state import ProcState

Key = tuple[Any, ...]  # a rank key, ending with the process name
GroupKey = tuple[str | None, tuple[tuple[str, float], ...]]


def group_key(ps: ProcState) -> GroupKey:
    d = ps.definition
    return (d.pool, tuple(sorted(d.resources.items())) if d.resources else ())


@dataclass(slots=True, eq=False)
class Group:
    """The candidates that need one pool and one set of resources."""

    pool: str | None
    resources: dict[str, float]
    keys: SortedList = field(default_factory=SortedList)
    #: members perhaps not settled with ``reason``; None for a group that never closes
    pending: SortedList | None = None
    #: the capacity reason the members outside ``pending`` hold (their last hold-back)
    reason: Reason | None = None

    @property
    def closable(self) -> bool:
        return self.pending is not None


class Candidates:
    """Candidates best-first (a sorted list of rank keys), also grouped by capacity needs."""

    def __init__(self, states: Mapping[str, ProcState], keys: Iterable[Key] = ()) -> None:
        self._states = states
        self._all = SortedList()
        self.groups: dict[GroupKey, Group] = {}
        self._group_of: dict[str, Group] = {}
        self.update(keys)

    # -- the sorted list of keys ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._all)

    def __bool__(self) -> bool:
        return len(self._all) > 0

    def __iter__(self) -> Iterator[Key]:
        return iter(self._all)

    def __getitem__(self, index: int) -> Key:
        key: Key = self._all[index]
        return key

    def __contains__(self, key: object) -> bool:
        return key in self._all

    def add(self, key: Key) -> None:
        self._all.add(key)
        self._join(key)

    def update(self, keys: Iterable[Key]) -> None:
        keys = list(keys)
        self._all.update(keys)  # one sort for many keys (a cold evaluation)
        by_group: dict[Group, list[Key]] = {}
        for key in keys:
            by_group.setdefault(self._group_for(key), []).append(key)
        for group, members in by_group.items():
            for key in members:
                self._group_of[key[-1]] = group
            group.keys.update(members)
            if group.pending is not None:
                group.pending.update(members)

    def discard(self, key: Key) -> None:
        if key not in self._all:
            return
        self._all.remove(key)
        group = self._group_of.pop(key[-1])
        group.keys.discard(key)
        if group.pending is not None:
            group.pending.discard(key)

    def remove(self, key: Key) -> None:
        if key not in self._all:
            raise ValueError(f"{key!r} is not a candidate")
        self.discard(key)

    # -- groups -----------------------------------------------------------------------------------

    def _group_for(self, key: Key) -> Group:
        gk = group_key(self._states[key[-1]])
        group = self.groups.get(gk)
        if group is None:
            pool, resources = gk
            group = Group(pool=pool, resources=dict(resources))
            if pool is not None or resources:
                group.pending = SortedList()
            self.groups[gk] = group
        return group

    def _join(self, key: Key) -> None:
        group = self._group_for(key)
        self._group_of[key[-1]] = group
        group.keys.add(key)
        if group.pending is not None:
            group.pending.add(key)

    def group_of(self, name: str) -> Group:
        return self._group_of[name]

    def unsettle(self, key: Key) -> None:
        """The candidate's reasons changed outside a hold-back (it was re-evaluated)."""
        group = self._group_of.get(key[-1])
        if group is not None and group.pending is not None and key not in group.pending:
            group.pending.add(key)

    def settle(self, key: Key, reason: Reason) -> None:
        """The candidate was just held back with ``reason`` (and alarmed, if recurrent)."""
        group = self._group_of.get(key[-1])
        if group is None or group.pending is None:
            return
        if reason == group.reason:
            group.pending.discard(key)
        elif key not in group.pending:
            group.pending.add(key)

    def close(self, group: Group, reason: Reason) -> None:
        """``group`` cannot start anything, because of ``reason``."""
        if reason != group.reason:
            assert group.pending is not None
            group.reason = reason
            group.pending = SortedList(group.keys)  # settled with another reason: all pending

    def prune(self) -> None:
        """Forget empty groups (a registry change can leave many)."""
        for gk in [gk for gk, g in self.groups.items() if not g.keys]:
            del self.groups[gk]


#: the capacity reason that closes a group now, or None
GroupCheck = Callable[[Group], Reason | None]


class Walk:
    """One allocation round over ``candidates``: keys best-first, skipping settled members of
    closed groups. Call ``visited`` after handling each key, and ``started`` after a start."""

    def __init__(self, candidates: Candidates, check: GroupCheck) -> None:
        candidates.prune()
        self._c = candidates
        self._check = check
        self._heap: list[tuple[Key, int, int]] = []
        self._groups = list(candidates.groups.values())
        self._index = {id(g): i for i, g in enumerate(self._groups)}
        #: the key last returned: the plain walk has been over every candidate up to it
        self._position: Key | None = None
        self._closed: list[bool] = [False] * len(self._groups)
        self._version = [0] * len(self._groups)
        for i, group in enumerate(self._groups):
            if group.closable:
                reason = check(group)
                if reason is not None:
                    candidates.close(group, reason)
                    self._closed[i] = True
            self._push(i)

    def _push(self, i: int) -> None:
        """(Re)schedule group ``i`` at its next member to visit."""
        self._version[i] += 1
        group = self._groups[i]
        source = group.pending if self._closed[i] else group.keys
        assert source is not None
        at = self._position
        j = 0 if at is None else source.bisect_right(at)
        if j < len(source):
            heapq.heappush(self._heap, (source[j], self._version[i], i))

    def __iter__(self) -> Iterator[Key]:
        return self

    def __next__(self) -> Key:
        while self._heap:
            key, version, i = heapq.heappop(self._heap)
            if version != self._version[i]:
                continue
            if not self._closed[i] and self._groups[i].closable:
                reason = self._check(self._groups[i])
                if reason is not None:  # another group's start filled its pool or resources
                    self._c.close(self._groups[i], reason)
                    self._closed[i] = True
                    self._push(i)
                    continue
            self._position = key
            return key
        raise StopIteration

    def visited(self, key: Key) -> None:
        """``key`` was held back or started: move its group on."""
        self._push(self._index_of(key))

    def started(self, group: Group) -> None:
        """A member of ``group`` started (it left the list) and took capacity: a closed group's
        reason may have changed (its pool filled)."""
        self._push(self._index[id(group)])
        for i, g in enumerate(self._groups):
            if self._closed[i]:
                reason = self._check(g)
                assert reason is not None  # nothing frees capacity within a round
                if reason != g.reason:
                    self._c.close(g, reason)
                    self._push(i)

    def _index_of(self, key: Key) -> int:
        # the key may have moved (an alarm re-keys it) but not changed group
        return self._index[id(self._c.group_of(key[-1]))]
