"""The dependency graph as text for other tools: Graphviz DOT and Mermaid (``planner graph``).

Nodes carry the process name and its schedule (and whether it is held or disabled); edges point
from ancestor to process. Labels are escaped for each format, since names may hold any character.
"""

from __future__ import annotations

from registry.definitions.durations import format_duration
from registry.model import ProcessDef, RegistryDef

__all__ = ["graph_dot", "graph_mermaid"]


def _label_lines(p: ProcessDef) -> list[str]:
    if p.cron is not None:
        when = f"cron {p.cron}"
    elif p.every is not None:
        when = f"every {format_duration(p.every)}"
    else:
        when = "single"
    flags = [f for f, on in (("held", p.hold), ("disabled", not p.enabled)) if on]
    return [p.name, when + (f" ({', '.join(flags)})" if flags else "")]


def _edges(registry: RegistryDef) -> list[tuple[str, str]]:
    return [
        (ancestor, name)
        for name in sorted(registry.processes)
        for ancestor in registry.processes[name].ancestors
    ]


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(registry: RegistryDef) -> str:
    """Graphviz DOT: one node per process (name and schedule), edges ancestor -> process."""
    lines = ["digraph planner {", "  rankdir=LR;", "  node [shape=box];"]
    for name in sorted(registry.processes):
        label = "\\n".join(
            t.replace("\\", "\\\\").replace('"', '\\"')
            for t in _label_lines(registry.processes[name])
        )
        lines.append(f'  {_dot_string(name)} [label="{label}"];')
    lines += [f"  {_dot_string(a)} -> {_dot_string(b)};" for a, b in _edges(registry)]
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(registry: RegistryDef) -> str:
    """Mermaid flowchart; node ids are generated, since process names may hold ``.`` or ``-``."""
    ids = {name: f"p{i}" for i, name in enumerate(sorted(registry.processes))}
    lines = ["flowchart LR"]
    for name, node in ids.items():
        label = "<br/>".join(
            t.replace('"', "#quot;") for t in _label_lines(registry.processes[name])
        )
        lines.append(f'    {node}["{label}"]')
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in _edges(registry)]
    return "\n".join(lines)
