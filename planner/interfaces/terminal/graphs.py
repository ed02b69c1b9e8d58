"""The dependency graph as text for other tools: Graphviz DOT and Mermaid (``planner graph``).

Nodes carry the process name and its schedule (and whether it is held or disabled); edges point
from ancestor to process; the processes of a template are grouped (a DOT cluster, a Mermaid
subgraph) under its name. Labels are escaped for each format, since names may hold any character.
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


def _groups(registry: RegistryDef) -> list[tuple[str | None, list[str]]]:
    """The processes by template (``None``: not of a template), each group by name."""
    groups: dict[str | None, list[str]] = {}
    for name in sorted(registry.processes):
        groups.setdefault(registry.processes[name].template, []).append(name)
    return sorted(groups.items(), key=lambda g: (g[0] is not None, g[0] or ""))


def graph_dot(registry: RegistryDef) -> str:
    """Graphviz DOT: one node per process (name and schedule), edges ancestor -> process; the
    processes of a template in a cluster named after it."""
    lines = ["digraph planner {", "  rankdir=LR;", "  node [shape=box];"]
    for n, (template, names) in enumerate(_groups(registry)):
        indent = "  " if template is None else "    "
        if template is not None:
            lines.append(f"  subgraph cluster_{n} {{")
            lines.append(f"    label={_dot_string(f'{template} ({len(names)})')};")
        for name in names:
            label = "\\n".join(
                t.replace("\\", "\\\\").replace('"', '\\"')
                for t in _label_lines(registry.processes[name])
            )
            lines.append(f'{indent}{_dot_string(name)} [label="{label}"];')
        if template is not None:
            lines.append("  }")
    lines += [f"  {_dot_string(a)} -> {_dot_string(b)};" for a, b in _edges(registry)]
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(registry: RegistryDef) -> str:
    """Mermaid flowchart; node ids are generated, since process names may hold ``.`` or ``-``."""
    ids = {name: f"p{i}" for i, name in enumerate(sorted(registry.processes))}
    lines = ["flowchart LR"]
    for n, (template, names) in enumerate(_groups(registry)):
        if template is not None:
            lines.append(f'    subgraph t{n}["{template.replace(chr(34), "#quot;")}"]')
        for name in names:
            label = "<br/>".join(
                t.replace('"', "#quot;") for t in _label_lines(registry.processes[name])
            )
            lines.append(f'    {ids[name]}["{label}"]')
        if template is not None:
            lines.append("    end")
    lines += [f"    {ids[a]} --> {ids[b]}" for a, b in _edges(registry)]
    return "\n".join(lines)
