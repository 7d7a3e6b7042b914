"""The import graph, read from the source (imports inside functions included: that is where cycles hide).

Packages are layers: sdk_build (build, verify, distribute) at the bottom, android_bridge (phones over adb) on it,
web_demo (the server and page) on it, device_tests (the lab) on all three, gemma_edge (the one command line) on top. No package may import one above it,
and no module cycle may appear inside a package.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("sdk_build", "android_bridge", "web_demo", "device_tests", "gemma_edge")
ALLOWED = {"sdk_build": set(), "android_bridge": {"sdk_build"}, "web_demo": {"sdk_build"},
           "device_tests": {"sdk_build", "android_bridge", "web_demo"},
           "gemma_edge": {"sdk_build", "android_bridge", "web_demo", "device_tests"}}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                found = owner(target)
                # A module importing its own package's __init__ (or a parent) is Python's import order, not a cycle.
                if found and found != name and not name.startswith(found + "."):
                    graph[name].add(found)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_packages_import_only_the_layers_below_them():
    graph = import_graph()
    wrong = sorted({(a, b) for a, deps in graph.items() for b in deps
                    if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]]})
    assert not wrong, f"imports against the layering: {wrong}"


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_pipeline_is_the_only_writer_of_bundle_entries() -> None:
    """One manifest entry, one writer: the plan (targets) and LoRA (the adapter record) hand their fields to
    `sdk_build.pipeline.build` instead of rewriting the entry after it; distribution never writes entries. The one
    other writer is a Ray run's driver, which publishes what its workers staged (issue: workers on other hosts
    must not race on the manifest)."""
    writers = {"publish_bundle", "update_manifest", "record_fields"}
    calls = []
    for name, path in _modules().items():
        if name == "sdk_build.artifacts.manifest" or not name.startswith("sdk_build."):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if called in writers:
                    calls.append(name)
    assert set(calls) == {"sdk_build.pipeline", "sdk_build.executors.ray_cluster"}, calls
