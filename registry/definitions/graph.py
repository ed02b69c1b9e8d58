"""The dependency graph as validation sees it: each process's ancestors exist, are not the
process itself, are not listed twice, and together make no cycle (the error shows the path).

Used by the loader for files (``registry.definitions.loader``) and for the rows of the store
(``registry.definitions.stored``), on the loader's entries — a template's processes with their
ancestors already resolved, each problem at the line of the ancestor as written.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

import networkx as nx

from registry.definitions.yaml_source import Where
from registry.errors import Problem


class _Spec(Protocol):
    @property
    def ancestors(self) -> Sequence[str]: ...


class GraphEntry(Protocol):
    """What the checks read of a loaded process (``loader._Entry``)."""

    @property
    def spec(self) -> _Spec: ...

    @property
    def where(self) -> Where: ...

    def written(self, index: int) -> int: ...


__all__ = ["check_graph", "did_you_mean"]


def check_graph(entries: Mapping[str, GraphEntry], problems: list[Problem]) -> list[set[str]]:
    """Ancestors exist, are not the process itself, are not repeated and form no cycle.

    Returns the processes on cycles, one set per strongly connected component (each cycle is
    reported once, on its first process by name)."""
    edges: list[tuple[str, str]] = []
    for name, entry in entries.items():
        seen: set[str] = set()
        for i, ancestor in enumerate(entry.spec.ancestors):
            if ancestor == name:
                message = "lists itself as an ancestor"
            elif ancestor in seen:
                message = f"ancestor {ancestor!r} listed twice"
            elif ancestor not in entries:
                message = f"unknown ancestor {ancestor!r}{did_you_mean(ancestor, list(entries))}"
            else:
                edges.append((ancestor, name))
                seen.add(ancestor)
                continue
            seen.add(ancestor)
            path = ("processes", name, "ancestors", entry.written(i))
            problems.append(entry.where.problem(path, message))
    if _acyclic(entries, edges):
        return []
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(entries)
    graph.add_edges_from(edges)
    cyclic: list[set[str]] = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        cyclic.append(set(component))
        sub = graph.subgraph(component)
        start = min(component)
        last = min(sub.predecessors(start))
        cycle = [*nx.shortest_path(sub, start, last), start]
        index = entries[start].written(list(entries[start].spec.ancestors).index(last))
        message = f"dependency cycle {' -> '.join(cycle)} (each is an ancestor of the next)"
        problems.append(
            entries[start].where.problem(("processes", start, "ancestors", index), message)
        )
    return cyclic


def _acyclic(nodes: Collection[str], edges: Sequence[tuple[str, str]]) -> bool:
    """Whether the graph has no cycle (Kahn's algorithm: every node can be taken in order)."""
    children: dict[str, list[str]] = {}
    waiting = dict.fromkeys(nodes, 0)  # ancestors not yet taken
    for ancestor, child in edges:
        children.setdefault(ancestor, []).append(child)
        waiting[child] += 1
    ready = [node for node, count in waiting.items() if not count]
    taken = 0
    while ready:
        node = ready.pop()
        taken += 1
        for child in children.get(node, ()):
            waiting[child] -= 1
            if not waiting[child]:
                ready.append(child)
    return taken == len(waiting)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``word``, or nothing."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
