"""No import cycle between any two modules of attest/ and disputer/ (function-level imports included).

The layer contracts in pyproject.toml ([tool.importlinter], run by `scripts/dev lint`) keep the packages in
order; this check covers every module, inside a layer too, where the contracts allow either direction."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import grimp


def cycles(nodes: Iterable[str], edges: Callable[[str], Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), iteratively: each one is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(nodes):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(edges(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, todo = work[-1]
            if todo:
                nxt = todo.pop()
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(edges(nxt))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert cycles(graph, lambda n: graph[n]) == [["a", "b", "c"]]
    assert cycles({"a": ["b"], "b": []}, lambda n: {"a": ["b"], "b": []}[n]) == []


def test_no_import_cycle_in_attest_or_disputer() -> None:
    graph = grimp.build_graph("attest", "disputer")
    assert cycles(graph.modules, graph.find_modules_directly_imported_by) == []
