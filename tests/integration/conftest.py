"""Integration fixtures: private copies of the example project with their own stack names and free host ports.

`example` is a project of its own with no stack yet, for the tests about `up`, faults, checkouts and teardown.
`clean` is the test module's one stack (`stack`, brought up once) with clean data: `devenv reset --yes` before the
test, a fraction of a second instead of a full `up`. At the end of the session nothing a test made is left: the
stacks' server images and the secrets folders devenv keeps outside the projects go too (and whatever a failed test
left is removed and named).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.helpers import (
    ExampleProject,
    free_port,
    labelled,
    make_project,
    remove,
)
from tests.integration.remote import finish_early, start_early
from tests.integration.remote import remote_engine as remote_engine  # the session fixture: the second engine

__all__ = ["ExampleProject", "free_port", "labelled", "make_project", "remove"]  # what test_remote_bed imports


def pytest_collection_finish(session: pytest.Session) -> None:
    """A session that will use the second engine starts bringing it up now, beside the tests that run first."""
    if any("remote_engine" in getattr(item, "fixturenames", ()) for item in session.items):
        start_early(session.config)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The session's end: leave the second engine (its last user takes it down) while this process may still run."""
    finish_early()


@pytest.fixture
def example(tmp_path: Path) -> Iterator[ExampleProject]:
    """A private example project; everything it started is removed afterwards (volumes, image, secrets)."""
    project = make_project(tmp_path)
    try:
        yield project
    finally:
        remove(project)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleProject]:
    """The test module's example stack, up once (the whole stack); removed after the module."""
    project = make_project(tmp_path_factory.mktemp("stack"))
    try:
        project.devenv("up", check=True)
        yield project
    finally:
        remove(project)


@pytest.fixture
def clean(stack: ExampleProject) -> ExampleProject:
    """The module's stack with clean data (`devenv reset --yes`: the seeded template, Redis db flushed), as a project
    with an environment of the test's own. A test that changes a file of the project puts it back."""
    done = stack.devenv("reset", "--yes")
    if done.returncode != 0:  # a test before stopped part of it: bring it back, then reset
        stack.devenv("up", check=True)
        stack.devenv("reset", "--yes", check=True)
    return replace(stack, env=dict(stack.env))


def _state_dirs(base: Path) -> list[Path]:
    """Every devenv state folder (.devenv and .devenv/stacks/NAME) under BASE."""
    found = []
    for folder, dirs, _files in os.walk(base):
        dirs[:] = [d for d in dirs if d not in ("node_modules", ".git")]
        if Path(folder).name == ".devenv":
            stacks = Path(folder) / "stacks"
            found += [Path(folder), *(p for p in (stacks.iterdir() if stacks.is_dir() else ()) if p.is_dir())]
            dirs[:] = []
    return found


def _under(base: Path, kind: str) -> list[str]:
    """The ids of the engine's KIND (container, volume, network, image) whose devenv.checkout lies under BASE."""
    ls = ["docker", kind, "ls", "-q", "--filter", "label=devenv.checkout"]
    if kind == "container":
        ls.insert(3, "-a")
    ids = sorted(set(subprocess.run(ls, capture_output=True, text=True).stdout.split()))
    if not ids:
        return []
    fmt = (
        '{{index .Config.Labels "devenv.checkout"}}'
        if kind in ("container", "image")
        else '{{index .Labels "devenv.checkout"}}'
    )
    inspected = subprocess.run(["docker", kind, "inspect", "-f", fmt, *ids], capture_output=True, text=True)
    return [i for i, path in zip(ids, inspected.stdout.splitlines(), strict=False) if path.startswith(f"{base}/")]


@pytest.fixture(scope="session", autouse=True)
def _leave_nothing_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session: remove the server images and secrets folders of the session's stacks (tests do not clean
    those up one by one: many stacks share a module), and anything else labelled with a checkout of this session's
    (what a failed test left), naming it."""
    yield
    from devenv.core.state import secrets_dir

    base = tmp_path_factory.getbasetemp().resolve()
    left = {kind: _under(base, kind) for kind in ("container", "network", "volume")}
    for kind in ("container", "network", "volume"):
        if left[kind]:
            subprocess.run(["docker", kind, "rm", "-f", *left[kind]], capture_output=True)
    images = _under(base, "image")
    if images:
        subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True)
    for state_dir in _state_dirs(base):
        shutil.rmtree(secrets_dir(state_dir), ignore_errors=True)
    leaked = {kind: ids for kind, ids in left.items() if ids}
    if leaked:  # a test's own cleanup missed these: say so (the run has already reported its failures)
        print(f"\nintegration tests left {leaked} behind; removed")
