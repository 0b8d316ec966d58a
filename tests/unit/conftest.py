"""Unit-test fixtures: a clean DEVENV_* environment and a private copy of the example project."""

from __future__ import annotations

from pathlib import Path

import pytest

from devenv.project import Project, load_project
from tests.fixtures.helpers import clean_environ, copy_project


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environ(monkeypatch)


@pytest.fixture
def example(tmp_path: Path) -> Project:
    """The example project copied under tmp_path, loaded with an empty environment."""
    return load_project(copy_project("example", tmp_path / "quotes"), environ={})
