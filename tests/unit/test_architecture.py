"""The layout's rules, checked on the source: layers that import only downward, no import cycle, one module per
outside world, short functions.

- devenv's code is in eight layers, one subpackage each (LAYERS, lowest first). A module imports only from its own
  layer and the layers below it, function-level imports included (imports under `if TYPE_CHECKING:` are for the
  type checker only and do not run, so they are left out). Within a layer there is no import cycle either.
- At the top of devenv/ only the package itself and `__main__` (no more than eight modules).
- Only the Docker side talks to Docker: devenv.engine.runtime (the facade everything else receives),
  devenv.engine.compose, devenv.engine.api, devenv.engine.inventory and devenv.engine.models. Nothing else builds a
  docker command line or names an Engine API path, and nothing else imports the Docker side's internals. Nothing
  imports the docker SDK, python-on-whales, redis-py or psycopg (the tests use those as independent oracles).
- Only devenv.core.proc starts processes (devenv.engine.compose hands it compose's argv, devenv.engine.api its ssh
  relays).
- Only devenv.cli.main and devenv.cli.output print.
- No function or method over 80 lines; no tracker words ("issue 17") in comments.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "devenv"
LAYERS = ("core", "clients", "engine", "project", "stack", "db", "commands", "cli")


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.stem != "__main__"}
DOCKER_SIDE = frozenset(
    {
        "devenv.engine.runtime",
        "devenv.engine.compose",
        "devenv.engine.api",
        "devenv.engine.inventory",
        "devenv.engine.models",
    }
)
DOCKER_INTERNALS = frozenset({"devenv.engine.compose", "devenv.engine.api", "devenv.engine.inventory"})  # behind
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
            if node.module.split(".")[0] == "devenv":  # `from devenv.db import marks`: the module devenv.db.marks
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def internal_graph() -> dict[str, set[str]]:
    return {m: {i for i in imports_of(m) if i in MODULES and i != m and not _is_package(i)} for m in MODULES}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def layer_of(module: str) -> int:
    """The index in LAYERS of MODULE's layer (the package devenv itself is below them all)."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1


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
    assert "devenv.commands.reset" in graph["devenv.commands.lifecycle"]
    assert "devenv.commands.lifecycle" in graph["devenv.commands.ci"]


def test_every_module_is_in_a_layer() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"] and len(top) <= 8
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)
    assert all(len(m.split(".")) <= 3 for m in MODULES)  # devenv.LAYER.MODULE, nothing deeper


def test_each_layer_imports_only_from_itself_and_the_layers_below() -> None:
    upward = sorted(f"{m} -> {i}" for m, deps in internal_graph().items() for i in deps if layer_of(i) > layer_of(m))
    assert upward == [], "imports running up the layers (see LAYERS):\n" + "\n".join(upward)


def test_the_layer_check_sees_a_function_level_import() -> None:
    # seeding (db) takes the template with devenv.db.templates; commands.reset is above it and must stay there
    assert "devenv.commands.reset" not in internal_graph()["devenv.db.seeding"]
    assert layer_of("devenv.db.seeding") < layer_of("devenv.commands.reset")


def _long_functions() -> list[str]:
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    found.append(f"{module}.{node.name}: {length} lines")
    return found


def test_no_function_is_over_80_lines() -> None:
    assert _long_functions() == []


def test_no_tracker_words_in_comments() -> None:
    tracker = re.compile(r"\b(issue|ticket|bug) #?\d+", re.IGNORECASE)
    found = []
    for module, path in MODULES.items():
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            if tok.type == tokenize.COMMENT and tracker.search(tok.string):
                found.append(f"{module}:{tok.start[0]}: {tok.string.strip()}")
    assert found == []


def test_no_import_cycle_among_devenvs_modules() -> None:
    cycle = find_cycle(internal_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_reset_never_reaches_up_into_the_lifecycle() -> None:
    graph = internal_graph()
    assert "devenv.commands.lifecycle" not in graph["devenv.commands.reset"]


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
    assert _talks_to_docker("devenv.engine.compose") and _talks_to_docker("devenv.engine.inventory")
    assert not _talks_to_docker("devenv.commands.status")


def test_only_the_docker_side_talks_to_docker() -> None:
    # errors names compose's command line in ComposeFailed's message; it runs nothing
    talkers = {m for m in MODULES if _talks_to_docker(m)} - {"devenv.core.errors"}
    assert talkers <= DOCKER_SIDE and talkers


def test_only_the_docker_side_imports_its_internals() -> None:
    users = {m for m in MODULES if imports_of(m) & DOCKER_INTERNALS}
    assert users <= DOCKER_SIDE, f"use devenv.engine.runtime instead: {sorted(users - DOCKER_SIDE)}"


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
    assert starters == {"devenv.core.proc"}


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
    assert {m for m in MODULES if _prints(m)} == {"devenv.cli.main", "devenv.cli.output"}
