"""The import graph of the area packages, read with `ast` (nothing is imported, no database):
no two areas import each other in a circle, and portal/tenancy stands under the areas it
serves (areas import tenancy, never the reverse). Every import counts: relative or absolute,
at the top of a module or inside a function."""
from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

PORTAL = Path(__file__).resolve().parent.parent / "portal"
# Subpackages of portal/ that are plumbing, not features; every other subpackage is an area,
# new ones included. Modules such as portal/database/registry.py may import any area.
INFRASTRUCTURE = frozenset({"database", "health"})
# What tenancy stands on: the tenant rows and the user model.
TENANCY_MAY_IMPORT = frozenset({"tenants", "accounts"})

# Broken by issue 9's rework of tenancy, members, sites and devices on another branch.
# Empty both when it merges; test_pending_allowlists_are_still_needed says when an entry is stale.
PENDING_CYCLES_FIXED_BY_ISSUE_9 = frozenset()
PENDING_TENANCY_IMPORTS_FIXED_BY_ISSUE_9 = frozenset()

Edges = dict[tuple[str, str], list[str]]  # (importer, imported) -> ["portal/x/y.py:12", ...]


def area_packages(portal: Path = PORTAL) -> frozenset[str]:
    return frozenset(init.parent.name for init in portal.glob("*/__init__.py")) - INFRASTRUCTURE


def _imported(node: ast.AST, package: list[str]) -> list[list[str]]:
    """The dotted paths an import statement reaches, e.g. ["portal", "security", "login"]."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".") for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level > len(package):
        return []  # above portal/: not ours
    base = package[:len(package) - node.level + 1] if node.level else []
    module = base + (node.module.split(".") if node.module else [])
    # `from .. import audit` or `from portal import audit`: the names are the modules.
    return [module + [alias.name] for alias in node.names] if len(module) == 1 else [module]


def import_edges(portal: Path = PORTAL) -> Edges:
    """Area-to-area imports, with where each one is written."""
    areas = area_packages(portal)
    edges: Edges = {}
    for path in sorted(portal.rglob("*.py")):
        parts = list(path.relative_to(portal.parent).with_suffix("").parts)  # portal, area, ..., module
        package = parts[:-1]  # what `from .` means here, for a module or an __init__ alike
        source = parts[1] if len(parts) > 2 else None
        if source not in areas:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported(node, package):
                if len(target) > 1 and target[0] == "portal" and target[1] in areas and target[1] != source:
                    where = f"{path.relative_to(portal.parent)}:{node.lineno}"
                    edges.setdefault((source, target[1]), []).append(where)
    return edges


def graph_of(edges: Edges) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)
        graph.setdefault(target, set())
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm; the graph is a few dozen nodes, recursion is fine."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if start in graph[node]:
            path = [node]
            while path[-1] != start:
                path.append(previous[path[-1]])
            return path[::-1] + [start]
        for nxt in sorted(graph[node] & within):
            if nxt not in previous and nxt != start:
                previous[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is in a strongly connected component, so on a cycle")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles as paths ["a", "b", "a"]: for every area that is on one, the shortest through it
    (each written from its first area by name, duplicates dropped). Empty when there is none."""
    cycles: set[tuple[str, ...]] = set()
    for component in _strongly_connected(graph):
        for start in component if len(component) > 1 else ():
            cycle = _shortest_cycle(graph, start, component)[:-1]
            first = cycle.index(min(cycle))
            cycles.add(tuple(cycle[first:] + cycle[:first] + [cycle[first]]))
    return sorted(list(cycle) for cycle in cycles)


def describe(cycle: list[str], edges: Edges) -> str:
    steps = [f"  {a} -> {b}: {', '.join(edges[a, b])}" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n" + "\n".join(steps)


def cycle_report(edges: Edges) -> str:
    """Empty when no area imports another in a circle; else each cycle and where its imports are."""
    return "\n".join(describe(cycle, edges) for cycle in find_cycles(graph_of(edges)))


def tenancy_report(edges: Edges, allowed: frozenset[str]) -> str:
    """Empty when tenancy imports no area outside `allowed`; else what it imports, and where."""
    return "\n".join(f"  tenancy -> {target}: {', '.join(where)}"
                     for (source, target), where in sorted(edges.items())
                     if source == "tenancy" and target not in allowed)


def without_pending(edges: Edges) -> Edges:
    return {(a, b): where for (a, b), where in edges.items()
            if frozenset({a, b}) not in PENDING_CYCLES_FIXED_BY_ISSUE_9}


def test_no_import_cycles_between_area_packages():
    report = cycle_report(without_pending(import_edges()))
    assert not report, "Area packages import each other in a circle; move the shared code down a layer " \
        "(or out of the areas, like portal/crypto.py):\n" + report


def test_tenancy_imports_only_what_it_stands_on():
    report = tenancy_report(import_edges(), TENANCY_MAY_IMPORT | PENDING_TENANCY_IMPORTS_FIXED_BY_ISSUE_9)
    assert not report, f"portal/tenancy may import only {' and '.join(sorted(TENANCY_MAY_IMPORT))} " \
        "(areas import tenancy, never the reverse):\n" + report


def test_pending_allowlists_are_still_needed():
    edges = import_edges()
    fixed = [" <-> ".join(sorted(pair)) for pair in PENDING_CYCLES_FIXED_BY_ISSUE_9
             if not all((a, b) in edges for a in pair for b in pair if a != b)]
    fixed += [f"tenancy -> {target}" for target in PENDING_TENANCY_IMPORTS_FIXED_BY_ISSUE_9
              if ("tenancy", target) not in edges]
    assert not fixed, "No longer imported, so no longer allowed: remove from the PENDING_ lists: " + \
        ", ".join(sorted(fixed))


def test_the_graph_sees_the_imports_it_should():
    """Guards the parser on the real tree (a graph with no edges has no cycles either)."""
    edges = import_edges()
    assert {("security", "accounts"), ("signin", "security"), ("profile", "security")} <= edges.keys()
    assert {"accounts", "signin", "profile", "security", "tenancy"} <= area_packages()
    assert not area_packages() & {"database", "health", "crypto", "web"}


def test_a_cycle_is_reported_with_its_path():
    edges = {("a", "b"): ["portal/a/x.py:3"], ("b", "c"): ["portal/b/y.py:9"], ("c", "a"): ["portal/c/z.py:1"],
             ("b", "d"): ["portal/b/y.py:10"], ("e", "a"): ["portal/e/w.py:2"]}
    report = cycle_report(edges)
    assert report.splitlines() == ["a -> b -> c -> a", "  a -> b: portal/a/x.py:3", "  b -> c: portal/b/y.py:9",
                                   "  c -> a: portal/c/z.py:1"]
    del edges["c", "a"]
    assert cycle_report(edges) == ""


def test_a_tenancy_import_of_an_area_is_reported():
    edges = {("tenancy", "tenants"): ["portal/tenancy/q.py:4"], ("tenancy", "members"): ["portal/tenancy/q.py:5"],
             ("members", "tenancy"): ["portal/members/v.py:7"]}
    assert tenancy_report(edges, TENANCY_MAY_IMPORT) == "  tenancy -> members: portal/tenancy/q.py:5"
    assert tenancy_report(edges, TENANCY_MAY_IMPORT | {"members"}) == ""


def test_every_kind_of_import_makes_an_edge(tmp_path):
    portal = tmp_path / "portal"
    for name, source in {
        "__init__.py": "from . import alpha\n",
        "web.py": "from .alpha import views\n",  # not an area: ignored
        "alpha/__init__.py": "def init_app(app):\n    from ..beta.views import bp\n",
        "alpha/views.py": "from .. import gamma\n",
        "beta/__init__.py": "",
        "beta/views.py": "import portal.delta.models\n",
        "gamma/__init__.py": "from portal.alpha import views\n",
        "delta/__init__.py": "",
        "delta/models.py": "from ..beta import services\n",
        "database/__init__.py": "from ..alpha import views\n",  # infrastructure: ignored
    }.items():
        (portal / name).parent.mkdir(parents=True, exist_ok=True)
        (portal / name).write_text(source)
    edges = import_edges(portal)
    assert sorted(edges) == [("alpha", "beta"), ("alpha", "gamma"), ("beta", "delta"), ("delta", "beta"),
                             ("gamma", "alpha")]
    assert edges[("alpha", "beta")] == ["portal/alpha/__init__.py:2"]
    assert find_cycles(graph_of(edges)) == [["alpha", "gamma", "alpha"], ["beta", "delta", "beta"]]
