"""Unit-test fixtures: a clean DEVENV_* environment and a private copy of the example project."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.project.discovery import Project, load_project
from tests.fixtures.helpers import clean_environ, copy_project


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_environ(monkeypatch)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))  # the generated env files' folder


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A private folder with a short path, for what must fit a unix socket's path (ssh's control sockets): pytest's
    tmp_path is longer under an xdist worker (`.../popen-gw1/...`), too long for devenv to put sockets there."""
    folder = Path(tempfile.mkdtemp(prefix="dv-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def example(tmp_path: Path) -> Project:
    """The example project copied under tmp_path, loaded with an empty environment."""
    return load_project(copy_project("example", tmp_path / "quotes"), environ={})


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port with a listener on it for the duration of the test."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield int(sock.getsockname()[1])
    sock.close()
