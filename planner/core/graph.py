"""The dependency graph (edges ancestor → descendant) and critical-path lengths."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx


class Dag:
    def __init__(self) -> None:
        self.g: nx.DiGraph = nx.DiGraph()

    def set_ancestors(self, name: str, ancestors: Iterable[str]) -> None:
        self.g.add_node(name)
        self.g.remove_edges_from(list(self.g.in_edges(name)))
        self.g.add_edges_from((a, name) for a in ancestors)

    def remove(self, name: str) -> None:
        if name in self.g:
            self.g.remove_node(name)

    def successors(self, name: str) -> Iterable[str]:
        return self.g.successors(name) if name in self.g else ()

    def critical_paths(self, durations: Mapping[str, float]) -> dict[str, float]:
        """Per node: its duration plus the longest chain of durations below it."""
        cp: dict[str, float] = {}
        succ = self.g.succ
        for node in reversed(list(nx.topological_sort(self.g))):
            below = max((cp[s] for s in succ[node]), default=0.0)
            cp[node] = durations.get(node, 0.0) + below
        return cp
