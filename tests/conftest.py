"""Shared test setup: the `docker` marker, the engine fixture and the image settings.

Tests under tests/integration/ are marked `docker` automatically. Under CI=true a docker test never skips:
an unreachable engine fails it. Elsewhere it skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "monorepo"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden/ from the current output")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.docker)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if info.returncode != 0:
        return f"Docker Engine not reachable: {info.stderr.strip()[:200]}"
    compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True, timeout=20)
    if compose.returncode != 0:
        return "docker compose v2 is missing"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Require a real engine: fail under CI=true, skip elsewhere."""
    problem = _engine_problem()
    if problem is None:
        return
    if in_ci():
        pytest.fail(f"CI=true and {problem}. Hint: .ci/run starts the engine via `make test`.", pytrace=False)
    pytest.skip(f"{problem} (run `make engine`)")


@pytest.fixture(autouse=True)
def _require_engine_for_docker_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        request.getfixturevalue("docker_engine")


@pytest.fixture(scope="session")
def images() -> dict[str, str]:
    """The images the integration tests use, from devenv's own environment variables (set by `make test`)."""
    return {
        "postgres": os.environ.get("DEVENV_POSTGRES_IMAGE", "postgres:16-alpine"),
        "redis": os.environ.get("DEVENV_REDIS_IMAGE", "redis:7-alpine"),
        "node": os.environ.get("DEVENV_BUILD_ARG_NODE_IMAGE", "node:20-bookworm-slim"),
    }
