"""The layout's rules, checked on the source: no import cycle, one module per outside world.

- No import cycle among devenv's modules, function-level imports included (imports under `if TYPE_CHECKING:` are
  for the type checker only and do not run, so they are left out).
- Only the Docker side talks to Docker: devenv.runtime (the facade everything else receives), devenv.compose_cli,
  devenv.engine_api, devenv.inventory and devenv.docker_models. Nothing else builds a docker command line or names an
  Engine API path, and nothing else imports the Docker side's internals. Nothing imports the docker SDK,
  python-on-whales, redis-py or psycopg (the tests use those as independent oracles).
- Only devenv.proc starts processes (devenv.compose_cli hands it compose's argv, devenv.engine_api its ssh relays).
- Only devenv.cli and devenv.output print.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "devenv"
MODULES = {f"devenv.{p.stem}": p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__main__"}
DOCKER_SIDE = frozenset(
    {"devenv.runtime", "devenv.compose_cli", "devenv.engine_api", "devenv.inventory", "devenv.docker_models"}
)
DOCKER_INTERNALS = frozenset({"devenv.compose_cli", "devenv.engine_api", "devenv.inventory"})  # behind the facade
ENGINE_API_PATH = re.compile(r"/(containers|images|volumes|networks|info|system|version|_ping|exec|build)\b")


def _tree(module: str) -> ast.Module:
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node that runs: all of them but the bodies of `if TYPE_CHECKING:`."""
    out: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def imports_of(module: str) -> set[str]:
    """Every module MODULE imports at run time (top level and inside functions)."""
    found: set[str] = set()
    for node in _runtime_nodes(_tree(module)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                raise AssertionError(f"{module}: relative import (devenv imports absolutely)")
            found.add(node.module)
            if node.module == "devenv":
                found.update(f"devenv.{alias.name}" for alias in node.names)
    return found


def internal_graph() -> dict[str, set[str]]:
    return {m: {i for i in imports_of(m) if i in MODULES and i != m} for m in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle in GRAPH as a path that starts and ends at the same node, or None."""
    colour = dict.fromkeys(graph, 0)  # 0 new, 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == 1:
                return [*path[path.index(nxt) :], nxt]
            if colour[nxt] == 0 and (cycle := visit(nxt)):
                return cycle
        path.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour[node] == 0 and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_function_level_imports_count() -> None:
    # ci imports lifecycle inside a function (ci_up): that edge is part of the graph too.
    graph = internal_graph()
    assert "devenv.reset" in graph["devenv.lifecycle"] and "devenv.lifecycle" in graph["devenv.ci"]


def test_no_import_cycle_among_devenvs_modules() -> None:
    cycle = find_cycle(internal_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_reset_never_reaches_up_into_the_lifecycle() -> None:
    graph = internal_graph()
    assert "devenv.lifecycle" not in graph["devenv.reset"]


@pytest.mark.parametrize("library", ["docker", "python_on_whales", "redis", "psycopg", "rich", "urllib.request"])
def test_heavy_or_outside_libraries_are_not_imported(library: str) -> None:
    users = [m for m in MODULES if any(i == library or i.startswith(library + ".") for i in imports_of(m))]
    assert users == []


def _talks_to_docker(module: str) -> bool:
    """Whether MODULE builds a docker command line (a list starting with "docker") or names an Engine API path."""
    for node in _runtime_nodes(_tree(module)):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value == "docker":
                return True
        parts = node.values if isinstance(node, ast.JoinedStr) else [node]
        for part in parts[:1]:
            if isinstance(part, ast.Constant) and isinstance(part.value, str) and ENGINE_API_PATH.match(part.value):
                return True
    return False


def test_the_docker_side_is_told_by_what_it_does() -> None:
    assert _talks_to_docker("devenv.compose_cli") and _talks_to_docker("devenv.inventory")
    assert not _talks_to_docker("devenv.status")


def test_only_the_docker_side_talks_to_docker() -> None:
    # errors names compose's command line in ComposeFailed's message; it runs nothing
    talkers = {m for m in MODULES if _talks_to_docker(m)} - {"devenv.errors"}
    assert talkers <= DOCKER_SIDE and talkers


def test_only_the_docker_side_imports_its_internals() -> None:
    users = {m for m in MODULES if imports_of(m) & DOCKER_INTERNALS}
    assert users <= DOCKER_SIDE, f"use devenv.runtime instead: {sorted(users - DOCKER_SIDE)}"


def test_only_proc_starts_processes() -> None:
    starters = set()
    for module in MODULES:
        names = imports_of(module)
        if "subprocess" in names or "pty" in names:
            starters.add(module)
        for node in _runtime_nodes(_tree(module)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and (
                    node.attr in {"system", "popen", "fork", "posix_spawn", "posix_spawnp"}
                    or node.attr.startswith(("exec", "spawn"))
                )
            ):
                starters.add(module)
    assert starters == {"devenv.proc"}


def _prints(module: str) -> bool:
    for node in _runtime_nodes(_tree(module)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "print":
                return True
            if isinstance(func, ast.Attribute) and func.attr in {"echo", "secho", "write", "print"}:
                target = func.value
                if isinstance(target, ast.Name) and target.id in {"typer", "click", "console", "parser"}:
                    return True
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "sys"
                    and target.attr in {"stdout", "stderr"}
                ):
                    return True
    return False


def test_only_cli_and_output_print() -> None:
    assert {m for m in MODULES if _prints(m)} == {"devenv.cli", "devenv.output"}
